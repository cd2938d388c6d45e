"""Typed service settings from the environment and/or a JSON, INI or TOML file, on pydantic-settings."""

from __future__ import annotations

import configparser
import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    JsonConfigSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = ["Env", "EnvError"]

SUPPORTED_FILES = (".json", ".ini", ".toml")
# (env prefix or None, file or None) of the Env being built: settings_customise_sources is a classmethod, and a
# ContextVar keeps each instance's options apart, across threads too
_options: ContextVar[tuple[str | None, Path | None]] = ContextVar("utilserve_env_options", default=(None, None))


class EnvError(ValueError):
    """Configuration is missing, malformed or unreadable; the message says what to set and where."""


def _fold(model: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    """Rename keys to the model's field names ignoring case (recursing into nested models), as the env source does."""
    names = {name.lower(): name for name in model.model_fields}
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = names.get(str(key).lower(), key)
        sub = model.model_fields[name].annotation if name in model.model_fields else None
        if isinstance(value, dict) and isinstance(sub, type) and issubclass(sub, BaseModel):
            value = _fold(sub, value)
        out[name] = value
    return out


class _LenientDecode(PydanticBaseSettingsSource):
    """Leave list/dict text that is not JSON to validation, whose error names the field, type and value."""

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        try:
            return super().decode_complex_value(field_name, field, value)
        except ValueError:
            return value


class _EnvSource(_LenientDecode, EnvSettingsSource):
    """pydantic-settings' environment source, lenient about list/dict text."""


class _FileSource(_LenientDecode):
    """One settings file: .json/.toml via pydantic-settings' sources, .ini via configparser (it has none)."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls)
        try:
            if path.suffix.lower() == ".json":
                data = JsonConfigSettingsSource(settings_cls, json_file=path)()
            elif path.suffix.lower() == ".toml":
                data = TomlConfigSettingsSource(settings_cls, toml_file=path)()
            else:
                data = self._read_ini(path)
        except (OSError, ValueError, TypeError, configparser.Error) as exc:  # TypeError: JSON not an object
            raise EnvError(f"cannot read settings file {path}: {exc}") from None
        self.data = _fold(settings_cls, data)

    def _read_ini(self, path: Path) -> dict[str, Any]:
        """Merge every section's keys at top level, except a section named after a nested field, which fills it."""
        parser = configparser.ConfigParser(interpolation=None)
        parser.read_string("[<top>]\n" + path.read_text(encoding="utf-8"), source=str(path))
        fields = {name.lower(): (name, info) for name, info in self.settings_cls.model_fields.items()}
        data: dict[str, Any] = {}
        for section in parser.sections():
            name, info = fields.get(section.lower(), (section, None))
            if info is not None and self.field_is_complex(info):
                data[name] = dict(parser[section])
            else:
                data.update(parser[section])
        for key, value in data.items():  # INI values are text: decode JSON for list/dict fields, as the env does
            name, info = fields.get(key.lower(), (key, None))
            if isinstance(value, str) and info is not None and self.field_is_complex(info):
                data[key] = self.decode_complex_value(name, info, value)
        return data

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Unused: __call__ hands over the whole file at once."""
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return self.data


def _type_name(model: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    """The declared type at an error location, for messages."""
    ann: Any = model
    for part in loc:
        fields = getattr(ann, "model_fields", None)
        if not isinstance(part, str) or not fields or part not in fields:
            break
        ann = fields[part].annotation
    return ann.__name__ if isinstance(ann, type) else str(ann).replace("typing.", "")


def _explain(exc: ValidationError, model: type[BaseModel], prefix: str | None, path: Path | None) -> str:
    """Turn pydantic's errors into messages naming the setting and where it was looked for."""
    problems = []
    for err in exc.errors():
        name = ".".join(map(str, err["loc"]))
        if err["type"] != "missing":
            problems.append(
                f"invalid value for {name}: expected {_type_name(model, err['loc'])}, "
                f"got {err['input']!r} ({err['msg']})"
            )
            continue
        where = [] if prefix is None else [f"set {prefix}{err['loc'][0]} in the environment"]
        where += [] if path is None else [f"add {name} to {path}"]
        hint = " or ".join(where) or f"pass {name}=... or give sys_env= / file= to read it"
        problems.append(f"missing required setting {name}: {hint}")
    return "; ".join(problems)


class Env(BaseSettings):
    """Declare settings as typed fields; read them with Env(sys_env="PREFIX_", file="config.json|.ini|.toml").

    Precedence: keyword arguments > environment (only when sys_env is given; "" means no prefix) > file > defaults.
    """

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    def __init__(
        self, *, sys_env: str | None = None, file: str | os.PathLike[str] | None = None, **values: Any
    ) -> None:
        path = None if file is None else Path(file)
        if path is not None and path.suffix.lower() not in SUPPORTED_FILES:
            raise EnvError(f"unsupported settings file {path}: use one of {', '.join(SUPPORTED_FILES)}")
        if path is not None and not path.is_file():
            raise EnvError(f"settings file not found: {path}")
        token = _options.set((sys_env, path))
        try:
            super().__init__(**_fold(type(self), values))
        except ValidationError as exc:
            raise EnvError(_explain(exc, type(self), sys_env, path)) from None
        finally:
            _options.reset(token)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only the sources this instance asked for (no .env or secrets dir), highest precedence first."""
        prefix, path = _options.get()
        sources = [init_settings]
        if prefix is not None:
            sources.append(_EnvSource(settings_cls, env_prefix=prefix, case_sensitive=False))
        if path is not None:
            sources.append(_FileSource(settings_cls, path))
        return tuple(sources)

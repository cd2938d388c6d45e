"""Env: typed settings from the environment, JSON / INI / TOML files and keyword arguments."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from pydantic import BaseModel

from utilserve.env import Env, EnvError


class Database(BaseModel):
    host: str = "localhost"
    Port: int = 5432


class AppEnv(Env):
    DB_HOST: str
    DB_PORT: int = 5432
    DEBUG: bool = False
    TAGS: list[int] = []
    database: Database = Database()
    extra: dict[str, str] = {}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_prefix_and_case_insensitive_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("utst_db_host", "db.internal")
    monkeypatch.setenv("Utst_Db_Port", "6543")
    env = AppEnv(sys_env="UTST_")
    assert env.DB_HOST == "db.internal"
    assert env.DB_PORT == 6543


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UTST_DB_HOST", "h")
    env = AppEnv(sys_env="UTST_")
    assert (env.DB_PORT, env.DEBUG, env.TAGS, env.database, env.extra) == (5432, False, [], Database(), {})


def test_environment_only_read_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_HOST", "from-env")
    assert AppEnv(DB_HOST="kw").DB_HOST == "kw"
    assert AppEnv(sys_env="").DB_HOST == "from-env"  # "" reads the environment without a prefix


def test_type_coercion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UTST_DB_HOST", "h")
    monkeypatch.setenv("UTST_DB_PORT", "15432")
    monkeypatch.setenv("UTST_DEBUG", "yes")
    monkeypatch.setenv("UTST_TAGS", "[1, 2, 3]")
    monkeypatch.setenv("UTST_DATABASE", '{"HOST": "replica", "port": "7"}')
    env = AppEnv(sys_env="UTST_")
    assert env.DB_PORT == 15432 and env.DEBUG is True and env.TAGS == [1, 2, 3]
    assert env.database == Database(host="replica", Port=7)
    monkeypatch.setenv("UTST_DEBUG", "0")
    assert AppEnv(sys_env="UTST_").DEBUG is False


def test_json_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "config.json",
        json.dumps({"db_host": "j", "Db_Port": 1, "debug": True, "tags": [4], "DATABASE": {"HOST": "n"}, "unknown": 1}),
    )
    env = AppEnv(file=path)
    assert (env.DB_HOST, env.DB_PORT, env.DEBUG, env.TAGS) == ("j", 1, True, [4])
    assert env.database == Database(host="n")


def test_toml_file(tmp_path: Path) -> None:
    path = write(tmp_path, "config.toml", 'db_host = "t"\nDB_PORT = 2\n[database]\nport = 9\n')
    env = AppEnv(file=str(path))
    assert (env.DB_HOST, env.DB_PORT, env.database.Port) == ("t", 2, 9)


def test_ini_file_flat(tmp_path: Path) -> None:
    path = write(
        tmp_path, "config.ini", "debug = true\n[main]\nDB_HOST = i\n[other]\ndb_port = 3\ntags = [5, 6]\nunknown = x\n"
    )
    env = AppEnv(file=path)
    assert (env.DB_HOST, env.DB_PORT, env.DEBUG, env.TAGS) == ("i", 3, True, [5, 6])


def test_ini_file_nested_sections(tmp_path: Path) -> None:
    path = write(
        tmp_path, "config.ini", "[app]\ndb_host = i\n[DataBase]\nHOST = primary\nport = 6000\n[extra]\nRegion = eu\n"
    )
    env = AppEnv(file=path)
    assert env.DB_HOST == "i"
    assert env.database == Database(host="primary", Port=6000)
    assert env.extra == {"region": "eu"}


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "config.json", '{"DB_HOST": "file", "DB_PORT": 1}')
    monkeypatch.setenv("UTST_DB_PORT", "2")
    env = AppEnv(sys_env="UTST_", file=path)
    assert (env.DB_HOST, env.DB_PORT) == ("file", 2)


def test_keyword_arguments_override_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "config.ini", "[s]\nDB_HOST = file\nDB_PORT = 1\n")
    monkeypatch.setenv("UTST_DB_HOST", "env")
    env = AppEnv(sys_env="UTST_", file=path, DB_HOST="kw", db_port="3")
    assert (env.DB_HOST, env.DB_PORT) == ("kw", 3)


def test_missing_required_names_variable_and_prefix() -> None:
    with pytest.raises(EnvError) as info:
        AppEnv(sys_env="UTST_MISSING_")
    assert str(info.value) == "missing required setting DB_HOST: set UTST_MISSING_DB_HOST in the environment"
    assert isinstance(info.value, ValueError)


def test_missing_required_mentions_file(tmp_path: Path) -> None:
    path = write(tmp_path, "config.json", "{}")
    with pytest.raises(EnvError) as info:
        AppEnv(sys_env="UTST_MISSING_", file=path)
    assert str(info.value) == (
        f"missing required setting DB_HOST: set UTST_MISSING_DB_HOST in the environment or add DB_HOST to {path}"
    )


def test_missing_required_without_sources() -> None:
    with pytest.raises(EnvError, match=r"missing required setting DB_HOST: pass DB_HOST=\.\.\. or give sys_env="):
        AppEnv()


def test_wrong_type_names_variable_type_and_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UTST_DB_HOST", "h")
    monkeypatch.setenv("UTST_DB_PORT", "not-a-port")
    with pytest.raises(EnvError) as info:
        AppEnv(sys_env="UTST_")
    assert str(info.value).startswith("invalid value for DB_PORT: expected int, got 'not-a-port' (")


def test_wrong_type_in_list_and_nested_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UTST_DB_HOST", "h")
    monkeypatch.setenv("UTST_TAGS", "1,2")  # not JSON
    with pytest.raises(EnvError, match=r"invalid value for TAGS: expected list\[int\], got '1,2'"):
        AppEnv(sys_env="UTST_")
    path = write(tmp_path, "config.ini", "[s]\ndb_host = h\n[database]\nport = high\n")
    with pytest.raises(EnvError, match=r"invalid value for database\.Port: expected int, got 'high'"):
        AppEnv(file=path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(EnvError, match=f"settings file not found: {path}"):
        AppEnv(file=path)


def test_unsupported_extension(tmp_path: Path) -> None:
    path = write(tmp_path, "config.yaml", "DB_HOST: y\n")
    with pytest.raises(EnvError) as info:
        AppEnv(file=path)
    assert "config.yaml" in str(info.value)
    assert all(ext in str(info.value) for ext in (".json", ".ini", ".toml"))


@pytest.mark.parametrize("name, text", [("bad.json", "{oops"), ("list.json", "[1]"), ("bad.ini", "[s\nx")])
def test_unreadable_file(tmp_path: Path, name: str, text: str) -> None:
    path = write(tmp_path, name, text)
    with pytest.raises(EnvError, match=f"cannot read settings file {path}"):
        AppEnv(file=path)


def test_instances_do_not_share_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UTST_A_DB_HOST", "a")
    monkeypatch.setenv("UTST_B_DB_HOST", "b")
    path = write(tmp_path, "config.json", '{"DB_PORT": 1}')
    first, second = AppEnv(sys_env="UTST_A_", file=path), AppEnv(sys_env="UTST_B_")
    assert (first.DB_HOST, first.DB_PORT) == ("a", 1)
    assert (second.DB_HOST, second.DB_PORT) == ("b", 5432)  # no file carried over from the first


def test_concurrent_instances_keep_their_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    prefixes = [f"UTST_T{i}_" for i in range(8)]
    for prefix in prefixes:
        monkeypatch.setenv(f"{prefix}DB_HOST", prefix)
    results: dict[str, set[str]] = {prefix: set() for prefix in prefixes}
    barrier = threading.Barrier(len(prefixes))

    def build(prefix: str) -> None:
        barrier.wait()
        for _ in range(50):
            results[prefix].add(AppEnv(sys_env=prefix).DB_HOST)

    threads = [threading.Thread(target=build, args=(prefix,)) for prefix in prefixes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {prefix: {prefix} for prefix in prefixes}

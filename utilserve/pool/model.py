"""The ``Model`` base class: what a user writes to have a model served and batched."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel

ErrorMapping = Mapping[type[Exception], int | tuple[int, str]]


class Model:
    """Subclass, declare ``Input``/``Output`` and implement ``predict``, or ``start``/``step``/``done`` to stream.

    One instance lives in each pool worker: ``setup()`` runs once there
    (load weights), ``predict()`` gets batches of validated ``Input`` items,
    ``teardown()`` runs at shutdown. ``predict`` returns one result per item,
    in order; an ``Exception`` instance in an item's slot fails that item
    only, while a raised exception fails the whole batch. ``errors`` maps the
    model's own exception types to an HTTP status (and optionally a message);
    anything unmapped answers 500. ``ray_options`` is handed unchanged to Ray
    Serve's ``Deployment.options()`` when the model is served by
    ``pool="ray"`` (``num_replicas``, ``ray_actor_options``,
    ``autoscaling_config``...); other pools ignore it. ``strict = True``
    validates ``Input`` in pydantic's strict mode, ``False`` leaves it as lax
    as ``Input`` itself allows, whatever the service says; ``None`` (the
    default) follows ``Service(strict=...)``.

    A streaming model answers each item with many outputs, batched
    continuously (see ``stepping``): ``start(item)`` makes an item's state,
    ``step(states)`` advances every active item by one output at a time,
    and ``done(state)`` says when an item has given its last; ``timeout_s``
    then bounds the wait for the first output.

    Settings are checked when the class is defined, so a typo fails at
    import rather than under load. A class that implements neither
    ``predict`` nor ``step`` (a shared base for other models) needs no
    ``Input``/``Output``.
    """

    Input: ClassVar[type[BaseModel]]
    Output: ClassVar[type[BaseModel]]
    max_batch_size: ClassVar[int] = 8
    max_wait_ms: ClassVar[float] = 5.0
    max_queue: ClassVar[int] = 1024
    timeout_s: ClassVar[float] = 30.0
    errors: ClassVar[ErrorMapping] = {}
    ray_options: ClassVar[Mapping[str, Any]] = {}
    strict: ClassVar[bool | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _check_model(cls)

    def setup(self) -> None:
        """Load what ``predict`` needs; runs once per worker, in the worker."""

    def predict(self, batch: list[Any]) -> Sequence[Any]:
        """Return one ``Output`` (or ``Exception``) per item of ``batch``, in order."""
        raise NotImplementedError(f"{type(self).__name__} must implement predict(self, batch)")

    def start(self, item: Any) -> Any:
        """A streaming model: the state of a new item, which ``step`` advances."""
        raise NotImplementedError(f"{type(self).__name__} must implement start(self, item) to stream")

    def step(self, states: list[Any]) -> Sequence[Any]:
        """A streaming model: advance each state by one step; its ``Output``, ``None`` (none yet) or ``Exception``."""
        raise NotImplementedError(f"{type(self).__name__} must implement step(self, states) to stream")

    def done(self, state: Any) -> bool:
        """A streaming model: whether the item of ``state`` has given its last output."""
        raise NotImplementedError(f"{type(self).__name__} must implement done(self, state) to stream")

    @classmethod
    def streams(cls) -> bool:
        """Whether the model streams (it implements ``step``) rather than answering once (``predict``)."""
        return cls.step is not Model.step

    def teardown(self) -> None:
        """Release what ``setup`` acquired; runs once per worker at shutdown."""


def _check_model(cls: type[Model]) -> None:
    if cls.streams():
        _check_streaming(cls)
    if cls.predict is not Model.predict or cls.streams():
        _check_schema(cls, "Input")
        _check_schema(cls, "Output")
    _check_number(cls, "max_batch_size", integer=True, zero_ok=False)
    _check_number(cls, "max_queue", integer=True, zero_ok=False)
    _check_number(cls, "max_wait_ms", integer=False, zero_ok=True)
    _check_number(cls, "timeout_s", integer=False, zero_ok=False)
    _check_errors(cls)
    if cls.strict is not None and not isinstance(cls.strict, bool):
        raise TypeError(f"{cls.__name__}.strict must be True, False or None (the service's), {_got(cls.strict)}")
    if not (isinstance(cls.ray_options, Mapping) and all(isinstance(key, str) for key in cls.ray_options)):
        raise TypeError(
            f"{cls.__name__}.ray_options must be a dict of Ray Serve deployment options, {_got(cls.ray_options)}"
        )


def _check_streaming(cls: type[Model]) -> None:
    if cls.predict is not Model.predict:
        raise TypeError(f"{cls.__name__} implements both predict and step: a model answers once or streams, not both")
    missing = [name for name in ("start", "done") if getattr(cls, name) is getattr(Model, name)]
    if missing:
        raise TypeError(
            f"{cls.__name__} streams (it implements step) but does not implement {' and '.join(missing)}: "
            "a streaming model needs start(self, item) -> state, step(self, states) and done(self, state)"
        )


def _got(value: object) -> str:
    return f"got {value!r} ({type(value).__name__})"


def _check_schema(cls: type[Model], attr: str) -> None:
    schema = getattr(cls, attr, None)
    if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
        shown = "nothing" if schema is None else _got(schema)
        raise TypeError(
            f"{cls.__name__}.{attr} must be a pydantic BaseModel subclass "
            f"(declare `class {attr}(BaseModel): ...` inside the model), {shown}"
        )


def _check_number(cls: type[Model], attr: str, *, integer: bool, zero_ok: bool) -> None:
    value = getattr(cls, attr)
    kinds: tuple[type, ...] = (int,) if integer else (int, float)
    expected = ("an int" if integer else "a number") + (" >= 0" if zero_ok else " > 0")
    valid_type = isinstance(value, kinds) and not isinstance(value, bool)
    if not valid_type or not (value >= 0 if zero_ok else value > 0):
        raise TypeError(f"{cls.__name__}.{attr} must be {expected}, {_got(value)}")


def _check_errors(cls: type[Model]) -> None:
    where = f"{cls.__name__}.errors"
    if not isinstance(cls.errors, Mapping):
        raise TypeError(f"{where} must be a dict of exception type -> status, {_got(cls.errors)}")
    for exc_type, target in cls.errors.items():
        if not (isinstance(exc_type, type) and issubclass(exc_type, Exception)):
            raise TypeError(f"{where} keys must be Exception subclasses, {_got(exc_type)}")
        status, message = target if isinstance(target, tuple) and len(target) == 2 else (target, "")
        if (
            not isinstance(status, int)
            or isinstance(status, bool)
            or not 400 <= status <= 599
            or not isinstance(message, str)
        ):
            raise TypeError(
                f"{where}[{exc_type.__name__}] must be an HTTP status 400-599 "
                f"or a (status, message) tuple, {_got(target)}"
            )

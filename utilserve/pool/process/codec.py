"""Encoding for the process pool's wire, apart from any socket: frames, payloads and errors.

A frame is a small pickled *head* (a tuple whose first item names the
message, see :mod:`.messages`) followed by zero or more *buffers* sent as
they are::

    <u32 head length> <u32 buffer count> <u64 length per buffer> head buffer...

Payloads (a model's ``Input`` or ``Output``) are pickled with protocol 5;
``bytes`` fields of at least :data:`OUT_OF_BAND_MIN` bytes, and anything
pickle already hands out of band (``bytearray``, numpy arrays), leave the
pickle stream as separate buffers, so a large input is copied only by the
kernel on its way to the model (see :mod:`.sockets`).

Why pickle is acceptable here: every socket of the pool is a Unix socket
with mode 0600 in a directory owned by the user, so only the user's own
processes can connect, and they can already run any code as that user.
"""

from __future__ import annotations

import io
import mmap
import pickle
import struct
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from ...errors import HTTPError

OUT_OF_BAND_MIN = 64 * 1024
"""Bytes values at least this long travel as their own buffer instead of inside the pickle."""
PREFIX = struct.Struct("<II")
INLINE_LIMIT = 64 * 1024
"""Frames up to this size are joined into one ``bytes``: cheaper to send than an iovec for small ones."""

Buffer = bytes | bytearray | memoryview | mmap.mmap
HTTPErrorValues = tuple[int, str, Any, dict[str, str]]
"""An ``HTTPError`` as plain values: status, message, detail, headers."""


class _OutOfBand:
    """Stands in for a large ``bytes`` value so the pickler hands it to the buffer callback."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        return _bytes_from_buffer, (pickle.PickleBuffer(self.data),)


def _bytes_from_buffer(buffer: Any) -> bytes:
    """The ``bytes`` a buffer holds: the received object itself when it is one (see ``FrameReader``)."""
    if type(buffer) is memoryview and type(buffer.obj) is bytes and buffer.nbytes == len(buffer.obj):
        return buffer.obj
    return buffer if type(buffer) is bytes else bytes(buffer)


def _is_large_bytes(value: Any) -> bool:
    return type(value) is bytes and len(value) >= OUT_OF_BAND_MIN


def _large_bytes_among(values: list[Any] | tuple[Any, ...], types: set[type]) -> bool:
    """Whether a list whose items are of ``types`` holds large ``bytes``: looked for item by item only when
    ``bytes`` is among those types, so a vector of floats is looked at once, in C."""
    return bytes in types and any(_is_large_bytes(v) for v in values)


def _lift(value: Any) -> Any:
    if _is_large_bytes(value):
        return _OutOfBand(value)
    if type(value) in (list, tuple) and _large_bytes_among(value, set(map(type, value))):
        return type(value)(_lift(v) for v in value)
    return value


class _Pickler(pickle.Pickler):
    """Pickles pydantic models with their large ``bytes`` fields lifted out of band.

    ``reducer_override`` is never called for exact ``bytes`` (CPython skips
    it for builtins), so the model's state is rewritten one level up.
    """

    def reducer_override(self, obj: Any) -> Any:
        if not isinstance(obj, BaseModel):
            return NotImplemented
        reduced: tuple[Any, ...] = obj.__reduce_ex__(5)  # type: ignore[assignment]  # a str only for globals
        state = reduced[2]
        fields = state.get("__dict__") if isinstance(state, dict) else None
        if not fields:
            return reduced
        lifted = {key: _lift(value) for key, value in fields.items()}
        if all(lifted[key] is fields[key] for key in fields):
            return reduced
        return (reduced[0], reduced[1], {**state, "__dict__": lifted}, *reduced[3:])


def pack(obj: Any) -> list[Buffer]:
    """``obj`` as ``[pickle stream, out-of-band buffer...]``; large buffers are views, not copies."""
    out_of_band: list[Buffer] = []

    def keep(buffer: pickle.PickleBuffer) -> bool:
        view = buffer.raw()
        if view.nbytes < OUT_OF_BAND_MIN:
            return True
        out_of_band.append(view)
        return False

    if not _has_large_bytes(obj):
        return [pickle.dumps(obj, protocol=5, buffer_callback=keep), *out_of_band]
    stream = io.BytesIO()
    _Pickler(stream, protocol=5, buffer_callback=keep).dump(obj)
    return [stream.getvalue(), *out_of_band]


def _has_large_bytes(obj: Any) -> bool:
    """Whether the slower lifting pickler is needed: a large ``bytes`` field, or a nested model that may hold one."""
    fields = getattr(obj, "__dict__", None)
    if not isinstance(obj, BaseModel) or not fields:
        return False
    for value in fields.values():
        if isinstance(value, BaseModel) or _is_large_bytes(value):
            return True
        if type(value) in (list, tuple) and _may_hold_large_bytes(value):
            return True
    return False


def _may_hold_large_bytes(values: list[Any] | tuple[Any, ...]) -> bool:
    """Whether a list holds models (which may hold large ``bytes``) or large ``bytes``."""
    types = set(map(type, values))
    return any(issubclass(kind, BaseModel) for kind in types) or _large_bytes_among(values, types)


def unpack(buffers: Sequence[Buffer]) -> Any:
    """The object :func:`pack` turned into ``buffers``."""
    return pickle.loads(buffers[0], buffers=buffers[1:])


def error_tuple(error: HTTPError) -> HTTPErrorValues:
    """An ``HTTPError`` as plain values (its ``detail`` as text if it would not pickle)."""
    detail = error.detail
    if detail is not None:
        try:
            pickle.dumps(detail, protocol=5)
        except Exception:  # noqa: BLE001 - any unpicklable detail is shown as text
            detail = str(detail)
    return error.status, error.message, detail, dict(error.headers)


def to_error(values: HTTPErrorValues) -> HTTPError:
    status, message, detail, headers = values
    return HTTPError(status, message, detail, headers)


def answer(name: str, error: HTTPErrorValues | None, buffers: Sequence[Buffer]) -> Any:
    """A worker's answer: the ``Output`` it holds; raises its ``HTTPError``, or a 500 if it does not decode."""
    if error is not None:
        raise to_error(error)
    try:
        return unpack(buffers) if buffers else None
    except Exception as exc:  # noqa: BLE001 - an undecodable output fails its item
        raise HTTPError(500, f"model {name}: could not decode the output ({type(exc).__name__})") from None


def encode(name: str, outcome: Any) -> list[Buffer] | HTTPError:
    """A model's output as the buffers it travels in; an error stays an error, and so does an output that
    will not pickle (a 500 for its item only)."""
    if isinstance(outcome, HTTPError):
        return outcome
    try:
        return pack(outcome)
    except Exception as exc:  # noqa: BLE001 - an unpicklable output fails its item only
        return HTTPError(500, f"model {name}: could not send the output ({type(exc).__name__}: {exc})")


def frame(head: tuple[Any, ...], buffers: Sequence[Buffer] = ()) -> list[Buffer]:
    """One frame as the parts to write: a small frame is one joined ``bytes``, a large one keeps its buffers apart."""
    head_bytes = pickle.dumps(head, protocol=5)
    sizes = [len(b) if type(b) is bytes else memoryview(b).nbytes for b in buffers]
    prefix = PREFIX.pack(len(head_bytes), len(sizes))
    if sizes:
        prefix += struct.pack(f"<{len(sizes)}Q", *sizes)
    if sum(sizes) <= INLINE_LIMIT:
        return [b"".join((prefix, head_bytes, *buffers))]
    return [prefix + head_bytes, *buffers]

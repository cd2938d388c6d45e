"""The access log: one line per request on the ``utilserve.access`` logger, plain or JSON.

Its fields go on each record as attributes (``extra``), so a JSON line
carries them one by one, and so does any handler a user configures. When
nobody has given the logger a handler, :func:`configure` gives it one on
stderr: the line shows under every server with no logging setup. That one
writes its lines in batches, as nginx's ``buffer=`` does: a busy server
answers thousands of requests a second, and a write per line would cost
more than the rest of the line's work.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import TextIO, cast

from pythonjsonlogger.json import JsonFormatter

from ..concurrency import current_pid, start_without_signals

access_logger = logging.getLogger("utilserve.access")

SWITCH = "UTILSERVE_ACCESS_LOG"
"""``0`` turns the access log off (read by ``Service``)."""
FORMAT = "UTILSERVE_LOG_FORMAT"
"""``json`` for one JSON object per line; plain text otherwise."""

FIELDS = ("method", "route", "path", "status", "duration_ms", "bytes", "request_id", "pid")
PLAIN = '%(method)s %(path)s %(status)s %(duration_ms).1fms %(bytes)s route="%(route)s" id=%(request_id)s pid=%(pid)s'


def configure(enabled: bool = True) -> None:
    """Turn the access log on or off; give it a stderr handler if it has none, and INFO if it has no level."""
    if not enabled:
        access_logger.disabled = True
        return
    access_logger.disabled = False
    if access_logger.level == logging.NOTSET:
        access_logger.setLevel(logging.INFO)
    if access_logger.handlers:
        return
    handler = BatchingStreamHandler(sys.stderr)
    handler.setFormatter(formatter(os.environ.get(FORMAT, "plain")))
    access_logger.addHandler(handler)
    access_logger.propagate = False


def flush() -> None:
    """Write out the lines that wait in the access log's handlers (a process about to exit)."""
    for handler in access_logger.handlers:
        handler.flush()


class BatchingStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]  # generic only in typeshed
    """Writes its lines in batches: at most ``FLUSH_S`` after the first, or once ``BATCH_BYTES`` wait.

    A thread of each process that logs writes them out; :meth:`flush`
    (logging's at exit, the service's at its stop) writes them at once. A
    forked process starts with none of its parent's: the parent writes them.
    """

    FLUSH_S = 0.25
    BATCH_BYTES = 64 * 1024

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        self._size = 0
        self._pid = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:  # noqa: BLE001 - logging's own policy: report, never raise into the request
            self.handleError(record)
            return
        self._add(line)

    def append(self, line: str) -> None:
        """One line as the formatter would have made it, without a record (see ``log_request``)."""
        with self.lock:  # type: ignore[union-attr]  # made in Handler.__init__
            self._add(line + self.terminator)

    def _add(self, line: str) -> None:
        if self._pid != current_pid():
            self._pending.clear()
            self._size = 0
            self._pid = current_pid()
            start_without_signals(threading.Thread(target=self._flush_every, name="utilserve-access-log", daemon=True))
        self._pending.append(line)
        self._size += len(line)
        if self._size >= self.BATCH_BYTES:
            self._write()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]  # made in Handler.__init__
            self._write()

    def _write(self) -> None:
        if self._pending:
            text = "".join(self._pending)
            self._pending.clear()
            self._size = 0
            self.stream.write(text)
            self.stream.flush()

    def _flush_every(self) -> None:
        pid = current_pid()
        while self._pid == pid:
            time.sleep(self.FLUSH_S)
            self.flush()


def formatter(kind: str) -> logging.Formatter:
    if kind == "json":
        return _JsonFormatter(["asctime", "levelname", "name", "message"], timestamp=False)
    return _PlainFormatter("%(asctime)s %(message)s")


class _SecondCache(logging.Formatter):
    """``formatTime`` as logging's own, with the text of the current second made once, not once per line."""

    _second: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt or not self.default_msec_format or self.converter is not time.localtime:
            return super().formatTime(record, datefmt)
        return self.time_text(record.created)

    def time_text(self, created: float) -> str:
        second, text = self._second
        if second != int(created):
            second = int(created)
            text = time.strftime(self.default_time_format, time.localtime(second))
            self._second = (second, text)
        return f"{text},{int((created - second) * 1000):03d}"  # logging's default_msec_format, "%s,%03d"


class _PlainFormatter(_SecondCache):
    pass


class _JsonFormatter(_SecondCache, JsonFormatter):
    pass


def log_request(
    method: str, route: str, path: str, status: int, duration_ms: float, size: int | None, request_id: str
) -> None:
    """One line; ``size`` is None for a streamed body, whose length is not known yet."""
    if not access_logger.isEnabledFor(logging.INFO):
        return
    fields: dict[str, object] = {
        "method": method,
        "route": route,
        "path": path,
        "status": status,
        "duration_ms": round(duration_ms, 3),
        "bytes": size,
        "request_id": request_id,
        "pid": current_pid(),
    }
    args = fields if size is not None else {**fields, "bytes": "-"}
    direct = _direct_handler()
    if direct is not None:
        formatter = cast(_PlainFormatter, direct.formatter)
        direct.append(f"{formatter.time_text(time.time())} {PLAIN % args}")
        return
    # What ``access_logger.info(PLAIN, args, extra=fields)`` does, less its search of the stack for the caller.
    record = access_logger.makeRecord(access_logger.name, logging.INFO, _FILE, _LINE, PLAIN, args, None, _FUNCTION)
    record.__dict__.update(fields)
    access_logger.handle(record)


def _direct_handler() -> BatchingStreamHandler | None:
    """utilserve's own plain handler when it is the only one and nothing filters: a line then needs no record."""
    handlers = access_logger.handlers
    if len(handlers) != 1 or access_logger.filters or access_logger.propagate:
        return None
    handler = handlers[0]
    formatter = handler.formatter
    if type(handler) is not BatchingStreamHandler or handler.filters or type(formatter) is not _PlainFormatter:
        return None
    as_made = formatter.converter is time.localtime and formatter.default_msec_format == "%s,%03d"
    return handler if as_made and handler.level <= logging.INFO else None


_FILE, _LINE, _FUNCTION = log_request.__code__.co_filename, log_request.__code__.co_firstlineno, log_request.__name__
"""Where each access log record comes from, as logging would name it: :func:`log_request`."""

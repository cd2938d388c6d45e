"""``Outputs``: a streaming model's outputs for one item, as a blocking caller reads them.

An iterator, like a generator: opened at the first read, so that the
errors up to the first output (invalid input, 503, 504) come from it, and
closed at the end, on an error, by ``close()`` or when dropped, which takes
the item out of the model's queue or steps. Unlike a generator it can also
wait with a bound (:meth:`Outputs.next_within`), so an event stream can
send heartbeats between outputs with no thread of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Self

from ..errors import HTTPError
from .observed import CANCELLED, OK, outcome_of
from .stream import END, Stream

Opener = Callable[[], tuple[Stream, float, HTTPError]]
"""Queues the item: its stream, how long its first output may take, and the 504 of one that did not come."""
Ended = Callable[[str], None]
"""Told once how an opened item ended (see ``observed``); the opener tells of an item it failed to open."""


class Outputs(Iterator[Any]):
    """One item's outputs, in order; a single reader's."""

    def __init__(self, opener: Opener, ended: Ended) -> None:
        self._opener = opener
        self._ended: Ended | None = ended
        self._stream: Stream | None = None
        self._closed = False

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> Any:
        output = self.next_within(None)
        if output is END:
            raise StopIteration
        return output

    def next_within(self, timeout: float | None) -> Any:
        """The next output, or :data:`END` after the last; ``TimeoutError`` if none came within ``timeout``.

        The first output's wait is bounded by the item's deadline instead, and its passing is the 504.
        """
        if self._closed:
            return END
        try:
            if self._stream is None:
                self._stream, first_within, timed_out = self._opener()
                try:
                    output = self._stream.next(first_within)
                except TimeoutError:
                    raise timed_out from None
            else:
                output = self._stream.next(timeout)
        except TimeoutError:
            raise
        except BaseException as exc:
            self._end(outcome_of(exc))
            self.close()
            raise
        if output is END:
            self._end(OK)
            self.close()
        return output

    def close(self) -> None:
        """Done with the outputs: the model drops the item at its next step, or from its queue."""
        self._end(CANCELLED)
        self._closed = True
        if self._stream is not None:
            self._stream.close()

    def __del__(self) -> None:
        """Dropped unclosed: the model drops the item, uncounted, since a finalizer may run in the middle of
        another metric's update on this thread, and prometheus_client's lock is not reentrant."""
        self._ended = None
        self.close()

    def _end(self, outcome: str) -> None:
        """Tell how the item ended, once, if it was opened."""
        ended, self._ended = self._ended, None
        if ended is not None and self._stream is not None:
            ended(outcome)

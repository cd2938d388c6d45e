"""Signals in the pool's processes: each takes those its starter's thread blocked once its handlers are set.

The pool's threads in web processes and the supervisor block every signal
but faults (:func:`utilserve.concurrency.start_without_signals`). A model
worker's threads do not: the model runs on them, and the processes it
starts would inherit the mask.

A new process starts with the signal mask of the thread that started it:
the pool's processes come from such threads, or from a uWSGI thread that
blocks every signal, so they unblock them once their handlers are set.
"""

from __future__ import annotations

import signal


def unblock_signals() -> None:
    """In a pool process just started, once its handlers are set: take the signals its starter's thread blocked."""
    signal.pthread_sigmask(signal.SIG_SETMASK, ())

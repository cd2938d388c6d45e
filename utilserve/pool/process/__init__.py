"""``pool="process"``: one model pool shared by every web worker process of a server.

Three kinds of process take part, and each has its folder here:

- **web processes** (``client/``): the server's workers, as many as gunicorn
  or uWSGI forks. Each keeps one control connection to the supervisor
  (:class:`~.client.supervisor.SupervisorConnection`), on which it learns
  each model's status and where its model workers listen, and its own
  connections to the model workers (:class:`~.client.workers.WorkerConnections`):
  one shared per worker for async callers, one per thread for blocking ones.
- **the supervisor** (``supervisor/``), one per service and server: a fresh
  interpreter started by the first web process that finds none (a lock file
  elects it, see :mod:`.rendezvous`), or a sidecar started with ``utilserve
  pool``. It starts and restarts the model workers and pushes every status
  change to the web processes. It is the control plane only: no item passes
  through it. One the web processes started exits with the server's master.
- **model workers** (``worker/``), ``workers`` per model: fresh interpreters
  (spawned, never forked: CUDA-safe), each with one ``Model`` instance and
  the batcher. Each listens on a Unix socket that its supervisor keeps
  across restarts.

The life of a request: an endpoint calls ``ModelHandle.predict``; the web
process picks the model worker where it has the fewest items in flight and
sends ``SUBMIT`` with the pickled ``Input``; the worker queues it with items
from every web process, runs the batch, and answers ``RESULT`` to each
sender, a batch's answers in one write per connection. A worker that dies
closes its connections, so what was in flight answers 503 at once; the
supervisor starts a successor and publishes it.

A streaming model's item goes the same way as ``STREAM``, over the process's
shared connection to the worker; its outputs come back as ``CHUNK`` frames
among the other answers, as far as the credit its reader granted goes, and
the worker runs steps where it would run batches (see ``worker/streams.py``).

Shared by all three: :mod:`.messages` (the wire, named once), :mod:`.codec`
(frames and payloads, no I/O), :mod:`.sockets` (frames over sockets,
private listening sockets), :mod:`.spec` (what a process needs to host a
model), :mod:`.spin` (polling before sleeping), :mod:`.signals` (a
process's signals reach its main thread, never a pool thread).
"""

from .pool import ProcessPool

__all__ = ["ProcessPool"]

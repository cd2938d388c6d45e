"""``pool="ray"``: the same ``Model`` on Ray Serve replicas, for more than one machine.

- :mod:`.pool`: ``RayPool``, a model's deployment seen from one serving
  process, reached through Ray's deployment handles; Ray's failures become
  the error contract.
- :mod:`.cluster`: the process's one connection to the Ray cluster, safe
  under servers that fork.
- :mod:`.replica`: what runs in a replica: one Model instance, batches formed
  by Ray Serve's ``@serve.batch``, or a streaming model's steps.
- :mod:`.feed`: a streamed call's outputs into the reader's bounded stream.
"""

from .pool import RayPool

__all__ = ["RayPool"]

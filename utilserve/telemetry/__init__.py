"""What a running service tells about itself: request ids, metrics, logs and traces.

Everything here sits below the request path and the pool, so both record
into it without knowing each other:

- :mod:`.context` holds the origin of the work under way (the request id
  and the trace context). The handler sets it per request; a model handle
  reads it as it submits an item, and each pool carries it to the batch,
  across processes and Ray included.
- :mod:`.metrics` defines the Prometheus metrics and renders ``/metrics``.
  They are always in prometheus_client's multiprocess mode, sharing one
  directory per server: a scrape of any worker process shows the totals of
  all of them, the process pool's model workers included. :mod:`.tally`
  counts the requests of a process in plain numbers and writes them there
  a moment later, so that a request costs no file write.
- :mod:`.logs` writes the access log, plain or JSON.
"""

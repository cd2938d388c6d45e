"""gunicorn settings for a utilserve service whose models all web workers share.

    gunicorn -c deploy/gunicorn.conf.py myproject.app:app
    gunicorn -c deploy/gunicorn.conf.py -b 0.0.0.0:8000 -w 8 myproject.app:app   # flags override

Every setting reads an environment variable first, so one file serves
every deployment:

    UTILSERVE_BIND          listen address               (127.0.0.1:8000)
    WEB_CONCURRENCY         worker processes             (4)
    UTILSERVE_WORKER_CLASS  sync | gthread | uvicorn_worker.UvicornWorker  (gthread)
                            sync: one request at a time per worker; gthread: a WSGI
                            backend (flask, django, falcon) with threads; the uvicorn
                            worker: an ASGI backend (starlette, fastapi, django/falcon asgi)
    UTILSERVE_THREADS       threads per gthread worker   (8)
    UTILSERVE_POOL          pool kind for every model    (process, unless already set)
    FORWARDED_ALLOW_IPS     gunicorn's own: peers whose X-Forwarded-Proto counts (127.0.0.1,::1);
                            behind nginx (deploy/nginx.conf), bind unix:PATH, whose peer
                            always counts: the socket's permissions decide who connects

How the pool is wired in: ``UTILSERVE_POOL=process`` makes each model a
process pool. The first worker that serves a request (or, with the uvicorn
worker, runs its lifespan startup) starts one pool supervisor for the
service, the others connect to it, and it exits after the master does,
once running batches are done. ``post_fork`` names the master as the pool's
owner explicitly. ``preload_app`` may be on or off: models never load in the
master, and a worker that gunicorn recycles (``max_requests``) does not take
the pool down with it. For a sidecar pool (``utilserve pool TARGET --socket
PATH``), set ``UTILSERVE_POOL_SOCKET=PATH`` in the environment.
"""

import os

os.environ.setdefault("UTILSERVE_POOL", "process")

bind = os.environ.get("UTILSERVE_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
worker_class = os.environ.get("UTILSERVE_WORKER_CLASS", "gthread")
threads = int(os.environ.get("UTILSERVE_THREADS", "8"))
graceful_timeout = 30
timeout = 60
preload_app = False


def post_fork(server, worker):
    """Name the master as the pool owner: the supervisor lives exactly as long as it does."""
    os.environ["UTILSERVE_POOL_OWNER"] = str(server.pid)

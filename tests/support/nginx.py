"""nginx in front of a service, from the deploy/ files as they are: deploy/nginx.conf filled in as an operator does,
the service under gunicorn (HTTP) or uWSGI (its own protocol) on a Unix socket behind it.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from .servers import BIN, HOST, ROOT, Server, free_port

DEPLOY = ROOT / "deploy"
TEMPLATE = DEPLOY / "nginx.conf"
PLACEHOLDER = re.compile(r"\$\{(UTILSERVE_[A-Z_]+)\}")
DEFAULT_MAX_BODY_SIZE = 10 * 1024 * 1024
"""Service(max_body_size=...)'s default, which the filled config repeats."""
PASS = {"gunicorn": "proxy_pass http://utilserve", "uwsgi": "uwsgi_pass utilserve"}
"""UTILSERVE_PASS for each server, as the config's header gives it."""


def nginx_binary() -> str:
    """nginx on PATH or where Debian puts it (/usr/sbin is not on every user's PATH)."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        missing = "nginx is not installed: apt-get install -y nginx (.ci/run does)"
        if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
            pytest.fail(f"{missing}; CI runs the nginx tests", pytrace=False)
        pytest.skip(missing)
    return found


def fill(template: str, values: Mapping[str, str]) -> str:
    """``template`` with each ``${UTILSERVE_...}`` replaced, as envsubst does; every placeholder needs a value."""
    missing = set(PLACEHOLDER.findall(template)) - values.keys()
    if missing:
        raise KeyError(f"no value for {sorted(missing)}")
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def upstream_argv(server: str, sock: Path, app: str) -> list[str]:
    """``server`` serving ``app`` on the Unix socket ``sock`` with its deploy/ settings, two workers."""
    if server == "gunicorn":
        settings = ["-c", str(DEPLOY / "gunicorn.conf.py"), "-b", f"unix:{sock}", "-w", "2"]
        return [sys.executable, "-m", "gunicorn", *settings, app]
    settings = ["--ini", str(DEPLOY / "uwsgi.ini"), "--socket", str(sock), "--processes", "2"]
    return [str(BIN / "uwsgi"), *settings, "--virtualenv", sys.prefix, "--module", app]


def _connects(sock: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(str(sock))
    return True


@dataclass
class Stack:
    """nginx on ``url``, the service behind it on ``sock``."""

    nginx: Server
    upstream: Server
    sock: Path

    @property
    def url(self) -> str:
        return self.nginx.url

    @property
    def port(self) -> int:
        return self.nginx.port

    def stop(self) -> None:
        self.nginx.stop()
        self.upstream.stop()


def start_nginx(
    workdir: Path,
    values: Mapping[str, str],
    edit: Callable[[str], str] = lambda conf: conf,
    probe: str | Callable[[], bool] = "/livez",
) -> Server:
    """nginx with deploy/nginx.conf filled from ``values`` (and ``edit``-ed), in the foreground, prefix ``workdir``;
    ready once ``probe`` says so (by default, once /livez answers 200 through it)."""
    port = free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(edit(fill(TEMPLATE.read_text(), {"UTILSERVE_LISTEN": f"{HOST}:{port}", **values})))
    # As root nginx would run its workers as nobody, who may not enter the test's private directories.
    user = " user root;" if os.geteuid() == 0 else ""
    argv = [nginx_binary(), "-e", "stderr", "-p", str(workdir), "-c", str(conf)]
    return Server([*argv, "-g", f"daemon off; master_process on;{user}"], port).start(timeout=30, probe=probe)


def start_stack(
    server: str,
    app: str,
    workdir: Path,
    env: Mapping[str, str] | None = None,
    edit: Callable[[str], str] = lambda conf: conf,
) -> Stack:
    """``app`` under ``server`` ("gunicorn" or "uwsgi") on a Unix socket in ``workdir``, nginx in front of it."""
    sock = workdir / f"{server}.sock"
    upstream = Server(upstream_argv(server, sock, app), 0, {**(env or {})})
    upstream.start(probe=lambda: _connects(sock))
    values = {
        "UTILSERVE_UPSTREAM": f"unix:{sock}",
        "UTILSERVE_PASS": PASS[server],
        "UTILSERVE_MAX_BODY_SIZE": str(DEFAULT_MAX_BODY_SIZE),
    }
    try:
        nginx = start_nginx(workdir, values, edit)
    except BaseException:
        upstream.stop()
        raise
    return Stack(nginx, upstream, sock)

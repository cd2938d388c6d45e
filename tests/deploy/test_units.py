"""deploy/'s systemd units and Dockerfile, as far as they can be checked without systemd as PID 1 or a Docker daemon.

The units' commands run here as systemd would start them, with their install paths moved to this checkout and
its virtualenv: the sidecar pool, gunicorn on its Unix socket using that pool, nginx in front. systemd-analyze
checks the units' syntax. The Dockerfile is read: what it runs and names must exist.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest

from ..support.models.log import events
from ..support.nginx import DEFAULT_MAX_BODY_SIZE, DEPLOY, PASS, start_nginx
from ..support.servers import ROOT, Server

Unit = dict[str, dict[str, list[str]]]


def read_unit(name: str) -> Unit:
    """A unit file's sections, each key's values in order (systemd keys may repeat)."""
    unit: Unit = {}
    section: dict[str, list[str]] = {}
    for line in (DEPLOY / name).read_text().splitlines():
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], {})
        elif line and not line.startswith("#"):
            key, _, value = line.partition("=")
            section.setdefault(key, []).append(value)
    return unit


def moved(text: str, run: Path) -> str:
    """``text`` with the units' install paths replaced by this checkout, its virtualenv and ``run``."""
    for installed, here in [
        ("/srv/utilserve/venv", sys.prefix),
        ("/srv/utilserve/app", str(ROOT)),
        ("/etc/utilserve/gunicorn.conf.py", str(DEPLOY / "gunicorn.conf.py")),
        ("/run/", f"{run}/"),
    ]:
        text = text.replace(installed, here)
    return text


def environment(unit: Unit, env_file: Mapping[str, str], run: Path) -> dict[str, str]:
    """What the unit's process gets: its env file's values, then its own Environment= lines."""
    own = dict(line.split("=", 1) for line in unit["Service"].get("Environment", []))
    return {**env_file, **{key: moved(value, run) for key, value in own.items()}}


def command(unit: Unit, env: Mapping[str, str], run: Path) -> list[str]:
    """ExecStart as systemd runs it: words split, each ``${NAME}`` word replaced by one value."""
    (line,) = unit["Service"]["ExecStart"]
    words = shlex.split(moved(line, run))
    return [re.sub(r"\$\{(\w+)\}", lambda match: env[match.group(1)], word) for word in words]


@pytest.fixture
def run() -> Iterator[Path]:
    """Stands in for /run, with each unit's RuntimeDirectory; short, for the Unix sockets in it."""
    with tempfile.TemporaryDirectory(prefix="utilserve-run-") as path:
        for name in ("utilserve.service", "utilserve-pool.service"):
            (Path(path) / read_unit(name)["Service"]["RuntimeDirectory"][0]).mkdir(mode=0o700)
        yield Path(path)


def test_the_units_commands_serve_through_nginx_with_the_sidecar_pool(run: Path, model_log: Path) -> None:
    web, pool = read_unit("utilserve.service"), read_unit("utilserve-pool.service")
    env_file = {
        "UTILSERVE_APP": "tests.apps.pool_process:app",
        "UTILSERVE_TARGET": "tests.apps.pool_process:service",
        "UTILSERVE_POOL_SOCKET": f"{run}/utilserve-pool/pool.sock",
        "WEB_CONCURRENCY": "2",
    }
    pool_env = environment(pool, env_file, run)
    web_env = environment(web, env_file, run)
    sidecar = Server(command(pool, pool_env, run), 0, pool_env, cwd=moved(pool["Service"]["WorkingDirectory"][0], run))
    sidecar.start(probe=lambda: len(events(model_log, event="setup")) == 2)
    try:
        gunicorn = Server(command(web, web_env, run), 0, web_env, cwd=moved(web["Service"]["WorkingDirectory"][0], run))
        sock = web_env["UTILSERVE_BIND"].removeprefix("unix:")
        gunicorn.start(probe=lambda: Path(sock).exists())
        try:
            values = {
                "UTILSERVE_UPSTREAM": f"unix:{sock}",
                "UTILSERVE_PASS": PASS["gunicorn"],
                "UTILSERVE_MAX_BODY_SIZE": str(DEFAULT_MAX_BODY_SIZE),
            }
            nginx = start_nginx(run, values)
            try:
                answer = httpx.get(nginx.url + "/api/work?x=3", timeout=30).json()
            finally:
                nginx.stop()
        finally:
            gunicorn.stop()
    finally:
        sidecar.stop()
    assert answer["x"] == 3
    assert {e["ppid"] for e in events(model_log, event="setup")} == {sidecar.process.pid}  # type: ignore[union-attr]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("name", ["utilserve.service", "utilserve-pool.service"])
def test_systemd_analyze_verifies_the_unit(name: str, tmp_path: Path) -> None:
    """Its install paths moved here, so that systemd-analyze finds the programs it would run."""
    unit = tmp_path / name
    unit.write_text(moved((DEPLOY / name).read_text(), tmp_path))
    checked = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    problems = [line for line in checked.stderr.splitlines() if name in line]
    assert checked.returncode == 0 and not problems, checked.stderr


def test_the_dockerfile_runs_what_exists() -> None:
    """Read, not built: no Docker daemon here. It serves with deploy/gunicorn.conf.py, as a user, on the port
    it exposes, and its health check asks a route every service has."""
    lines = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
    instructions = [line.split(None, 1) for line in lines if line.strip() and not line.startswith("#")]
    given = dict(instructions)
    assert instructions[0][0] == "FROM"
    assert "deploy/gunicorn.conf.py" in given["CMD"] and (DEPLOY / "gunicorn.conf.py").exists()
    assert given["USER"] not in ("root", "0")
    assert "UTILSERVE_BIND=0.0.0.0:8000" in " ".join(rest for word, rest in instructions if word == "ENV")
    assert given["EXPOSE"] == "8000"
    assert "/readyz" in given["HEALTHCHECK"]

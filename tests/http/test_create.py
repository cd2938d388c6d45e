"""`utilserve create`: a new project passes its own tests and serves, by the commands its README gives.

The generated project depends on ``utilserve`` by name, which cannot be
installed from a package index here. So each README command is checked to
begin with its install step (``python3 -m venv .venv && .venv/bin/pip install
...``), and the rest of it is run as written, with this interpreter's
``bin/`` for ``.venv/bin/`` and PYTHONPATH at this checkout, where
``utilserve`` imports from.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from utilserve.backends import BACKENDS

from ..support.servers import BIN, ROOT, Server, free_port

INSTALL = re.compile(r"python3 -m venv \.venv && \.venv/bin/pip install (-e \.|-e '\.\[test\]') && (?P<rest>.+)")


def _utilserve(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "utilserve", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def _readme_commands(project: Path) -> tuple[list[str], list[str]]:
    """The README's start and test commands, less their install step, with this venv for ``.venv``."""
    lines = [line for line in (project / "README.md").read_text().splitlines() if line.startswith("python3 -m venv")]
    assert len(lines) == 2, lines
    commands = []
    for line in lines:
        matched = INSTALL.fullmatch(line)
        assert matched, f"not an install step, then a command: {line}"
        argv = shlex.split(matched["rest"])
        assert argv[0].startswith(".venv/bin/"), argv
        commands.append([str(BIN / argv[0].removeprefix(".venv/bin/")), *argv[1:]])
    return commands[0], commands[1]


def _create(tmp_path: Path, *args: str) -> Path:
    result = _utilserve("create", "demo", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return tmp_path / "demo"


def _passes_its_tests(project: Path, test: list[str], expected: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(test, cwd=project, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{expected} passed" in result.stdout, result.stdout


def test_a_new_project_passes_its_tests_and_serves(tmp_path: Path, running: Callable[[Server], Server]) -> None:
    project = _create(tmp_path)
    start, test = _readme_commands(project)
    _passes_its_tests(project, test, expected=3)

    port = free_port()
    server = running(Server([*start, "--host", "127.0.0.1", "--port", str(port)], port, cwd=project).start())
    assert httpx.get(server.url + "/api/hello?name=x").json() == {"message": "hello x"}


def test_a_new_project_with_a_model_on_flask(tmp_path: Path, running: Callable[[Server], Server]) -> None:
    """Also served by gunicorn with the generated deploy/gunicorn.conf.py: the model in a shared process pool."""
    project = _create(tmp_path, "--model", "--backend", "flask")
    start, _ = _readme_commands(project)

    port = free_port()
    server = running(Server([*start, "--host", "127.0.0.1", "--port", str(port)], port, cwd=project).start())
    assert httpx.post(server.url + "/api/double", json={"x": 2}).json() == {"y": 4.0}

    port = free_port()
    gunicorn = [str(BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "-w", "2", "demo.app:app"]
    env = {"UTILSERVE_BIND": f"127.0.0.1:{port}"}
    server = running(Server(gunicorn, port, env, cwd=project).start(probe="/readyz"))
    assert httpx.post(server.url + "/api/double", json={"x": 3}).json() == {"y": 6.0}
    assert httpx.get(server.url + "/api/quadruple?x=1").json() == {"y": 4.0}
    assert server.stop(grace=10) == 0
    assert server.killed == [], server.output()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_new_project_with_a_model_passes_its_tests_on_every_backend(backend: str, tmp_path: Path) -> None:
    """Its code is clean by ruff's defaults and more, and deploy/ holds what its backend can be served with."""
    project = _create(tmp_path, "--model", "--backend", backend)
    assert f'backend="{backend}"' in (project / "demo" / "app.py").read_text()
    _passes_its_tests(project, _readme_commands(project)[1], expected=7)
    ruff = str(BIN / "ruff")
    rules = "E,F,W,I,B,UP,SIM,C4,RUF"
    lint = subprocess.run([ruff, "check", "--isolated", "--select", rules, "."], cwd=project, capture_output=True)
    assert lint.returncode == 0, lint.stdout.decode()
    formatted = subprocess.run([ruff, "format", "--isolated", "--check", "."], cwd=project, capture_output=True)
    assert formatted.returncode == 0, formatted.stdout.decode()
    deploy = {path.name for path in (project / "deploy").iterdir()}
    wsgi, asgi = backend in ("flask", "django", "falcon"), backend in ("starlette", "fastapi")
    assert ("gunicorn.conf.py" in deploy) == (wsgi or asgi)
    assert ("uwsgi.ini" in deploy) == wsgi
    assert "nginx.conf" in deploy
    nginx = (project / "deploy" / "nginx.conf").read_text()
    assert "proxy_pass http://demo_service;" in nginx and "proxy_set_header Host $host;" in nginx


def test_an_existing_directory_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "keep.txt").write_text("mine")
    result = _utilserve("create", "demo", cwd=tmp_path)
    assert result.returncode != 0
    assert f"{tmp_path / 'demo'} already exists" in result.stderr
    assert [path.name for path in (tmp_path / "demo").iterdir()] == ["keep.txt"]


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("my-app", "must be a lowercase Python identifier"),
        ("1st", "must be a lowercase Python identifier"),
        ("class", "must be a lowercase Python identifier"),
        ("Demo", "must be a lowercase Python identifier"),
        ("json", "would shadow"),
        ("flask", "would shadow"),
    ],
)
def test_a_bad_name_is_refused_saying_what_was_given(name: str, says: str, tmp_path: Path) -> None:
    result = _utilserve("create", name, cwd=tmp_path)
    assert result.returncode != 0
    assert says in result.stderr and repr(name) in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_backend_is_refused_with_the_choices(tmp_path: Path) -> None:
    result = _utilserve("create", "demo", "--backend", "bottle", cwd=tmp_path)
    assert result.returncode == 2
    assert "invalid choice: 'bottle'" in result.stderr and "flask" in result.stderr
    assert list(tmp_path.iterdir()) == []

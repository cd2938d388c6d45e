"""Ray clusters for tests: a head and nodes that join it, loopback only, each with its own temp dir, stopped by pid.

``ray stop`` would end every Ray process on the host by name, including
clusters that are not the test's. Instead a process belongs to this
cluster when it carries a marker in its environment (Ray's processes
inherit ``ray start``'s) or holds a file under the cluster's temp dir (the
agents overwrite their environment with their process title), and
:meth:`RayNode.stop` signals exactly those, in ``ray stop``'s order.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from .processes import alive
from .servers import ROOT, free_port

LOOPBACK = {"RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
"""Keep Ray on 127.0.0.1 (its default is the host's outward address) and off any token left in ~/.ray."""
HEALTH_CHECKS = {
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_timeout_ms": "500",
    "RAY_health_check_failure_threshold": "3",
}
"""A head's checks of its nodes, as deploy/ray/raycluster.yaml sets them: a node is lost after 1.5 s of silence."""


class RayNode:
    """``ray start`` on loopback: with no ``head``, a head on a free port (``address`` is what web workers
    connect to); else a node that joins ``head``, with ``resources`` of its own."""

    def __init__(
        self,
        env: dict[str, str],
        num_cpus: int = 4,
        head: RayNode | None = None,
        resources: dict[str, float] | None = None,
    ) -> None:
        self.marker = f"UTILSERVE_TEST_RAY={uuid.uuid4().hex}"
        key, _, value = self.marker.partition("=")
        # a short path: Ray's Unix sockets live under it and their names are limited to 107 bytes
        self.temp_dir = Path(tempfile.mkdtemp(prefix="usr-", dir="/tmp"))
        self.address = head.address if head is not None else f"127.0.0.1:{free_port()}"
        self.head = head
        self.num_cpus = num_cpus
        self.resources = resources or {}
        self.env = {**os.environ, **LOOPBACK, "PYTHONPATH": str(ROOT), **env, key: value}

    def start(self, timeout: float = 120.0) -> RayNode:
        ports = {
            "--dashboard-agent-listen-port": str(free_port()),
            "--dashboard-agent-grpc-port": str(free_port()),
            "--runtime-env-agent-port": str(free_port()),
            "--metrics-export-port": str(free_port()),
        }
        if self.head is None:
            role = ["--head", "--include-dashboard=false"]
            ports |= {
                "--port": self.address.rpartition(":")[2],
                "--ray-client-server-port": str(free_port()),
                "--dashboard-port": str(free_port()),
            }
        else:
            role = [f"--address={self.address}"]
        argv = [
            sys.executable,
            "-m",
            "ray.scripts.scripts",
            "start",
            *role,
            "--node-ip-address=127.0.0.1",
            f"--num-cpus={self.num_cpus}",
            f"--resources={json.dumps(self.resources)}",
            "--disable-usage-stats",
            f"--temp-dir={self.temp_dir}",
            *(f"{flag}={value}" for flag, value in ports.items()),
        ]
        try:
            subprocess.run(argv, env=self.env, cwd=ROOT, capture_output=True, text=True, check=True, timeout=timeout)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            self.stop()
            raise RuntimeError(f"ray start failed:\n{exc.stdout}\n{exc.stderr}") from exc
        return self

    def raylet(self) -> int:
        """The pid of this node's raylet."""
        (pid,) = [pid for pid in self.pids() if _name(pid) == "raylet"]
        return pid

    def pids(self) -> list[int]:
        """Live processes of this cluster; zombies have neither environment nor files left."""
        return [int(entry) for entry in os.listdir("/proc") if entry.isdigit() and self._owns(entry)]

    def stop(self, grace: float = 30.0) -> list[int]:
        """Stop the raylet, then the rest, then the GCS, as ``ray stop`` does; return what is left.

        Each step sends SIGTERM and escalates to SIGKILL after a third of ``grace``.
        """
        for step in (lambda name: name == "raylet", lambda name: name not in ("raylet", "gcs_server"), None):
            targets = [pid for pid in self.pids() if step is None or step(_name(pid))]
            _terminate(targets, grace / 3)
        left = self.pids()
        shutil.rmtree(self.temp_dir, ignore_errors=True)
        return left

    def _owns(self, pid: str) -> bool:
        try:
            if self.marker.encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                return True
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            return False
        return any(_link(f"/proc/{pid}/fd/{fd}").startswith(f"{self.temp_dir}/") for fd in fds)


def _link(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:  # closed meanwhile
        return ""


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _terminate(pids: list[int], grace: float) -> None:
    _signal(pids, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(map(alive, pids)) and time.monotonic() < deadline:
        time.sleep(0.1)
    _signal(pids, signal.SIGKILL)


def _signal(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

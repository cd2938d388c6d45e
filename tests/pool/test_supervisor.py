"""The supervisor run in this process: what its accept loop does when the process runs out of descriptors."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from utilserve.pool.process.sockets import ACCEPT_PAUSE_S, connect, listen
from utilserve.pool.process.supervisor import server

from ..support.pool import WAIT_S, ShortOfDescriptors


def test_a_supervisor_out_of_descriptors_pauses_accepting_instead_of_spinning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    listeners: list[ShortOfDescriptors] = []

    def short_listener(path: str) -> ShortOfDescriptors:
        listeners.append(ShortOfDescriptors(listen(path)))
        return listeners[-1]

    monkeypatch.setattr(server, "listen", short_listener)
    supervisor = server.Supervisor(str(tmp_path / "pool.sock"))
    thread = threading.Thread(target=supervisor.serve_forever, daemon=True)
    thread.start()
    while not listeners:
        time.sleep(0.01)
    (listener,) = listeners
    with connect(supervisor.path):
        time.sleep(ACCEPT_PAUSE_S / 2)
        assert listener.attempts == 1, "the supervisor kept trying a listener that stays ready"
        listener.short = False
        deadline = time.monotonic() + WAIT_S
        while listener.attempts < 2:
            assert time.monotonic() < deadline, "the supervisor never accepted again"
            time.sleep(0.01)
    supervisor.request_exit()
    thread.join(WAIT_S)
    assert not thread.is_alive()

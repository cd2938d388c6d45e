"""Memory of a gunicorn server whose web workers share one process-pool model, against one model per worker.

RSS counts a page once in every process that maps it; PSS splits it among
them (the bench's own process too, for shared libraries); "distinct" counts
each physical page of the server once (from /proc/PID/pagemap, root only).
"""

import json
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from tests.support.servers import ROOT, Server, cmdline, exit_on_sigterm, free_port, request

from . import report

MODEL_MIB = 200
WORKERS = 4
TARGET_RATIO = 1.2
MEASURES = ["PSS", "distinct", "RSS"]
ORDER = {"gunicorn master": 0, "web worker": 1, "pool supervisor": 2, "model worker": 3}  # of a table's processes
PAGE = os.sysconf("SC_PAGE_SIZE")
PRESENT, FRAME = 1 << 63, (1 << 55) - 1  # in a pagemap entry: the page is resident; its physical frame


@dataclass(frozen=True)
class Config:
    label: str
    pool: str  # UTILSERVE_POOL
    loaded: bool  # the model holds MODEL_MIB, else nothing


BASELINE = Config("baseline: thread pool, empty model", "thread", False)
CONFIGS = [
    Config("process pool: one model shared by the web workers", "process", True),
    Config("thread pool: one model in each web worker", "thread", True),
    BASELINE,
    Config("process pool, empty model", "process", False),
]


class Process(NamedTuple):
    role: str
    rss_kib: int
    pss_kib: int


@dataclass(frozen=True)
class Row:
    config: Config
    model_mib: int
    processes: dict[int, Process]
    distinct_kib: int | None  # None where frame numbers are hidden (not root)
    killed: list[str]  # still running a stop timeout after the master exited
    survivors: list[str]  # alive even after SIGKILL

    def mib(self, measure: str) -> float | None:
        """The server's total: RSS, PSS or distinct."""
        if measure == "distinct":
            return None if self.distinct_kib is None else self.distinct_kib / 1024
        return sum(p.rss_kib if measure == "RSS" else p.pss_kib for p in self.processes.values()) / 1024


def memory_kib(pid: int) -> tuple[int, int]:
    """VmRSS from /proc/PID/status and Pss from /proc/PID/smaps_rollup."""

    def field(path: str, name: str) -> int:
        return next(int(line.split()[1]) for line in Path(path).read_text().splitlines() if line.startswith(name))

    return field(f"/proc/{pid}/status", "VmRSS:"), field(f"/proc/{pid}/smaps_rollup", "Pss:")


def distinct_kib(pids: Sequence[int]) -> int | None:
    """KiB of the physical pages that ``pids`` map, each counted once; None without access to frame numbers."""
    frames: set[int] = set()
    for pid in pids:
        with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/pagemap", "rb", buffering=0) as pagemap:
            for line in maps:
                start, end = (int(bound, 16) for bound in line.split()[0].split("-"))
                try:
                    pagemap.seek(start // PAGE * 8)
                    entries = pagemap.read((end - start) // PAGE * 8)
                except OSError:
                    continue  # [vsyscall] lies beyond what pagemap serves
                frames.update(entry & FRAME for entry in memoryview(entries).cast("Q") if entry & PRESENT)
    return None if frames <= {0} else len(frames) * PAGE // 1024


def ask(port: int) -> dict[str, Any] | None:
    """``GET /pid`` on a new connection, so that requests spread over the web workers; None unless 200."""
    try:
        status, body = request(port, "GET", "/pid", headers={"Connection": "close"}, timeout=30)
    except OSError:
        return None
    return json.loads(body) if status == 200 else None


def role(pid: int, server: Server, answers: dict[int, dict[str, Any]]) -> str:
    """What a process of the server is, from the answers (web and model pids) and its command line."""
    assert server.process is not None
    if pid == server.process.pid:
        return "gunicorn master"
    if pid in answers:
        return "web worker"
    if pid in {answer["model"] for answer in answers.values()}:
        return "model worker"
    return "pool supervisor" if "supervisor" in cmdline(pid) else f"other: {cmdline(pid)[:80]}"


def measure(config: Config) -> Row:
    """Start the server of ``config``, load every model, sum its processes' memory, stop it."""
    print(config.label, file=sys.stderr, flush=True)
    size, port = MODEL_MIB if config.loaded else 0, free_port()
    argv = f"-m gunicorn -c {ROOT}/deploy/gunicorn.conf.py -w {WORKERS} -b 127.0.0.1:{port} --log-level warning"
    argv = [sys.executable, *argv.split(), "bench.apps.shared_memory:app"]
    server = Server(argv, port, {"UTILSERVE_POOL": config.pool, "BENCH_MODEL_MB": str(size)})
    answers: dict[int, dict[str, Any]] = {}

    def every_worker_answered() -> bool:
        with ThreadPoolExecutor(8) as clients:
            answers.update((a["web"], a) for a in clients.map(lambda _: ask(port), range(8)) if a is not None)
        return len(answers) >= WORKERS and set(answers) == server.children()

    try:
        server.start(120, probe=every_worker_answered)
        models = {answer["model"]: answer["mib"] for answer in answers.values()}
        expected = 1 if config.pool == "process" else WORKERS  # one model shared, or one in each web worker
        if set(models.values()) != {float(size)} or len(models) != expected:
            raise RuntimeError(f"{config.label}: expected {expected} models of {size} MiB, got {models}")
        time.sleep(2)  # let the last answers settle
        processes = {pid: Process(role(pid, server, answers), *memory_kib(pid)) for pid in server.members()}
        distinct = distinct_kib(list(processes))
    finally:
        server.stop(60, grace=60)
    return Row(config, size, processes, distinct, server.killed, server.survivors)


def markdown(rows: Sequence[Row]) -> list[str]:
    """The table, the target's verdict, and the processes of each process-pool row."""
    baseline = next(row for row in rows if row.config == BASELINE)

    def ratio(row: Row, measure: str) -> float | None:
        total, base = row.mib(measure), baseline.mib(measure)
        return None if total is None or base is None else total / (row.model_mib + base)

    def number(value: float | None, places: int) -> str:
        return "-" if value is None else f"{value:.{places}f}"

    def cells(row: Row) -> list[object]:
        totals = [number(row.mib(measure), 1) for measure in ["RSS", "PSS", "distinct"]]
        ratios = [number(ratio(row, measure), 3) for measure in MEASURES]
        return [row.config.label, row.model_mib, len(row.processes), *totals, *ratios]

    columns = "configuration | model MiB: | processes: | RSS MiB: | PSS MiB: | distinct MiB: | "
    lines = report.table(columns + " | ".join(f"ratio {m}:" for m in MEASURES), [cells(row) for row in rows])
    lines += ["", "ratio = the total ÷ (the row's model MiB + the baseline's total), each in the same measure.", ""]
    for row in (row for row in rows if row.config.pool == "process" and row.model_mib):
        verdicts = ", ".join(
            f"{measure} {value:.3f} ({'met' if value <= TARGET_RATIO else 'missed'})"
            for measure in MEASURES
            if (value := ratio(row, measure)) is not None
        )
        lines.append(f'Target for "{row.config.label}", {row.model_mib} MiB model, ratio ≤ {TARGET_RATIO}: {verdicts}.')
    for row in (row for row in rows if row.config.pool == "process"):
        order = sorted(row.processes.items(), key=lambda item: (ORDER.get(item[1].role, len(ORDER)), item[0]))
        table = [[p.role, pid, f"{p.rss_kib / 1024:.1f}", f"{p.pss_kib / 1024:.1f}"] for pid, p in order]
        lines += ["", f'Processes of "{row.config.label}", {row.model_mib} MiB model:', ""]
        lines += report.table("process | pid: | RSS MiB: | PSS MiB:", table)
    stops = "; ".join(
        f"{r.config.label}: killed {r.killed}, left over {r.survivors}" for r in rows if r.killed or r.survivors
    )
    stops = stops or "every process of every server exited on its own; none was left over."
    return [*lines, "", f"Stopping (SIGTERM to the master): {stops}", ""]


if __name__ == "__main__":
    report.parser("bench.shared_memory", __doc__, write=False).parse_args()
    exit_on_sigterm()
    measured = [measure(config) for config in CONFIGS]
    print("\n".join(markdown(measured)))
    sys.exit(1 if any(row.survivors for row in measured) else 0)

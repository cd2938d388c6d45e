"""Memory of a gunicorn server whose web workers share one process-pool model, against one model per worker.

    python -m bench.shared_memory [--model-mib 200] [--workers 4] [--configs process,thread,baseline,process-empty]
                                  [--settle 2] [--no-json]

Each configuration serves bench/apps/shared_memory.py (flask) with
``gunicorn -c deploy/gunicorn.conf.py -w 4`` on a free loopback port, one
server at a time. Requests (``GET /pid``, a new connection each, from
several threads) go on until every web worker has answered one with 200, so
every model the configuration loads is loaded; after ``--settle`` seconds
the memory of every process of the server is summed: the master, the web
workers, and with the process pool the supervisor (started by a web worker,
so not the master's child) and its model worker. The server runs in a
session of its own; its processes are that session plus any descendant
that left it. Then the master gets SIGTERM and
the bench waits for the whole session to exit on its own; whatever is left
after that is killed and reported.

Three totals: RSS counts a page once in every process that maps it (a page
gunicorn's master shares with its forked workers counts in each); PSS splits a page
mapped by N processes into N parts, so summed PSS is the server's share of
memory, but a file page (libpython, extension modules) mapped by processes
outside the server too, the bench's own included, is split with them;
"distinct" counts each physical page the server's processes map once, from
/proc/PID/pagemap (root only: frame numbers are hidden from other users),
and does not depend on what else runs. The ratio is a configuration's total
over one copy of its model plus the baseline's total (the web workers with
an empty model in a thread pool): 1.0 would be the model and nothing else.
The target: the process pool within 1.2 of it.

``measure()`` and ``markdown()`` are the API for other benches; ``main``
prints the Markdown and writes the raw numbers to bench/results/ (git-ignored).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import harness
from .harness import HOST, RESULTS, ROOT

APP = "bench.apps.shared_memory:app"
MIB = 2**20
PAGE = os.sysconf("SC_PAGE_SIZE")
PRESENT = 1 << 63  # pagemap entry: page resident
FRAME = (1 << 55) - 1  # pagemap entry: its physical frame number
TARGET_RATIO = 1.2
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0  # after SIGTERM, for the master and then for the rest of its session
CLIENT_THREADS = 8


@dataclass(frozen=True)
class Config:
    """One server to measure: the pool kind for ``UTILSERVE_POOL`` and whether its model holds memory."""

    name: str  # --configs key
    label: str
    pool: str
    loaded: bool  # the model holds --model-mib; else 0


CONFIGS = [
    Config("process", "process pool: one model shared by the web workers", "process", True),
    Config("thread", "thread pool: one model in each web worker", "thread", True),
    Config("baseline", "baseline: thread pool, empty model", "thread", False),
    Config("process-empty", "process pool, empty model", "process", False),
]
BASELINE = "baseline"


@dataclass(frozen=True)
class Process:
    """One process of a server and its memory."""

    pid: int
    role: str
    rss_kib: int
    pss_kib: int


@dataclass(frozen=True)
class Row:
    """One configuration's server, measured once every web worker had answered."""

    config: str
    label: str
    pool: str
    model_mib: int
    workers: int
    processes: tuple[Process, ...]
    startup_s: float  # launch until every web worker had answered
    distinct_kib: int | None  # every physical page of the server once; None when frame numbers are hidden
    killed: tuple[str, ...]  # still running STOP_TIMEOUT_S after the master exited (SIGKILLed)
    left_over: tuple[str, ...]  # alive even after SIGKILL

    @property
    def rss_mib(self) -> float:
        return sum(p.rss_kib for p in self.processes) / 1024

    @property
    def pss_mib(self) -> float:
        return sum(p.pss_kib for p in self.processes) / 1024

    @property
    def distinct_mib(self) -> float | None:
        return None if self.distinct_kib is None else self.distinct_kib / 1024


# --- processes -----------------------------------------------------------------------------------------


def _memory_kib(pid: int) -> tuple[int, int]:
    """VmRSS from /proc/PID/status and Pss from /proc/PID/smaps_rollup, in KiB."""
    rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
               if line.startswith("VmRSS:"))
    pss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
               if line.startswith("Pss:"))
    return rss, pss


def _frames(pid: int) -> set[int]:
    """Physical frames of ``pid``'s resident pages (all 0 unless this process may see frame numbers)."""
    frames: set[int] = set()
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/pagemap", "rb", buffering=0) as pagemap:
        for line in maps:
            start, end = (int(bound, 16) for bound in line.split()[0].split("-"))
            try:
                pagemap.seek(start // PAGE * 8)
                entries = pagemap.read((end - start) // PAGE * 8)
            except OSError:
                continue  # [vsyscall] lies beyond what pagemap serves
            frames.update(entry & FRAME for entry in memoryview(entries).cast("Q") if entry & PRESENT)
    return frames


def _distinct_kib(pids: Sequence[int]) -> int | None:
    """KiB of the physical pages that ``pids`` map, each counted once; None without access to frame numbers."""
    frames: set[int] = set()
    for pid in pids:
        frames |= _frames(pid)
    return None if frames <= {0} else len(frames) * PAGE // 1024


class Server(harness.Server):
    """gunicorn serving bench/apps/shared_memory.py: ``workers`` web workers, the model in a ``pool`` pool."""

    def __init__(self, pool: str, model_mib: int, workers: int) -> None:
        port = harness.free_port()
        argv = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py"),
                "-w", str(workers), "-b", f"{HOST}:{port}", "--log-level", "warning", APP]
        env = {k: v for k, v in os.environ.items() if not k.startswith("UTILSERVE_") and k != "WEB_CONCURRENCY"}
        super().__init__(argv, {**env, "PYTHONPATH": str(ROOT), "UTILSERVE_POOL": pool,
                                "BENCH_MODEL_MB": str(model_mib)},
                         name="shared-memory", stop_timeout=STOP_TIMEOUT_S)
        self.port = port

    def web_workers(self) -> set[int]:
        """The master's children that are gunicorn workers (the supervisor is a web worker's child)."""
        assert self.process is not None
        return {pid for pid in self.members() if (fields := harness.proc_stat(pid))
                and int(fields[1]) == self.process.pid and "gunicorn" in harness.cmdline(pid)}


def _ask(port: int) -> dict[str, Any] | None:
    """``GET /pid`` on a new connection (so that requests spread over the web workers); None unless 200."""
    try:
        status, body = harness.request(port, "GET", "/pid", headers={"Connection": "close"}, timeout=30)
    except OSError:
        return None
    return json.loads(body) if status == 200 else None


def _answered_by_all(server: Server, workers: int) -> dict[int, dict[str, Any]]:
    """Ask until every web worker has answered; the last answer of each, by web worker pid."""
    assert server.process is not None
    answers: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + START_TIMEOUT_S
    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(f"server exited with {server.process.returncode}:\n{server.output()}")
            for answer in pool.map(lambda _: _ask(server.port), range(CLIENT_THREADS)):
                if answer is not None:
                    answers[answer["web"]] = answer
            if len(answers) >= workers and set(answers) == server.web_workers():
                return answers
            time.sleep(0.1)  # e.g. refused while the workers boot, 503 while a model loads
    raise RuntimeError(f"within {START_TIMEOUT_S:g} s only web workers {sorted(answers)} answered "
                       f"(running: {sorted(server.web_workers())}):\n{server.output()}")


def _roles(server: Server, answers: dict[int, dict[str, Any]]) -> dict[int, str]:
    """What each process of the server is, from the answers (web and model pids) and command lines."""
    assert server.process is not None
    models = {answer["model"] for answer in answers.values()} - set(answers)
    roles = {}
    for pid in server.members():
        command = harness.cmdline(pid)
        if pid == server.process.pid:
            roles[pid] = "gunicorn master"
        elif pid in answers:
            roles[pid] = "web worker"
        elif pid in models:
            roles[pid] = "model worker"
        elif "utilserve.pool.process.supervisor" in command:
            roles[pid] = "pool supervisor"
        else:
            roles[pid] = f"other: {command[:80]}"
    return roles


def _check(config: Config, model_mib: int, answers: dict[int, dict[str, Any]]) -> None:
    """Every answer came from a model of the expected size, held where the pool kind says."""
    sizes = {answer["mib"] for answer in answers.values()}
    if sizes != {float(model_mib)}:
        raise RuntimeError(f"{config.name}: models hold {sorted(sizes)} MiB, expected {model_mib}")
    models = {answer["model"] for answer in answers.values()}
    if config.pool == "process" and (len(models) != 1 or models & set(answers)):
        raise RuntimeError(f"{config.name}: expected one model process apart from the web workers, got {models}")
    if config.pool == "thread" and any(answer["model"] != web for web, answer in answers.items()):
        raise RuntimeError(f"{config.name}: a thread-pool model answered from another process: {answers}")


def measure_one(config: Config, model_mib: int = 200, workers: int = 4, settle_s: float = 2.0) -> Row:
    """Start the server of ``config``, load every model, sum its processes' memory, stop it."""
    size = model_mib if config.loaded else 0
    server = Server(config.pool, size, workers)
    started = time.monotonic()
    server.start()
    try:
        answers = _answered_by_all(server, workers)
        startup = time.monotonic() - started
        _check(config, size, answers)
        time.sleep(settle_s)
        roles = _roles(server, answers)
        processes = tuple(Process(pid, role, *_memory_kib(pid)) for pid, role in roles.items())
        distinct = _distinct_kib(list(roles))
    finally:
        stopped = server.stop()
    return Row(config.name, config.label, config.pool, size, workers, processes, startup, distinct,
               tuple(stopped.killed), tuple(stopped.survivors))


def measure(configs: Sequence[Config] = CONFIGS, model_mib: int = 200, workers: int = 4,
            settle_s: float = 2.0) -> list[Row]:
    """One row per configuration, measured one server at a time."""
    rows = []
    for config in configs:
        print(f"{config.name}: {config.label}", file=sys.stderr, flush=True)
        rows.append(measure_one(config, model_mib, workers, settle_s))
    return rows


# --- report --------------------------------------------------------------------------------------------


METRICS = {"PSS": "pss_mib", "distinct": "distinct_mib", "RSS": "rss_mib"}


def ratio(row: Row, baseline: Row, metric: str = "pss_mib") -> float | None:
    """``row``'s total over one copy of its model plus the baseline's total (1.0: the model and nothing else)."""
    total, base = getattr(row, metric), getattr(baseline, metric)
    return None if total is None or base is None else total / (row.model_mib + base)


def markdown(rows: Sequence[Row]) -> str:
    """The table, the target's verdict (with the baseline measured) and each process-pool row's processes."""
    baseline = next((row for row in rows if row.config == BASELINE), None)
    lines = [
        (
            "| configuration | model MiB | processes | RSS MiB | PSS MiB | distinct MiB | ratio PSS | ratio distinct "
            "| ratio RSS |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        ratios = [ratio(row, baseline, metric) if baseline else None for metric in METRICS.values()]
        lines.append(f"| {row.label} | {row.model_mib} | {len(row.processes)} | {row.rss_mib:.1f} | {row.pss_mib:.1f} "
                     f"| {_number(row.distinct_mib, 1)} | " + " | ".join(_number(r, 3) for r in ratios) + " |")
    lines += ["", "ratio = the total ÷ (the row's model MiB + the baseline's total), each in the same measure.", ""]
    if baseline is not None:
        for row in rows:
            if row.pool == "process" and row.model_mib:
                verdicts = [f"{name} {value:.3f} ({'met' if value <= TARGET_RATIO else 'missed'})"
                            for name, metric in METRICS.items() if (value := ratio(row, baseline, metric)) is not None]
                lines.append(f"Target for \"{row.label}\", {row.model_mib} MiB model, ratio ≤ {TARGET_RATIO}: "
                             + ", ".join(verdicts) + ".")
    for row in rows:
        if row.pool != "process":
            continue
        lines += ["", f"Processes of \"{row.label}\", {row.model_mib} MiB model:", "",
                  "| process | pid | RSS MiB | PSS MiB |", "|---|---:|---:|---:|"]
        for process in sorted(row.processes, key=lambda p: (_ORDER.get(p.role, len(_ORDER)), p.pid)):
            lines.append(f"| {process.role} | {process.pid} | {process.rss_kib / 1024:.1f} | "
                         f"{process.pss_kib / 1024:.1f} |")
    stops = [f"{row.config}: killed {list(row.killed)}, left over {list(row.left_over)}"
             for row in rows if row.killed or row.left_over]
    lines += ["", "Stopping (SIGTERM to the master): " + ("; ".join(stops) if stops else
              "every process of every server exited on its own; none was left over.")]
    return "\n".join(lines) + "\n"


def _number(value: float | None, places: int) -> str:
    return "-" if value is None else f"{value:.{places}f}"


_ORDER = {"gunicorn master": 0, "web worker": 1, "pool supervisor": 2, "model worker": 3}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.shared_memory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-mib", type=int, default=200, help="memory the model holds, MiB (default 200)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn web workers (default 4)")
    parser.add_argument("--configs", default=",".join(c.name for c in CONFIGS),
                        help="comma-separated, from " + ",".join(c.name for c in CONFIGS) + " (default: all)")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds between loading and measuring")
    parser.add_argument("--no-json", action="store_true", help="do not write bench/results/shared-memory-*.json")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.configs.split(",") if name.strip()]
    unknown = sorted(set(names) - {c.name for c in CONFIGS})
    if unknown:
        parser.error(f"unknown configurations {unknown}")
    if args.model_mib < 1 or args.workers < 1 or args.settle < 0:
        parser.error("need --model-mib >= 1, --workers >= 1, --settle >= 0")

    harness.exit_on_sigterm()
    started = dt.datetime.now(dt.UTC)
    rows = measure([c for c in CONFIGS if c.name in names], args.model_mib, args.workers, args.settle)
    print(markdown(rows))
    if not args.no_json:
        RESULTS.mkdir(parents=True, exist_ok=True)
        raw = RESULTS / f"shared-memory-{started.strftime('%Y%m%d-%H%M%S')}.json"
        raw.write_text(json.dumps({"date": started.isoformat(), "argv": sys.argv,
                                   "rows": [asdict(row) for row in rows]}, indent=2))
        print(f"raw: {raw.relative_to(ROOT)}", file=sys.stderr)
    return 1 if any(row.left_over for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

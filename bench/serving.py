"""A benchmark's rows: one server each, started and stopped one at a time, and what a section says of them.

``bench.pool`` and ``bench.stream`` measure different loads, but pick their rows,
run each row's server and account for it the same way.
"""

import contextlib
import importlib.util
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from tests.support.servers import Server

from . import loadgen, report


@dataclass(frozen=True)
class Row:
    """A server to measure, serving the benchmark's model unless ``app`` names another."""

    name: str  # --rows key
    stack: str  # server and pool, in words
    command: str  # NAME=value ... argv, as in a shell, with {python}, {root}, {port} and {app} filled in
    requires: str  # top-level packages, space-separated; the row is skipped without them
    label: str = "utilserve"  # first column; bench.pool holds the utilserve rows to its targets
    start_timeout: float = 90.0
    stop_timeout: float = 15.0  # for the first process after SIGTERM, then for the rest
    app: str = ""  # {app}, as "module:attribute"

    def missing(self) -> list[str]:
        """The packages the row needs that are not installed."""
        return [package for package in self.requires.split() if importlib.util.find_spec(package) is None]


@dataclass
class Outcome:
    """How a row's server fared, whatever the benchmark measured on it."""

    row: Row
    startup_s: float = 0.0  # launch to ready
    error: str | None = None
    survivors: list[str] = field(default_factory=list)  # processes that outlived the stop


def chosen(rows: Sequence[Row], names: Sequence[str], skipped: list[str]) -> Iterator[Row]:
    """The rows named, in order, each announced; one whose packages are missing is noted in ``skipped`` instead."""
    for row in (row for row in rows if row.name in names):
        if missing := row.missing():
            skipped.append(f"{row.name} ({', '.join(missing)} not installed)")
            print(f"skip {skipped[-1]}", flush=True)
            continue
        print(f"{row.name}: {row.stack}", flush=True)
        yield row


@contextlib.contextmanager
def served(outcome: Outcome, model: str, probe: str | Callable[[int], bool]) -> Iterator[Server]:
    """The row's server (of its own app, or else of ``model``), ready once ``probe`` (a path, or a callable given
    the port) says so, stopped whatever happens; a failure to start or to serve ends the block and is noted in
    ``outcome``. The server runs in a scratch folder of its own, as LitServe and Ray write files into theirs."""
    row, cwd = outcome.row, tempfile.mkdtemp(prefix="bench-")
    server, started = loadgen.server(row.command, row.app or model, cwd), time.monotonic()
    try:
        server.start(row.start_timeout, probe=probe if isinstance(probe, str) else lambda: probe(server.port))
        outcome.startup_s = time.monotonic() - started
        yield server
    except loadgen.FAILED as error:
        outcome.error = str(error).strip()
        print(f"  {row.name}: FAILED\n{error}", file=sys.stderr, flush=True)
    finally:
        server.stop(row.stop_timeout, grace=row.stop_timeout)
        shutil.rmtree(cwd, ignore_errors=True)
        if server.killed:
            print(f"  {row.name}: SIGKILLed {server.killed}", flush=True)
        outcome.survivors = server.survivors


def ready(outcome: Outcome, server: Server) -> None:
    """The console's line for a server that is ready to be measured."""
    print(f"  ready in {outcome.startup_s:.1f}s: port {server.port}, {len(server.members())} processes", flush=True)


def lines(row: Row, cells: list[list[str]], width: int, skipped: str | None = None) -> list[list[str]]:
    """``row``'s lines in a table of ``width`` cells a load after label and stack, which only the first line names;
    without cells, one line saying why: not measured for ``skipped``, or failed."""
    why = f"not measured: {skipped}" if skipped else "failed: see Problems"
    cells = cells or [["-", why, *[""] * (width - 2)]]
    return [[row.label, row.stack, *cells[0]], *(["", "", *cell] for cell in cells[1:])]


def startup(outcomes: Sequence[Outcome], ready_when: str) -> str:
    """A section's line on how long each server took to be ready, and whether any process outlived its row."""
    left = "; ".join(f"{o.row.name}: {o.survivors}" for o in outcomes if o.survivors)
    return (
        f"Startup ({ready_when}): "
        + ", ".join(f"{o.row.name} {o.startup_s:.1f} s" for o in outcomes if o.startup_s)
        + ". Every server was stopped after its row (SIGTERM, then SIGKILL to anything left in its session); "
        + (f"processes left over: {left}" if left else "none was left over.")
    )


def problems(outcomes: Sequence[Outcome], skipped: list[str]) -> list[str]:
    """A section's last lines: the rows that failed, and those not measured for want of their packages."""
    failed = [f"- {o.row.name}: {o.error.splitlines()[0]}" for o in outcomes if o.error]
    return report.block("Problems:", failed) + (["", "Not measured: " + "; ".join(skipped) + "."] if skipped else [])

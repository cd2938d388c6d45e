"""The model pool's rows with every batch logged: which batches form under load, and where a batch's cycle goes.

utilserve rows serve bench/diagnostics/counting_app.py, the same model timing
each batch's cycle; LitServe and Ray Serve log their batches' sizes. Each
row's median run at each concurrency is then summed up from the log.
"""

import collections
import dataclasses
import statistics
import tempfile
from pathlib import Path
from typing import Any

from .. import pool, report
from ..loadgen import Load
from . import batch_log

COUNTING_APP = "bench.diagnostics.counting_app:app"
PHASES = ("sleep", "outputs", "between")


def summary(batches: list[dict[str, Any]], load: Load) -> str:
    """The mean size of the batches logged during ``load``, the sizes seen, and the mean ms of each phase."""
    if not (inside := [batch for batch in batches if 0 <= load.ended_at - batch["at"] <= load.wall_s]):
        return "no batches logged"
    sizes = dict(sorted(collections.Counter(batch["size"] for batch in inside).items()))
    phases = ", ".join(
        f"{name} {statistics.mean(times) * 1e3:.2f}"
        for name in PHASES
        if (times := [batch[name] for batch in inside if name in batch])
    )
    mean = statistics.mean(batch["size"] for batch in inside)
    return f"mean batch {mean:.1f}, sizes {sizes}" + (f"; ms per batch: {phases}" if phases else "")


def main() -> None:
    parser = report.parser("bench.diagnostics.pool", __doc__, write=False)
    report.add_names(parser, "--rows", [row.name for row in pool.ROWS])
    pool.add_load_options(parser)
    parser.set_defaults(runs=1)
    args = parser.parse_args()
    for row in (row for row in pool.ROWS if row.name in args.rows):
        if missing := row.missing():
            print(f"skip {row.name}: {', '.join(missing)} not installed")
            continue
        with tempfile.TemporaryDirectory() as scratch:
            log = Path(scratch) / "batches.jsonl"
            print(f"{row.name}: {row.stack}", flush=True)
            # LitServe's and Ray Serve's argv name no {app}: they serve their own, which logs its batches too
            logged = dataclasses.replace(row, app=COUNTING_APP, command=f"{batch_log.VARIABLE}={log} {row.command}")
            result = pool.measure(logged, args.concurrency, args.duration, args.runs)
            batches = batch_log.read(log)
        for load in result.loads:
            print(f"  {row.name} c={load.connections}: {load.rps:,.0f} req/s; {summary(batches, load)}")


if __name__ == "__main__":
    main()

"""The model pool's rows with every batch logged: which batches form under load, and where a batch's cycle goes.

    python -m bench.diagnostics.pool [--rows utilserve-starlette,...] [--concurrency 1,32,128] [--runs 1]
                                     [--duration 8]

utilserve rows serve bench/diagnostics/counting_app.py, the same model timing
each batch's cycle; LitServe and Ray Serve log their batches' sizes. Each
row's median run at each concurrency is then summed up from the log.
"""

import argparse
import collections
import dataclasses
import statistics
import tempfile
from pathlib import Path
from typing import Any

from .. import pool
from ..loadgen import Load
from . import batch_log

COUNTING_APP = "bench.diagnostics.counting_app:app"
PHASES = ("sleep", "outputs", "between")


def summary(batches: list[dict[str, Any]], load: Load) -> str:
    """The mean size of the batches logged during ``load``, the sizes seen, and the mean ms of each phase."""
    if not (inside := [batch for batch in batches if 0 <= load.ended_at - batch["at"] <= load.wall_s]):
        return "no batches logged"
    sizes = dict(sorted(collections.Counter(batch["size"] for batch in inside).items()))
    phases = [
        f"{name} {statistics.mean(times) * 1e3:.2f}"
        for name in PHASES
        if (times := [batch[name] for batch in inside if name in batch])
    ]
    return f"mean batch {statistics.mean(batch['size'] for batch in inside):.1f}, sizes {sizes}" + (
        "; ms per batch: " + ", ".join(phases) if phases else ""
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.diagnostics.pool",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--rows",
        type=lambda text: text.split(","),
        default=[row.name for row in pool.ROWS],
        help="comma-separated, from " + ",".join(row.name for row in pool.ROWS),
    )
    pool.add_load_options(parser)
    parser.set_defaults(runs=1)
    args = parser.parse_args()
    for row in (row for row in pool.ROWS if row.name in args.rows):
        if missing := row.missing():
            print(f"skip {row.name}: {', '.join(missing)} not installed")
            continue
        with tempfile.TemporaryDirectory() as scratch:
            log = Path(scratch) / "batches.jsonl"
            app = COUNTING_APP if row.utilserve and row.app == pool.MODEL_APP else row.app
            print(f"{row.name}: {row.stack}", flush=True)
            result = pool.measure(
                dataclasses.replace(row, app=app, env=f"{row.env} {batch_log.VARIABLE}={log}"),
                args.concurrency,
                args.duration,
                args.runs,
            )
            batches = batch_log.read(log)
        for load in result.loads:
            print(f"  {row.name} c={load.connections}: {load.rps:,.0f} req/s; {summary(batches, load)}")


if __name__ == "__main__":
    main()

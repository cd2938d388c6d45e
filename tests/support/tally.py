"""Counts that the checks by tools written by others keep per subject, printed at the end of the pytest run.

An issue note quotes these lines (requests sent, 5xx, violations per cell), so they show in a plain run.
"""

from __future__ import annotations

from collections.abc import Mapping

_counts: dict[tuple[str, str], dict[str, int]] = {}


def add(tool: str, subject: str, counts: Mapping[str, int]) -> None:
    """Add ``counts`` to the line of ``subject`` (a cell, an app) under ``tool``."""
    line = _counts.setdefault((tool, subject), {})
    for name, value in counts.items():
        line[name] = line.get(name, 0) + value


def lines() -> list[str]:
    """One line per tool and subject, in the order they were first counted: ``tool  subject  name=value ...``."""
    return [
        f"{tool}  {subject}  " + " ".join(f"{name}={value}" for name, value in counts.items())
        for (tool, subject), counts in _counts.items()
    ]

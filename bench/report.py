"""BENCHMARKS.md: each benchmark rewrites its own section, keeping the "### Notes" written by hand inside it.

The rest of the file stays as it is.
"""

import argparse
import contextlib
import datetime as dt
import os
import platform
import re
import shlex
import subprocess
import sys
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path

from tests.support.servers import ROOT

BENCHMARKS = ROOT / "BENCHMARKS.md"


def parser(module: str, doc: str | None, write: bool = True) -> argparse.ArgumentParser:
    """The options of ``python -m MODULE``, its docstring as help; ``write`` adds ``--no-write``."""
    parser = argparse.ArgumentParser(
        prog=f"python -m {module}", description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    if write:
        parser.add_argument("--no-write", action="store_true", help="print the section, leave BENCHMARKS.md alone")
    return parser


def add_names(parser: argparse.ArgumentParser, flag: str, choices: Sequence[str]) -> None:
    """A comma-separated option taking some of ``choices``, all of them by default."""

    def names(text: str) -> list[str]:
        if unknown := sorted(set(text.lower().split(",")) - set(choices)):
            raise argparse.ArgumentTypeError(f"unknown {unknown}: choose from {','.join(choices)}")
        return text.lower().split(",")

    parser.add_argument(flag, type=names, default=list(choices), help="comma-separated, from " + ",".join(choices))


def machine(wrk: bool = True) -> str:
    """The CPUs, kernel and Python the numbers were measured on, and wrk's version, in words."""
    model = re.search(r"^model name\s*:\s*(.*)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
    cpu = model.group(1).strip() if model else "unknown"
    words = f"{os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}, Python {platform.python_version()}"
    if wrk:
        version = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False).stdout
        words += ", " + (version.splitlines() or ["?"])[0].split(" Copyright")[0].strip()
    return words


def loadavg() -> str:
    """The 1-minute load average: how busy the machine was with other work."""
    return f"{os.getloadavg()[0]:.2f}"


def versions(names: str) -> dict[str, str]:
    """Installed versions of the distributions ``names``, space-separated; those not installed are left out."""
    found = {}
    for name in names.split():
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def source_state(paths: Sequence[str]) -> str:
    """The commit measured, and whether ``paths`` (folders of the repository) had uncommitted changes."""

    def git(*argv: str) -> str:
        return subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()

    if not (head := git("rev-parse", "--short", "HEAD")):
        return "not a git checkout"
    dirty = git("status", "--porcelain", "--", *paths)
    return f"git {head}" + (" + uncommitted changes under " + " or ".join(f"{p}/" for p in paths) if dirty else "")


def verdict(met: bool) -> str:
    """A target's verdict, the end of a sentence."""
    return "met." if met else "**missed**."


def block(title: str, lines: list[str]) -> list[str]:
    """``lines`` under ``title``, after a blank line; nothing without lines."""
    return ["", title, "", *lines] if lines else []


def command() -> str:
    """The command line that is running, as typed: ``python -m bench.NAME ...``."""
    return shlex.join(["python", *sys.orig_argv[1:]])


def provenance(started: dt.datetime) -> list[str]:
    """A section's opening lines: the command that made it, as a code block, and when it ran."""
    return ["```", command(), "```", "", f"- Date: {started.strftime('%Y-%m-%d %H:%M %Z').strip()}"]


def setting(
    started: dt.datetime, machine: str, libraries: str, sources: Sequence[str], load: Sequence[str]
) -> list[str]:
    """A section's opening lines: ``provenance``, the ``machine`` in words, the versions of ``libraries`` (utilserve's
    with the state of ``sources``), and the load average at start and end, ``load``."""
    found = versions(libraries)
    return [
        *provenance(started),
        f"- Machine: {machine}",
        f"- Versions: utilserve {found.pop('utilserve', '?')} ({source_state(sources)}), "
        + ", ".join(f"{name} {version}" for name, version in found.items()),
        f"- 1-minute load average at start / end: {load[0]} / {load[1]}",
    ]


def table(header: str, rows: Iterable[Sequence[object]]) -> list[str]:
    """A Markdown table under ``header``, "a | b: | c"; a column whose name ends in ":" is right-aligned ("---:")."""
    columns = header.split(" | ")
    return [
        "| " + " | ".join(column.removesuffix(":") for column in columns) + " |",
        "|" + "|".join("---:" if column.endswith(":") else "---" for column in columns) + "|",
        *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows),
    ]


def publish(title: str, lines: list[str], write: bool) -> None:
    """Print section ``title`` (``lines`` after the title) with its notes; with ``write``, put it into BENCHMARKS.md."""
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else "# Benchmarks\n"
    old = re.search(rf"^{re.escape(title)}\n.*?(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    notes = re.search(r"^### Notes\n.*?(?=^### |\Z)", old.group(0) if old else "", re.MULTILINE | re.DOTALL)
    section = "\n".join([title, "", *lines]).rstrip("\n") + "\n"
    if notes:
        section += "\n" + notes.group(0).rstrip("\n") + "\n"
    print(section)
    if not write:
        return
    if old is None:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        text = text[: old.start()] + section + ("\n" + text[old.end() :] if text[old.end() :] else "")
    BENCHMARKS.write_text(text)
    print(f"wrote {title!r} to {BENCHMARKS}")

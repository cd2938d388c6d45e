"""The project's own tools, run as CI runs them: lint, format, types and the import layers."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.servers import ROOT

BIN = Path(sys.executable).parent
TYPE_ONLY_BACK_IMPORT = """
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..service import Service
"""


def run(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / argv[0]), *argv[1:]], cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    "argv",
    [("ruff", "check", "."), ("ruff", "format", "--check", "."), ("mypy",), ("lint-imports",)],
    ids=["ruff-check", "ruff-format", "mypy", "lint-imports"],
)
def test_the_tree_passes(argv: tuple[str, ...]) -> None:
    result = run(*argv)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_layers_contract_catches_a_type_only_back_import(tmp_path: Path) -> None:
    """The pool importing the Service, even for type hints only, breaks the layering."""
    shutil.copytree(ROOT / "utilserve", tmp_path / "utilserve", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    handle = tmp_path / "utilserve" / "pool" / "handle.py"
    handle.write_text(handle.read_text() + TYPE_ONLY_BACK_IMPORT)
    result = run("lint-imports", "--no-cache", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "utilserve.pool.handle -> utilserve.service" in result.stdout

"""The code stays as pyproject.toml says: ruff clean and formatted, mypy clean on the packages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_finds_nothing_and_the_code_is_formatted():
    folders = ("app", "chat", "streaming", "migrations", "tests", "bench")
    checked = run(str(BIN / "ruff"), "check", *folders)
    assert checked.returncode == 0, checked.stdout
    formatted = run(str(BIN / "ruff"), "format", "--check", *folders)
    assert formatted.returncode == 0, formatted.stdout


def test_mypy_finds_nothing():
    typed = run(str(BIN / "mypy"))
    assert typed.returncode == 0, typed.stdout

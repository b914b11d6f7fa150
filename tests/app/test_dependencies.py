"""SECURITY.md line 20: pinned dependencies carry known fixes."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _release(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:3])


def test_every_dependency_is_pinned_and_aiortc_has_the_sctp_fix():
    """SECURITY.md line 20: aiortc >= 1.15 fixes an SCTP parsing loop; nothing floats."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    requirements = project["dependencies"] + project["optional-dependencies"]["test"]
    assert all("==" in requirement for requirement in requirements), requirements
    pins = {r.split("==")[0].split("[")[0].lower(): r.split("==")[1] for r in requirements}
    assert _release(pins["aiortc"]) >= (1, 15)
    for name, pinned in pins.items():
        assert version(name) == pinned, f"{name} installed {version(name)}, pinned {pinned}"

"""SECURITY 20: pinned dependencies carry known fixes; the lock file holds every one, hashed."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import distributions, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"
LOCK = ROOT / "requirements.lock"
MAKEFILE = ROOT / "Makefile"


def _release(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:3])


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins() -> dict[str, str]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    requirements = project["dependencies"] + project["optional-dependencies"]["test"]
    assert all("==" in requirement for requirement in requirements), requirements
    return {
        _canonical(r.split("==")[0].split("[")[0]): r.split("==")[1].strip() for r in requirements
    }


def _locked() -> dict[str, tuple[str, list[str]]]:
    """The lock file's requirements: name -> (version, sha256 hashes)."""
    locked: dict[str, tuple[str, list[str]]] = {}
    for entry in re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text()):
        found = re.match(r"([A-Za-z0-9_.-]+)==(\S+)", entry)
        if found:
            hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", entry)
            locked[_canonical(found.group(1))] = (found.group(2), hashes)
    return locked


def test_every_dependency_is_pinned_and_aiortc_has_the_sctp_fix():
    """SECURITY 20: aiortc >= 1.15 fixes an SCTP parsing loop; nothing floats, including aioice
    and pylibsrtp, whose internals streaming/aiortc_hooks.py uses."""
    pins = _pins()
    assert _release(pins["aiortc"]) >= (1, 15)
    assert {"aioice", "pylibsrtp"} <= pins.keys()
    for name, pinned in pins.items():
        assert version(name) == pinned, f"{name} installed {version(name)}, pinned {pinned}"


def test_the_lock_file_holds_every_installed_distribution_with_its_hashes():
    """SECURITY 20: a fresh machine gets exactly what was tested. `make install` installs
    requirements.lock with --require-hashes; it must hold every pin of pyproject.toml at the same
    version (else `make lock` was forgotten), and every distribution installed here (every
    transitive dependency, pip and setuptools included) at the version installed, hashed."""
    locked = _locked()
    assert locked, "requirements.lock holds no requirement"
    for name, pinned in _pins().items():
        assert locked.get(name, ("missing", []))[0] == pinned, f"{name}: run `make lock`"
    for distribution in distributions():
        name = _canonical(distribution.metadata["Name"])
        if name == "dais":  # the project itself, installed from the working tree
            continue
        assert name in locked, f"{name} is installed but not in requirements.lock"
        locked_version, hashes = locked[name]
        assert locked_version == distribution.version, (
            f"{name} installed {distribution.version}, locked {locked_version}: run `make install`"
        )
        assert hashes, f"{name} has no hash in requirements.lock"
    makefile = MAKEFILE.read_text()
    assert "--require-hashes -r requirements.lock" in makefile
    assert re.search(r"^BUILD_INPUTS :=.*requirements\.lock", makefile, re.MULTILINE)

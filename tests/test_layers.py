"""The layers hold: the contracts in .importlinter (the leaf imports nothing of Dais; app imports
neither chat nor streaming but for its composition root; streaming imports only the leaf; chat
reaches media only through streaming's port; no import cycles), checked by import-linter, and no
module of app, chat or streaming imports itself through others. See docs/architecture.md."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest
from importlinter.api import read_configuration

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / ".importlinter"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("app", "chat", "streaming", "migrations")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` on the packages under `root`, with Dais's contracts."""
    # The packages under `root` come first, ahead of the installed (editable) ones.
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(CONFIG)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_layers_hold() -> None:
    """Every contract in .importlinter is kept by the code as it is."""
    linted = lint_imports(ROOT)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert "0 broken" in linted.stdout


# A forbidden import for each contract, and the contract it breaks.
BREACHES = {
    "leaf": ("app/errors.py", "import app.people.models"),
    "app": ("app/agenda/service.py", "import chat.models"),
    "streaming": ("streaming/munger.py", "import app.people.models"),
    "chat": ("chat/messages.py", "import streaming.forwarder"),
    "cycles": ("chat/roles.py", "import chat.guard"),
}


@pytest.mark.parametrize("contract", sorted(BREACHES))
def test_each_contract_catches_its_breach(tmp_path: Path, contract: str) -> None:
    """On a copy of the code with one forbidden import added, import-linter names that contract
    broken (so the test above can fail)."""
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "*.so")
        )
    module, line = BREACHES[contract]
    path = tmp_path / module
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    linted = lint_imports(tmp_path)
    assert linted.returncode == 1, linted.stdout + linted.stderr
    names = {c["id"]: c["name"] for c in read_configuration(str(CONFIG))["contracts_options"]}
    broken = [id_ for id_, name in names.items() if f"{name} BROKEN" in linted.stdout]
    assert broken == [contract], linted.stdout


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Groups of modules that import one another, directly or not (Tarjan's strongly connected
    components with more than one module)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_module_imports_itself_through_others() -> None:
    """Module by module, across packages too: the `cycles` contract compares siblings, and app's
    subpackages may depend on each other both ways (the agenda on the event, the event's pages
    on the agenda) as long as no module does."""
    graph = grimp.build_graph("app", "chat", "streaming", cache_dir=None)
    contract = next(
        c for c in read_configuration(str(CONFIG))["contracts_options"] if c["id"] == "cycles"
    )
    # The same exceptions as the contract, each documented there (none today).
    for ignored in contract.get("ignore_imports", []):
        importer, imported = (name.strip() for name in ignored.split("->"))
        if graph.direct_import_exists(importer=importer, imported=imported):
            graph.remove_import(importer=importer, imported=imported)
    # A package is the sum of its modules: `from . import _fanout` (a compiled module grimp does
    # not see) reads as an import of the package itself, which is no cycle.
    for package in ("app", "chat", "streaming"):
        for importer in graph.find_modules_that_directly_import(package):
            graph.remove_import(importer=importer, imported=package)
    assert _cycles(graph) == []


def test_a_cycle_through_three_modules_is_found() -> None:
    """The check above can fail: chat.guard -> chat.gateway -> chat.stage -> chat.guard, as the
    live modules were before the guard named the gateway by a protocol."""
    graph = grimp.ImportGraph()
    for importer, imported in [
        ("chat.guard", "chat.gateway"),
        ("chat.gateway", "chat.stage"),
        ("chat.stage", "chat.guard"),
        ("chat.stage", "chat.roles"),
    ]:
        graph.add_import(importer=importer, imported=imported)
    assert _cycles(graph) == [["chat.gateway", "chat.guard", "chat.stage"]]

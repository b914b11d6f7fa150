"""docs/security.md lists every promise Dais makes, numbered, each with the tests that check it.

A test cites a promise in its docstring ("SECURITY 21: ..."). This test fails when a promise has
no test, when a test cites a promise that does not exist, or when the tests listed under a
promise are not exactly the ones citing it (run `python -m tests.test_promises` to print them).
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROMISES = ROOT / "docs" / "security.md"
CITATION = re.compile(r"SECURITY(?:\.md)?(?:\s+lines?)?\s+(\d+(?:\s*(?:,|and)\s*\d+)*)")
HEADING = re.compile(r"^### (\d+)\. ", re.MULTILINE)
CHECKED_BY = re.compile(r"^### (\d+)\. .*?\nChecked by: (.+?)\n", re.MULTILINE | re.DOTALL)


def cited(text: str) -> set[int]:
    return {int(n) for group in CITATION.findall(text) for n in re.findall(r"\d+", group)}


def citations() -> tuple[dict[int, set[str]], dict[str, set[int]]]:
    """Promise number -> ids of the test functions citing it; and every file's citations
    (module docstrings and comments included) by path."""
    by_promise: dict[int, set[str]] = defaultdict(set)
    anywhere: dict[str, set[int]] = {}
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        source = path.read_text()
        name = path.relative_to(ROOT).as_posix()
        anywhere[name] = cited(source)
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
                "test_"
            ):
                for number in cited(ast.get_docstring(node) or ""):
                    by_promise[number].add(f"{name}::{node.name}")
    return by_promise, anywhere


def promises() -> tuple[list[int], dict[int, set[str]]]:
    """The promise numbers in docs/security.md, in order, and the tests listed under each."""
    text = PROMISES.read_text()
    numbers = [int(n) for n in HEADING.findall(text)]
    listed = {
        int(number): set(re.findall(r"`([^`]+)`", tests))
        for number, tests in CHECKED_BY.findall(text)
    }
    return numbers, listed


def test_every_promise_has_a_test_and_every_cited_promise_exists() -> None:
    numbers, listed = promises()
    assert numbers == sorted(set(numbers)), "promise numbers are unique and in order"
    assert numbers[:20] == list(range(1, 21)), "the first twenty keep their numbers"
    by_promise, anywhere = citations()
    untested = [n for n in numbers if not by_promise.get(n)]
    assert not untested, f"promises without a test: {untested}"
    unknown = {
        path: sorted(ns - set(numbers)) for path, ns in anywhere.items() if ns - set(numbers)
    }
    assert not unknown, f"tests cite promises that do not exist: {unknown}"
    for number in numbers:
        assert listed.get(number) == by_promise[number], (
            f"docs/security.md promise {number} lists other tests than cite it: "
            f"listed {sorted(listed.get(number, set()))}, citing {sorted(by_promise[number])}"
        )


if __name__ == "__main__":
    for number, tests in sorted(citations()[0].items()):
        print(f"{number}: " + ", ".join(f"`{t}`" for t in sorted(tests)))

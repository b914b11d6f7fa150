"""Fixtures for the media tests: a MediaServer on loopback and clients that play the browser's part."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from media_clients import Conference


@pytest.fixture
async def conference(tmp_path: pathlib.Path) -> AsyncIterator[Conference]:
    conference = Conference(tmp_path / "recordings")
    yield conference
    await conference.close()


@pytest.fixture
async def conference_factory(tmp_path: pathlib.Path) -> AsyncIterator[Callable[..., Conference]]:
    """For tests that need non-default server options (limits, grace period)."""
    made: list[Conference] = []

    def make(**options: Any) -> Conference:
        conference = Conference(tmp_path / "recordings", **options)
        made.append(conference)
        return conference

    yield make
    for conference in made:
        await conference.close()

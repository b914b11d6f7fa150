"""SECURITY.md line 10: fuzzed HTTP requests never get a 5xx, signed in or not: schemathesis over
the OpenAPI spec (single requests, then stateful sequences following the links it infers), and an
organiser scheduling at the calendar's edges (year 1, year 9999, zones 14 hours from UTC)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import available_timezones

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serving import dais_server

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")
ORGANISER = {"email": "events@westminster-insight.example", "password": "fuzzing-password"}


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """`dais serve --demo` on SQLite, with the demo organiser's token: (base URL, token)."""
    data_dir = tmp_path_factory.mktemp("fuzz")
    database_url = f"sqlite+aiosqlite:///{data_dir / 'fuzz.db'}"
    with dais_server(database_url, data_dir, "--demo", demo_password=ORGANISER["password"]) as base:
        signed_in = httpx.post(f"{base}/api/auth/sign-in", json=ORGANISER)
        yield base, signed_in.cookies["dais_session"]


def _stateful_transitions(report: Path) -> Counter[str]:
    """How often the stateful phase followed each link, from schemathesis's ndjson events."""
    followed: Counter[str] = Counter()
    for line in report.read_text().splitlines():
        event = json.loads(line)
        finished = event.get("ScenarioFinished")
        if not finished or finished["phase"] != "stateful":
            continue
        for case in finished["recorder"]["cases"].values():
            if case.get("transition"):
                followed[case["transition"]["id"]] += 1
    return followed


@pytest.mark.slow
def test_fuzzed_http_requests_never_get_a_server_error(demo_server, tmp_path):
    """SECURITY 10: malformed HTTP bodies never yield a 5xx, alone or in stateful sequences (an
    event created, then read or edited; events listed, then one given a session), and sequences
    that reach the date arithmetic really ran."""
    base, token = demo_server
    report = tmp_path / "events.ndjson"
    run = subprocess.run(
        [
            SCHEMATHESIS,
            "run",
            f"{base}/openapi.json",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "25",
            "--seed",
            "20261128",
            "--exclude-path",
            "/api/auth/sign-out",
            "--header",
            f"Authorization: Bearer {token}",
            "--report",
            "ndjson",
            "--report-ndjson-path",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert run.returncode == 0, run.stdout[-4000:]
    followed = _stateful_transitions(report)
    # Links are inferred from the spec (ids in responses matched to path parameters). Which ones
    # a run follows varies with the ids the server returns (an event created first, or one
    # listed); a sequence reaching the date arithmetic runs in every run.
    dated = ("PATCH /api/events/{event_id}", "POST /api/events/{event_id}/sessions")
    assert any(t.endswith(dated) for t in followed), followed


# Days and zones at the edges of what Python can represent and what Dais supports.
EDGE_DAYS = [date.min, date.max, date(1999, 12, 31), date(2000, 1, 1), date(2099, 12, 31)]
EDGE_DAYS += [date(2100, 1, 1), date(2027, 3, 28), date(2027, 11, 6)]
EDGE_ZONES = ["Pacific/Kiritimati", "Pacific/Pago_Pago", "Etc/GMT+12", "Etc/GMT-14"]
EDGE_ZONES += ["Asia/Beirut", "America/Havana", "America", "zone.tab", "localtime", "", "UTC "]
days = st.one_of(
    st.sampled_from(EDGE_DAYS), st.dates(date(2000, 1, 1), date(2099, 12, 31)), st.dates()
)
zones = st.one_of(st.sampled_from(EDGE_ZONES), st.sampled_from(sorted(available_timezones())))
# Fixed offsets up to a minute short of a day either way, as RFC 3339 allows.
offsets = st.builds(
    timezone,
    st.timedeltas(
        min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)
    ),
)


def days_after(day: date) -> st.SearchStrategy[date]:
    """The same day or a few later (most events), or any day at all."""
    later = st.integers(0, 3).map(lambda n: day + timedelta(days=n))
    return st.one_of(later, later, days) if day <= date(9999, 12, 28) else days


def moments_near(day: date) -> st.SearchStrategy[datetime]:
    """An instant on or around `day` (so many sessions fit their event), or any instant at all,
    with an offset as a client would send it."""
    anywhere = st.builds(
        lambda moment, offset: moment.replace(tzinfo=offset),
        st.sampled_from([datetime.min, datetime.max]) | st.datetimes(),
        offsets,
    )
    if not date(1, 1, 4) <= day <= date(9999, 12, 28):
        return anywhere
    near = st.builds(
        lambda hour, minutes, offset: (
            datetime.combine(day, time(), UTC) + timedelta(hours=hour, minutes=minutes)
        ).astimezone(offset),
        st.integers(-16, 40),
        st.sampled_from([0, 30, 59]),
        st.one_of(st.sampled_from([UTC, timezone(timedelta(hours=14))]), offsets),
    )
    return st.one_of(near, near, near, anywhere)


def moments_after(moment: datetime) -> st.SearchStrategy[datetime]:
    """Most often a session length later (up to a day and a half), sometimes anywhere."""
    if moment.replace(tzinfo=None) > datetime(9999, 12, 29):
        return moments_near(moment.date())
    later = st.integers(1, 36 * 60).map(lambda minutes: moment + timedelta(minutes=minutes))
    return st.one_of(later, later, moments_near(moment.date()))


@pytest.mark.slow
def test_an_organiser_scheduling_at_the_calendars_edges_never_gets_a_server_error(demo_server):
    """SECURITY 10: create an event on any day in any zone name, add a session at any instant,
    move the event and the session, then read the agenda, its calendar file and the event page:
    every answer is a success or a 422 naming a field, never a 5xx (it was an OverflowError for
    9999-12-31 in UTC+14 and for year 1 behind UTC)."""
    base, token = demo_server
    numbers = itertools.count()
    seen: Counter[str] = Counter()

    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as organiser:

        def answered(step: str, response: httpx.Response, ok: int) -> bool:
            """True for a success; a refusal must be a 422 that names its fields."""
            request = f"{response.request.method} {response.request.url.path}"
            assert response.status_code < 500, (request, response.text)
            seen[f"{step} {response.status_code}"] += 1
            if response.status_code == ok:
                return True
            assert response.status_code == 422, (request, response.text)
            assert response.json()["error"]["fields"], response.text
            return False

        @settings(
            max_examples=200,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(st.data())
        def schedule(data: st.DataObject) -> None:
            starts_on = data.draw(days)
            ends_on = data.draw(days_after(starts_on))
            created = organiser.post(
                "/api/events",
                json={
                    "title": f"Edge {next(numbers)}",
                    "starts_on": starts_on.isoformat(),
                    "ends_on": ends_on.isoformat(),
                    "timezone": data.draw(zones),
                    "published": True,
                },
            )
            if not answered("create event", created, 201):
                return
            event = created.json()
            starts_at = data.draw(moments_near(starts_on))
            session = organiser.post(
                f"/api/events/{event['id']}/sessions",
                json={
                    "title": "At the edge",
                    "starts_at": starts_at.isoformat(),
                    "ends_at": data.draw(moments_after(starts_at)).isoformat(),
                },
            )
            answered("add session", session, 201)
            moved = data.draw(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "starts_on": days.map(date.isoformat),
                        "ends_on": days_after(starts_on).map(date.isoformat),
                        "timezone": zones,
                    },
                )
            )
            answered("move event", organiser.patch(f"/api/events/{event['id']}", json=moved), 200)
            if session.status_code == 201:
                ends_at = data.draw(moments_after(starts_at))
                answered(
                    "move session",
                    organiser.patch(
                        f"/api/sessions/{session.json()['id']}",
                        json={"ends_at": ends_at.isoformat()},
                    ),
                    200,
                )
            for url in (
                f"/api/events/{event['slug']}/agenda",
                f"/api/events/{event['slug']}/agenda.ics",
                f"/e/{event['slug']}",
            ):
                assert answered("read", organiser.get(url), 200), url

        schedule()

    # The story reached every step, with sessions accepted as well as refused.
    for step in ("create event", "add session", "move event", "move session"):
        assert seen[f"{step} 200"] + seen[f"{step} 201"] > 0 and seen[f"{step} 422"] > 0, seen

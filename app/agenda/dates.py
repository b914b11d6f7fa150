"""The calendar Dais schedules in: event days from 2000 to 2099 in a named time zone, and the
instants a session may start and end.

A conference has no use for year 1 or 9999, and near those edges Python's date arithmetic
overflows (local midnight of 9999-12-31 in UTC+14 is fine, the next midnight is not a date). So
what clients send is bounded when it is parsed, and the one place that turns an event's days into
instants still refuses, naming the field, anything that will not convert (say a row stored before
these bounds).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Annotated
from zoneinfo import ZoneInfo, available_timezones

from pydantic import AfterValidator, AwareDatetime, Field

from app.errors import Invalid

FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2099, 12, 31)
# Conferences last days, festivals weeks; a year is plenty and keeps an agenda finite.
LONGEST_EVENT = timedelta(days=366)
# Every instant of a supported day in any zone (UTC offsets stay within a day either way). Aware
# datetimes compare without converting, so this check itself cannot overflow.
EARLIEST = datetime.combine(FIRST_DAY - timedelta(days=1), time(), UTC)
LATEST = datetime.combine(LAST_DAY + timedelta(days=2), time(), UTC)


@cache
def time_zone_names() -> frozenset[str]:
    """IANA names this machine knows, less `localtime` (whatever the server's own zone is)."""
    return frozenset(available_timezones() - {"localtime"})


def check_time_zone(value: str) -> str:
    # Looked up in the list rather than by ZoneInfo(value): a key like "America" is a directory
    # and "zone.tab" is not a zone file, and ZoneInfo answers those with OSError or ValueError.
    if value not in time_zone_names():
        raise ValueError(f"unknown time zone {value!r} (use an IANA name like Europe/London)")
    return value


def _supported_day(value: date) -> date:
    if not FIRST_DAY <= value <= LAST_DAY:
        raise ValueError(f"must be a day from {FIRST_DAY} to {LAST_DAY}")
    return value


def _supported_instant(value: datetime) -> datetime:
    if not EARLIEST <= value <= LATEST:
        raise ValueError(f"must be a time on a day from {FIRST_DAY} to {LAST_DAY}")
    return value


EventDay = Annotated[
    date,
    AfterValidator(_supported_day),
    Field(description=f"A day from {FIRST_DAY} to {LAST_DAY}."),
]
SessionTime = Annotated[
    AwareDatetime,
    AfterValidator(_supported_instant),
    Field(description=f"A time with its UTC offset, on a day from {FIRST_DAY} to {LAST_DAY}."),
]
TimeZoneName = Annotated[
    str,
    Field(max_length=64, description="An IANA time zone name, like Europe/London."),
    AfterValidator(check_time_zone),
]


def event_instants(
    starts_on: date, ends_on: date, timezone: str, *, field: str
) -> tuple[datetime, datetime]:
    """The first instant of an event's first day and the first instant after its last day.

    A midnight that a DST change skips is the first instant after the gap (zoneinfo reads a
    missing wall time with the offset before the change); a repeated midnight is its first pass.
    """
    try:
        zone = ZoneInfo(timezone)
        first = datetime.combine(starts_on, time(), zone)
        after_last = datetime.combine(ends_on + timedelta(days=1), time(), zone)
        # Converting is where an edge date overflows; do it here, once, so nothing later does.
        return first.astimezone(UTC), after_last.astimezone(UTC)
    except (OverflowError, ValueError, OSError, KeyError) as exc:
        raise Invalid(
            "event.dates_out_of_range",
            f"Events are scheduled on days from {FIRST_DAY} to {LAST_DAY} in a known time zone.",
            field=field,
        ) from exc

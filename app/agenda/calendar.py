"""The agenda as an iCalendar file (RFC 5545) that calendar programs import."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from app.agenda.schemas import SessionPublic
from app.event.models import Event


def _escape(text: str) -> str:
    return (
        text.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
    )


def _fold(line: str) -> str:
    """Lines longer than 75 octets continue on the next line after a space (RFC 5545 3.1)."""
    out: list[str] = []
    current = b""
    for char in line:
        encoded = char.encode()
        if len(current) + len(encoded) > (75 if not out else 74):
            out.append(current.decode())
            current = b""
        current += encoded
    out.append(current.decode())
    return "\r\n ".join(out)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def agenda_ics(event: Event, sessions: Iterable[SessionPublic], *, event_url: str) -> str:
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Dais//Conference agenda//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        f"X-WR-CALNAME:{_escape(event.title)}",
        f"X-WR-TIMEZONE:{event.timezone}",
    ]
    now = _stamp(datetime.now(UTC))
    for session in sessions:
        people = []
        if session.chair:
            people.append(f"Chair: {session.chair.display_name}")
        people += [
            f"{s.display_name}" + (f" ({s.affiliation})" if s.affiliation else "")
            for s in session.speakers
        ]
        description = "\n\n".join(p for p in (session.description, "\n".join(people)) if p)
        lines += [
            "BEGIN:VEVENT",
            f"UID:{session.id}@dais",
            f"DTSTAMP:{now}",
            f"DTSTART:{_stamp(session.starts_at)}",
            f"DTEND:{_stamp(session.ends_at)}",
            f"SUMMARY:{_escape(session.title)}",
            f"DESCRIPTION:{_escape(description)}",
            f"LOCATION:{_escape(event_url)}",
            f"URL:{event_url}",
            f"CATEGORIES:{session.kind.value.upper()}",
            "END:VEVENT",
        ]
    lines.append("END:VCALENDAR")
    return "".join(_fold(line) + "\r\n" for line in lines)

"""Stories of the names people go by: what is stored, what is refused and why, who cannot be
impersonated, and how long an attendee's email is kept."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import select, update

from app.demo import load_demo
from app.errors import Invalid
from app.nul import MESSAGE as NUL_MESSAGE
from app.people.models import Organiser, Participant
from app.people.names import normalise_name, passes_for
from app.people.service import create_organiser, purge_attendee_emails
from tests.app.helpers import organiser_with_event, signed_in_organiser

INVISIBLE = "Display names cannot contain invisible or direction-changing characters."

# One of each kind of character that hides, reorders or is not text at all.
BAD_CHARACTERS = {
    "right-to-left override": "Sam\u202eytrap",
    "left-to-right isolate": "\u2066Sam",
    "pop directional isolate": "Sam\u2069",
    "Arabic letter mark": "Sam\u061c",
    "right-to-left mark": "Sam\u200f",
    "zero-width space": "Sa\u200bm",
    "zero-width joiner": "Sa\u200dm",
    "zero-width non-joiner": "Sa\u200cm",
    "byte order mark": "\ufeffSam",
    "soft hyphen": "Sa\u00adm",
    "word joiner": "Sa\u2060m",
    "NUL": "Sam\u0000",
    "BEL": "Sam\u0007",
    "newline inside": "Sa\nm",
    "line separator": "Sa\u2028m",
    "paragraph separator": "Sa\u2029m",
    "private use": "Sam\ue000",
    "unassigned": "Sam\u0378",
    "Hangul filler": "\u3164",
    "blank Braille pattern": "Sam\u2800",
    "combining grapheme joiner": "Sa\u034fm",
    "variation selector 1": "Sa\ufe00m",
    "emoji selector after a letter": "Sa\ufe0fm",
    "tag character": "Sam\U000e0041",
}

WELCOME = [
    "José",
    "Zoë",
    "محمد عبد الله",  # Arabic, right to left
    "דוד לוי",  # Hebrew, right to left
    "李小龙",
    "Ngô Bảo Châu",
    "Ахмед",  # Cyrillic is a script like any other; only passing for a presenter is refused
    "Sam 🌻",
    "❤️ Robin",  # with the emoji presentation selector phones add
    "👩🏽 Alex",  # with a skin tone
    "#️⃣ hash",  # a keycap
    "Ó Súilleabháin",
    "Jo-Ann O'Neill",
    "مهدی\u200cزاده",  # Persian: the zero-width non-joiner is part of the spelling
    "क्\u200dष",  # Devanagari: a joiner shapes the conjunct
    "👩\u200d💻 Alex",  # one emoji of two, joined
]


async def _other_event(browser: httpx.AsyncClient, slug: str) -> str:
    event = await browser.post(
        "/api/events",
        json={
            "title": "Another Conference",
            "slug": slug,
            "starts_on": "2027-03-04",
            "ends_on": "2027-03-04",
            "published": True,
        },
    )
    assert event.status_code == 201, event.text
    return event.json()["id"]


def _escaped(body: dict[str, object]) -> dict[str, object]:
    """A JSON body with every non-ASCII character escaped, as a browser may send it; the only
    way to send a lone surrogate ("\\ud800"), which UTF-8 cannot carry."""
    return {"content": json.dumps(body), "headers": {"content-type": "application/json"}}


async def _register(clients, event_id: str, name: str, **extra: object) -> httpx.Response:
    async with clients.browser() as attendee:
        return await attendee.post(
            f"/api/events/{event_id}/register", **_escaped({"display_name": name, **extra})
        )


def _refused_field(response: httpx.Response, status: int, code: str) -> dict[str, str]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    [field] = error["fields"]
    assert field["field"] == "display_name"
    return field


async def test_invisible_and_direction_changing_characters_are_refused_naming_the_field(
    app, clients
):
    """SECURITY 26: whitespace only, and every kind of invisible, control or direction-changing
    character, is a 422 naming display_name with a message a person understands; nothing is
    stored, whether an attendee registers or an organiser invites a presenter."""
    async with clients.browser() as organiser:
        story = await organiser_with_event(app, organiser)
        event_id = story.event["id"]

        for blank in ("   ", "\u3000\u00a0", "\t \n"):
            field = _refused_field(
                await _register(clients, event_id, blank), 422, "request.invalid"
            )
            assert field["message"] == "Enter a display name."

        for kind, name in BAD_CHARACTERS.items():
            # A NUL is refused for every text before any field's rule (PostgreSQL cannot
            # store one: app/nul.py), with its own message; the field is named all the same.
            expected = NUL_MESSAGE if kind == "NUL" else INVISIBLE
            response = await _register(clients, event_id, name)
            assert _refused_field(response, 422, "request.invalid")["message"] == expected, kind
            if kind != "NUL":
                assert response.json()["error"]["message"] == "Please check: display_name."

            invite = await organiser.post(
                f"/api/sessions/{story.session['id']}/invites",
                **_escaped({"role": "speaker", "display_name": name}),
            )
            assert _refused_field(invite, 422, "request.invalid")["message"] == expected, kind

        # A lone surrogate is not text at all: the JSON parser refuses it before our rule.
        surrogate = await _register(clients, event_id, "Sam\ud800")
        assert "unicode" in _refused_field(surrogate, 422, "request.invalid")["message"]

        only_accents = await _register(clients, event_id, "\u0301\u0308")
        assert _refused_field(only_accents, 422, "request.invalid")["message"] == (
            "Display names need at least one letter, number or symbol."
        )

        counted = await organiser.get(f"/api/events/{event_id}/registrations")
        assert counted.json()["count"] == 0
        assert (await organiser.get(f"/api/events/{event_id}/people")).json() == []


async def test_names_are_stored_as_they_look_and_length_is_counted_after(app, clients):
    """SECURITY 26: fullwidth and other compatibility forms are stored in their plain form,
    decomposed accents are composed, whitespace is trimmed and collapsed; the 80-character limit
    holds for the stored name, even when normalising makes it longer."""
    async with clients.browser() as organiser:
        story = await organiser_with_event(app, organiser)
        event_id = story.event["id"]
        stored = {
            "Ｒｏｂｉｎ": "Robin",
            "  Jo \u00a0\u3000 Ann  ": "Jo Ann",
            "Zoe\u0308": "Zoë",
            "ﬁona": "fiona",
            "Sam\n": "Sam",
        }
        for typed, expected in stored.items():
            async with clients.browser() as attendee:
                response = await attendee.post(
                    f"/api/events/{event_id}/register", json={"display_name": typed}
                )
                assert response.status_code == 201, response.text
                assert response.json()["display_name"] == expected
                me = (await attendee.get("/api/auth/me")).json()
                assert me["participant"]["display_name"] == expected

        invite = await organiser.post(
            f"/api/sessions/{story.session['id']}/invites",
            json={"role": "speaker", "display_name": " Ｄｒ  Emma\u2003Short "},
        )
        assert invite.status_code == 201, invite.text
        assert invite.json()["display_name"] == "Dr Emma Short"

        assert (await _register(clients, event_id, "x" * 80)).status_code == 201
        too_long = await _register(clients, event_id, "x" * 81)
        assert _refused_field(too_long, 422, "request.invalid")
        # One character that NFKC spells out as eighteen: five of them fit the raw limit only.
        grows = await _register(clients, event_id, "\ufdfa" * 5)
        assert _refused_field(grows, 422, "request.invalid")["message"] == (
            "Display names can be at most 80 characters."
        )
        async with app.state.sessionmaker() as db:
            names = set(await db.scalars(select(Participant.display_name)))
        assert names == {*stored.values(), "Dr Emma Short", "x" * 80}


async def test_names_in_every_script_and_with_emoji_are_welcome(app, clients):
    """SECURITY 26: only control characters are refused; right-to-left scripts, accents, CJK
    and emoji are names like any other, stored exactly as typed."""
    async with clients.browser() as organiser:
        story = await organiser_with_event(app, organiser)
        for name in WELCOME:
            response = await _register(clients, story.event["id"], name)
            assert response.status_code == 201, (name, response.text)
            assert response.json()["display_name"] == name


# Written so that a reader takes them for the demo event's chair, a speaker or its organiser.
IMPOSTORS = {
    "Saskia Garner": [
        "Saskia Garner",
        "saskia  garner",
        "SASKIA GARNER",
        " Saskia\u00a0Garner ",
        "Ｓａｓｋｉａ Ｇａｒｎｅｒ",
        "Sáskia Gärner",
        "\u0405\u0430\u0455k\u0456\u0430 G\u0430rn\u0435r",  # Cyrillic Ѕ а ѕ і е
        "Saskıa Garner",  # dotless i
        "Saskia Gamer",  # rn for m
        "SaskiaGarner",
        "Saskia_Garner",
        "Saskia.Garner",
        "Saskia Garner (chair)",
        "Chair: Saskia Garner",
        "Saskia Garner ✔️",
        "Dr Saskia Garner",
    ],
    "Jess Phillips MP": ["Jess Phillips", "jess phillips m.p."],
    "Dr Rachel Wheatly": ["Rachel Wheatly", "Dr. Rachel Wheat1y"],
    "Professor Clive Ruggles": ["Prof. Clive Ruggles", "Clive Ruggles"],
    "Westminster Insight": ["Westminster Insight", "WESTMINSTER INSIGHT team"],
}
# Sharing a word with a presenter's name is not passing for them.
NOT_IMPOSTORS = {
    "Saskia Garner": ["Saskia", "Garner", "Saskia Jones", "Sam Garner", "Saskia Garnerson"],
    "Jess Phillips MP": ["Jess", "Phillips", "MP"],
    "Westminster Insight": ["Westminster", "Insight"],
}


def test_the_look_alike_rule_sees_names_as_a_reader_does():
    """SECURITY 26: the rule that decides whether an attendee's name passes for a presenter's
    ignores case, spacing, punctuation, accents, titles, look-alike letters and labels, and
    nothing more."""
    for presenter, names in IMPOSTORS.items():
        for name in names:
            assert passes_for(name, presenter), (name, presenter)
    for presenter, names in NOT_IMPOSTORS.items():
        for name in names:
            assert not passes_for(name, presenter), (name, presenter)


async def test_an_attendee_cannot_pass_for_the_chair_a_speaker_or_the_organiser(
    app, clients, settings
):
    """SECURITY 26: at the demo event, registering as its chair Saskia Garner however written
    (case, spacing, look-alike letters, a label) is a 409 person.name_taken naming display_name;
    so is a speaker's name without its title, and the organiser's name. At another event the
    name is free, and attendees may share a name with each other."""
    async with app.state.sessionmaker() as db:
        demo = await load_demo(db, settings)
        # The demo writes its people directly; their names must already be as the rule stores them.
        stored = [*await db.scalars(select(Participant.display_name))]
        stored += await db.scalars(select(Organiser.name))
        assert "Saskia Garner" in stored
        assert all(normalise_name(name) == name for name in stored)
    impostors = [
        "Saskia Garner",
        "saskia  garner",
        "SASKIA GARNER",
        "\u0405\u0430\u0455k\u0456\u0430 G\u0430rn\u0435r",
        "Saskia Garner (chair)",
        "Jess Phillips",
        "Westminster Insight",
    ]
    for name in impostors:
        response = await _register(clients, demo.id, name)
        field = _refused_field(response, 409, "person.name_taken")
        assert "presenter or organiser" in field["message"], name

    allowed = ["Saskia", "Sam Garner", "Sam", "Sam"]
    for name in allowed:
        response = await _register(clients, demo.id, name)
        assert response.status_code == 201, (name, response.text)

    async with clients.browser() as organiser:
        await signed_in_organiser(app, organiser)
        other = await _other_event(organiser, "another-conference")
    elsewhere = await _register(clients, other, "Saskia Garner")
    assert elsewhere.status_code == 201 and elsewhere.json()["display_name"] == "Saskia Garner"

    async with app.state.sessionmaker() as db:
        attendees = await db.scalars(
            select(Participant.display_name).where(
                Participant.event_id == demo.id, Participant.kind == "attendee"
            )
        )
        assert sorted(attendees) == sorted(allowed)


async def test_presenters_are_protected_from_the_moment_they_are_invited(app, clients):
    """SECURITY 26: a moderator invited to a session is protected like a chair; an organiser may
    still invite a presenter under a name an attendee already uses (presenters are chosen); a
    revoked presenter's name is free again, as it is no longer shown as a presenter's."""
    async with clients.browser() as organiser:
        story = await organiser_with_event(app, organiser)
        event_id, session_id = story.event["id"], story.session["id"]
        assert (await _register(clients, event_id, "Casey Moderator")).status_code == 201

        invited = await organiser.post(
            f"/api/sessions/{session_id}/invites",
            json={"role": "moderator", "display_name": "Casey Moderator"},
        )
        assert invited.status_code == 201, invited.text
        taken = await _register(clients, event_id, "casey moderator")
        _refused_field(taken, 409, "person.name_taken")

        revoked = await organiser.post(
            f"/api/events/{event_id}/people/{invited.json()['participant_id']}/revoke"
        )
        assert revoked.status_code == 200
        assert (await _register(clients, event_id, "casey moderator")).status_code == 201


async def test_an_organisers_name_is_normalised_and_checked_too(app):
    """SECURITY 26: the organiser's name (the staff name attendees cannot take) follows the
    same rule, checked in the service that the `dais create-organiser` command calls."""
    async with app.state.sessionmaker() as db:
        organiser = await create_organiser(
            db, email="a@example.org", name=" Ｗｅｓｔ  Events ", password="long enough pw"
        )
        assert organiser.name == "West Events"
        with pytest.raises(Invalid) as refused:
            await create_organiser(
                db, email="b@example.org", name="West\u202eEvents", password="long enough pw"
            )
        assert refused.value.field == "name" and refused.value.message == INVISIBLE
        with pytest.raises(Invalid) as empty:
            await create_organiser(db, email="c@example.org", name=" ", password="long enough pw")
        assert empty.value.field == "name"
        assert list(await db.scalars(select(Organiser.email))) == ["a@example.org"]


async def test_attendees_emails_are_forgotten_once_the_events_retention_has_passed(app, clients):
    """SECURITY 13 and 26: an attendee's optional email is cleared once the event's retention
    period (counted from the end of its last day, or from a later registration) has passed, as
    its chat and Q&A are; presenters' emails, other events' and those still in time are kept."""
    async with clients.browser() as organiser:
        story = await organiser_with_event(app, organiser)  # 4 March 2027, Europe/London
        event_id = story.event["id"]
        patched = await organiser.patch(f"/api/events/{event_id}", json={"retention_days": 30})
        assert patched.status_code == 200
        later = await organiser.post(
            "/api/events",
            json={
                "title": "Later",
                "slug": "later-conference",
                "starts_on": "2027-06-01",
                "ends_on": "2027-06-02",
                "retention_days": 30,
                "published": True,
            },
        )
        for name, email in (("Sam", "sam@example.org"), ("Alex", "alex@example.org")):
            assert (await _register(clients, event_id, name, email=email)).status_code == 201
        assert (await _register(clients, event_id, "Jo")).status_code == 201
        assert (
            await _register(clients, later.json()["id"], "Kim", email="kim@example.org")
        ).status_code == 201
        speaker = await organiser.post(
            f"/api/sessions/{story.session['id']}/invites",
            json={"role": "speaker", "display_name": "Dr Emma Short", "email": "emma@example.org"},
        )
        assert speaker.status_code == 201

    async def emails() -> dict[str, str | None]:
        async with app.state.sessionmaker() as db:
            rows = await db.execute(select(Participant.display_name, Participant.email))
            return {name: email for name, email in rows}

    everyone = {
        "Sam": "sam@example.org",
        "Alex": "alex@example.org",
        "Jo": None,
        "Kim": "kim@example.org",
        "Dr Emma Short": "emma@example.org",
    }
    async with app.state.sessionmaker() as db:
        # Someone who registered after the event, to watch its replays: their own 30 days.
        await db.execute(
            update(Participant)
            .where(Participant.display_name == "Alex")
            .values(created_at=datetime(2027, 3, 20, tzinfo=UTC))
        )
        await db.commit()

        # The event's last day ends at midnight in London (UTC+0 in March); 30 days on is 4 April.
        just_before = datetime(2027, 4, 3, 23, 59, tzinfo=UTC)
        assert await purge_attendee_emails(db, now=just_before) == 0
        assert await emails() == everyone

        assert await purge_attendee_emails(db, now=datetime(2027, 4, 4, 0, 1, tzinfo=UTC)) == 1
        assert await emails() == {**everyone, "Sam": None}

        assert await purge_attendee_emails(db, now=datetime(2027, 4, 20, tzinfo=UTC)) == 1
        assert await emails() == {**everyone, "Sam": None, "Alex": None}
        assert await purge_attendee_emails(db, now=datetime(2027, 4, 20, tzinfo=UTC)) == 0

        assert await purge_attendee_emails(db, now=datetime(2027, 7, 3, 0, 1, tzinfo=UTC)) == 1
        assert await emails() == {**everyone, "Sam": None, "Alex": None, "Kim": None}

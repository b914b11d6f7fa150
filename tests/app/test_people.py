"""Stories of attendees registering, presenters accepting invites, and organisers revoking."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, text, update

from app.auth.models import AccessToken
from app.db import utcnow
from app.invites.models import Invite
from app.people.models import Organiser
from tests.app.helpers import PASSWORD, organiser_with_event


async def test_an_attendee_registers_with_a_display_name_only(app, clients):
    async with clients.browser() as organiser, clients.browser() as attendee:
        story = await organiser_with_event(app, organiser)
        event_id = story.event["id"]
        response = await attendee.post(
            f"/api/events/{event_id}/register", json={"display_name": "Sam"}
        )
        assert response.status_code == 201
        cookie = response.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie
        me = (await attendee.get("/api/auth/me")).json()
        assert me["participant"]["display_name"] == "Sam"
        assert me["participant"]["email"] is None
        assert me["roles"] == {}

        # An email is optional, shown back to its owner and to nobody else.
        async with clients.browser() as second:
            await second.post(
                f"/api/events/{event_id}/register",
                json={"display_name": "Alex", "email": "alex@example.org"},
            )
            assert (await second.get("/api/auth/me")).json()["participant"]["email"] == (
                "alex@example.org"
            )
        for url in (f"/api/events/{event_id}", f"/api/events/{event_id}/agenda"):
            assert "alex@example.org" not in (await attendee.get(url)).text

        bad = await attendee.post(f"/api/events/{event_id}/register", json={"display_name": ""})
        assert bad.status_code == 422
        assert bad.json()["error"]["fields"][0]["field"] == "display_name"


async def test_the_organiser_sees_a_count_of_attendees_not_their_names(app, clients):
    async with clients.browser() as organiser:
        story = await organiser_with_event(app, organiser)
        event_id = story.event["id"]
        for name in ("Sam", "Alex", "Jo"):
            async with clients.browser() as attendee:
                await attendee.post(f"/api/events/{event_id}/register", json={"display_name": name})
        counted = (await organiser.get(f"/api/events/{event_id}/registrations")).json()
        assert counted == {"count": 3, "display_names": None}

        await organiser.patch(
            f"/api/events/{event_id}", json={"organiser_sees_attendee_names": True}
        )
        named = (await organiser.get(f"/api/events/{event_id}/registrations")).json()
        assert named == {"count": 3, "display_names": ["Sam", "Alex", "Jo"]}


async def test_a_speaker_opens_an_invite_once_and_is_signed_in_with_its_role(app, clients):
    async with clients.browser() as organiser, clients.browser() as speaker:
        story = await organiser_with_event(app, organiser)
        session_id = story.session["id"]
        invite = await organiser.post(
            f"/api/sessions/{session_id}/invites",
            json={"role": "speaker", "display_name": "Dr Emma Short", "affiliation": "NCCR"},
        )
        assert invite.status_code == 201
        url = invite.json()["url"]
        assert url.startswith("http://testserver/invite/")
        path = url.removeprefix("http://testserver")

        # Opening the link only shows who it is for; pressing Continue spends it.
        page = await speaker.get(path)
        assert page.status_code == 200 and "Dr Emma Short" in page.text
        accepted = await speaker.post(path)
        assert accepted.status_code == 303
        assert accepted.headers["location"] == f"/e/tackling-stalking/sessions/{session_id}"
        me = (await speaker.get("/api/auth/me")).json()
        assert me["participant"]["display_name"] == "Dr Emma Short"
        assert me["roles"] == {session_id: "speaker"}

        agenda = (await speaker.get(f"/api/events/{story.event['id']}/agenda")).json()
        assert agenda["sessions"][0]["speakers"] == [
            {"id": me["participant"]["id"], "display_name": "Dr Emma Short", "affiliation": "NCCR"}
        ]

        async with clients.browser() as someone_else:
            again = await someone_else.post(path)
            assert again.status_code == 410 and "already been used" in again.text
            token = path.removeprefix("/invite/")
            json_again = await someone_else.post("/api/invites/accept", json={"token": token})
            assert json_again.status_code == 410
            assert json_again.json()["error"]["code"] == "invite.used"
            assert (await someone_else.get("/api/auth/me")).status_code == 401


async def test_forged_and_expired_invites_are_refused_and_change_nothing(app, clients):
    async with clients.browser() as organiser, clients.browser() as stranger:
        story = await organiser_with_event(app, organiser)
        invite = (
            await organiser.post(
                f"/api/sessions/{story.session['id']}/invites",
                json={"role": "chair", "display_name": "Saskia Garner"},
            )
        ).json()
        token = invite["url"].rsplit("/", 1)[1]
        invite_id, signature = token.split(".")

        forged = [
            f"{invite_id}.{'0' * len(signature)}",
            f"{'f' * 32}.{signature}",
            "garbage",
            ".",
            f"{invite_id}.\u00a2\u00e9",
        ]
        for bad in forged:
            response = await stranger.post("/api/invites/accept", json={"token": bad})
            assert response.status_code == 404
            assert response.json()["error"]["code"] == "invite.invalid"
            assert (await stranger.get(f"/invite/{bad}")).status_code == 404

        async with app.state.sessionmaker() as db:
            await db.execute(update(Invite).values(expires_at=utcnow() - timedelta(minutes=1)))
            await db.commit()
        expired = await stranger.post("/api/invites/accept", json={"token": token})
        assert expired.status_code == 410
        assert expired.json()["error"]["code"] == "invite.expired"
        async with app.state.sessionmaker() as db:
            row = await db.get(Invite, invite_id)
            assert row is not None and row.used_at is None
            assert (
                await db.scalar(select(AccessToken).where(AccessToken.participant_id.is_not(None)))
                is None
            )


async def test_a_revoked_person_is_signed_out_and_their_invites_stop_working(app, clients):
    async with clients.browser() as organiser, clients.browser() as speaker:
        story = await organiser_with_event(app, organiser)
        first = (
            await organiser.post(
                f"/api/sessions/{story.session['id']}/invites",
                json={"role": "speaker", "display_name": "Speaker"},
            )
        ).json()
        await speaker.post("/api/invites/accept", json={"token": first["url"].rsplit("/", 1)[1]})
        assert (await speaker.get("/api/auth/me")).status_code == 200
        second = (
            await organiser.post(
                f"/api/sessions/{story.session['id']}/invites",
                json={"role": "speaker", "participant_id": first["participant_id"]},
            )
        ).json()

        revoked = await organiser.post(
            f"/api/events/{story.event['id']}/people/{first['participant_id']}/revoke"
        )
        assert revoked.status_code == 200
        gone = await speaker.get("/api/auth/me")
        assert gone.status_code == 401 and gone.json()["error"]["code"] == "auth.revoked"
        reuse = await speaker.post(
            "/api/invites/accept", json={"token": second["url"].rsplit("/", 1)[1]}
        )
        assert reuse.status_code == 410 and reuse.json()["error"]["code"] == "invite.revoked"
        people = (await organiser.get(f"/api/events/{story.event['id']}/people")).json()
        assert people[0]["revoked_at"] is not None
        agenda = (await organiser.get(f"/api/events/{story.event['id']}/agenda")).json()
        assert agenda["sessions"][0]["speakers"] == []


async def test_passwords_and_tokens_are_stored_only_as_hashes(app, clients):
    async with clients.browser() as organiser, clients.browser() as attendee:
        story = await organiser_with_event(app, organiser)
        await attendee.post(f"/api/events/{story.event['id']}/register", json={"display_name": "S"})
        tokens = [c.value for c in [*organiser.cookies.jar, *attendee.cookies.jar]]
        assert len(tokens) == 2
        async with app.state.sessionmaker() as db:
            hashed = (await db.scalars(select(Organiser.password_hash))).one()
            assert hashed.startswith("$argon2id$") and PASSWORD not in hashed
            stored = []
            for table in ("access_tokens", "invites", "participants", "organisers", "events"):
                rows = await db.execute(text(f"SELECT * FROM {table}"))
                stored += [str(value) for row in rows for value in row]
        assert not any(token in value for token in tokens for value in stored)


async def test_sign_in_with_a_wrong_password_is_refused_and_sign_out_ends_the_token(app, clients):
    async with clients.browser() as organiser:
        await organiser_with_event(app, organiser)
        async with clients.browser() as intruder:
            wrong = await intruder.post(
                "/api/auth/sign-in", json={"email": "org@example.org", "password": "guess"}
            )
            assert wrong.status_code == 401
            assert wrong.json()["error"]["code"] == "auth.bad_credentials"
            unknown = await intruder.post(
                "/api/auth/sign-in", json={"email": "nobody@example.org", "password": "guess"}
            )
            assert unknown.json()["error"]["code"] == "auth.bad_credentials"
        token = organiser.cookies["dais_session"]
        assert (await organiser.post("/api/auth/sign-out")).status_code == 204
        async with clients.browser() as replay:
            again = await replay.get("/api/auth/me", headers={"authorization": f"Bearer {token}"})
            assert again.status_code == 401

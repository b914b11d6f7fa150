"""Stories about chat, announcements, reactions, polls and the chat moderation tools."""

from __future__ import annotations

from sqlalchemy import select

from app.db import make_engine, make_sessionmaker
from chat.models import Message, RoomEvent
from tests.chat.conftest import ANY, Live, Server, ServerFactory, World, make_world


def posted(text: str, author: str, role: str = "attendee") -> dict:
    return {
        "type": "message.posted",
        "seq": ANY,
        "message": {
            "id": ANY,
            "kind": "chat",
            "author_id": ANY,
            "author": author,
            "author_role": role,
            "text": text,
            "at": ANY,
        },
    }


async def test_message_is_committed_before_its_ack_and_broadcast(
    server: Server, world: World, database_url: str
) -> None:
    """SECURITY 15: when the sender gets `ok`, the message is in the database; the broadcast
    comes after the ack, also to the sender."""
    ada = await Live.join(server, world.session_id, world.attendees[0])
    bea = await Live.join(server, world.session_id, world.attendees[1])
    request_id = await ada.send("chat.send", text="Hello from Leeds")
    ack = await ada.frame()
    assert ack == {
        "type": "ok",
        "id": request_id,
        "result": {"message": posted("Hello from Leeds", "Ada")["message"], "held": False},
    }
    engine = make_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as db:
            stored = await db.get(Message, ack["result"]["message"]["id"])
            assert stored is not None and stored.text == "Hello from Leeds"
            logged = await db.scalar(
                select(RoomEvent.type).where(RoomEvent.subject_id == stored.id)
            )
            assert logged == "message.posted"
    finally:
        await engine.dispose()
    assert await ada.event("message.posted") == posted("Hello from Leeds", "Ada")
    assert await bea.event("message.posted") == posted("Hello from Leeds", "Ada")


async def test_deleted_message_is_gone_for_attendees(server: Server, world: World) -> None:
    """SECURITY 8 and 13: a deleted message reaches no later attendee and keeps no text."""
    ada = await Live.join(server, world.session_id, world.attendees[0])
    chair = await Live.join(server, world.session_id, world.chair)
    message_id = (await ada.ok("chat.send", text="Something unkind"))["message"]["id"]
    await chair.event("message.posted")
    await chair.ok("message.delete", message_id=message_id)
    deleted = {"type": "message.deleted", "seq": ANY, "message_id": message_id}
    assert await ada.event("message.posted") == posted("Something unkind", "Ada")
    assert await ada.event("message.deleted") == deleted
    later = await Live.join(server, world.session_id, world.attendees[1])
    assert later.joined is not None and later.joined["messages"] == []
    resumed = await Live.join(server, world.session_id, world.attendees[1], last_seq=0)
    assert await resumed.event("message.deleted") == deleted
    await resumed.nothing()


async def test_word_filter_holds_a_message_for_review(server: Server, database_url: str) -> None:
    """Held messages go to moderators only, until released."""
    world = await make_world(database_url, word_filter=["Stalkerware"])
    ada = await Live.join(server, world.session_id, world.attendees[0])
    bea = await Live.join(server, world.session_id, world.attendees[1])
    chair = await Live.join(server, world.session_id, world.chair)
    reply = await ada.ok("chat.send", text="Which stalkerware apps are worst?")
    assert reply["held"] is True
    held = await chair.event("message.held")
    await bea.nothing()
    await ada.nothing()
    await chair.ok("held.release", message_id=held["message"]["id"])
    for person in (ada, bea):
        assert await person.event("message.posted") == posted(
            "Which stalkerware apps are worst?", "Ada"
        )
    assert (await chair.event("message.posted"))["message"]["text"].startswith("Which")
    await ada.ok("chat.send", text="Stalkerware again")
    second = await chair.event("message.held")
    await chair.ok("held.discard", message_id=second["message"]["id"])
    assert await chair.event("message.deleted") == {
        "type": "message.deleted",
        "seq": ANY,
        "message_id": second["message"]["id"],
    }
    await bea.nothing()


async def test_chat_rate_limit_refuses_and_never_broadcasts(server: Server, world: World) -> None:
    """SECURITY 7: past the per-person chat limit the answer is `rate_limited`, nothing is sent."""
    ada = await Live.join(server, world.session_id, world.attendees[0])
    bea = await Live.join(server, world.session_id, world.attendees[1])
    burst = server.settings.live_rate_limits["chat"][0]
    for n in range(burst):
        await ada.ok("chat.send", text=f"message {n}")
    refused = await ada.request("chat.send", text="one too many")
    assert refused == {
        "type": "error",
        "id": ANY,
        "code": "rate_limited",
        "message": ANY,
        "field": None,
    }
    for n in range(burst):
        assert await bea.event("message.posted") == posted(f"message {n}", "Ada")
    await bea.nothing()
    # Limits are per person: Bea can still talk.
    await bea.ok("chat.send", text="my turn")


async def test_question_and_vote_rate_limits(start_server: ServerFactory, world: World) -> None:
    """SECURITY 7: questions and votes have their own per-person limits."""
    server = await start_server(
        live_rate_limits={"chat": (5, 30), "question": (2, 1), "vote": (1, 1), "reaction": (2, 1)}
    )
    ada = await Live.join(server, world.session_id, world.attendees[0])
    chair = await Live.join(server, world.session_id, world.chair)
    first = (await ada.ok("question.ask", text="One"))["question"]["id"]
    second = (await ada.ok("question.ask", text="Two"))["question"]["id"]
    assert (await ada.request("question.ask", text="Three"))["code"] == "rate_limited"
    for question_id in (first, second):
        await chair.ok("question.approve", question_id=question_id)
    await ada.ok("question.vote", question_id=first)
    assert (await ada.request("question.vote", question_id=second))["code"] == "rate_limited"
    await ada.ok("reaction.send", reaction="applause")
    await ada.ok("reaction.send", reaction="heart")
    assert (await ada.request("reaction.send", reaction="heart"))["code"] == "rate_limited"


async def test_slow_mode_is_enforced_by_the_server_and_moderators_are_exempt(
    server: Server, world: World
) -> None:
    """SECURITY 7: slow mode refuses a second message within the interval; the chair is exempt."""
    ada = await Live.join(server, world.session_id, world.attendees[0])
    chair = await Live.join(server, world.session_id, world.chair)
    await chair.ok("room.slow_mode", seconds=30)
    assert (await ada.event("room.changed"))["room"]["slow_mode_seconds"] == 30
    await ada.ok("chat.send", text="first")
    assert (await ada.request("chat.send", text="second"))["code"] == "rate_limited"
    await chair.ok("chat.send", text="chair one")
    await chair.ok("chat.send", text="chair two")
    assert (await ada.event("message.posted"))["message"]["text"] == "first"
    assert (await ada.event("message.posted"))["message"]["text"] == "chair one"
    assert (await ada.event("message.posted"))["message"]["text"] == "chair two"
    await ada.nothing()


async def test_muted_person_cannot_post_or_ask_until_unmuted(server: Server, world: World) -> None:
    ada = await Live.join(server, world.session_id, world.attendees[0])
    chair = await Live.join(server, world.session_id, world.chair)
    await chair.ok("person.mute", person_id=world.attendee_ids[0], minutes=10)
    muted = await ada.event("person.muted")
    assert muted == {
        "type": "person.muted",
        "seq": ANY,
        "person_id": world.attendee_ids[0],
        "until": ANY,
    }
    assert (await ada.request("chat.send", text="hello?"))["code"] == "person.muted"
    assert (await ada.request("question.ask", text="hello?"))["code"] == "person.muted"
    await chair.ok("person.unmute", person_id=world.attendee_ids[0])
    assert (await ada.event("person.unmuted"))["person_id"] == world.attendee_ids[0]
    await ada.ok("chat.send", text="thanks")


async def test_announcements_and_reactions_reach_everyone(server: Server, world: World) -> None:
    ada = await Live.join(server, world.session_id, world.attendees[0])
    chair = await Live.join(server, world.session_id, world.chair)
    await chair.ok("announcement.post", text="We resume at 13:30.")
    announced = await ada.event("announcement.posted")
    assert announced["message"] | {"id": ANY, "at": ANY} == {
        "id": ANY,
        "kind": "announcement",
        "author_id": world.chair_id,
        "author": "Saskia Garner",
        "author_role": "chair",
        "text": "We resume at 13:30.",
        "at": ANY,
    }
    await chair.event("announcement.posted")
    await ada.ok("reaction.send", reaction="applause")
    assert await chair.event("reaction.sent") == {
        "type": "reaction.sent",
        "seq": None,
        "reaction": "applause",
    }


async def test_poll_opens_takes_one_vote_each_and_shows_results_when_closed(
    server: Server, world: World
) -> None:
    ada = await Live.join(server, world.session_id, world.attendees[0])
    bea = await Live.join(server, world.session_id, world.attendees[1])
    chair = await Live.join(server, world.session_id, world.chair)
    poll = (await chair.ok("poll.create", question="Have you used EASI?", options=["Yes", "No"]))[
        "poll"
    ]
    assert (await chair.event("poll.created"))["poll"]["status"] == "draft"
    await ada.nothing()
    await chair.ok("poll.open", poll_id=poll["id"])
    opened = await ada.event("poll.opened")
    assert await bea.event("poll.opened") == opened
    assert opened["poll"] == {
        "id": poll["id"],
        "question": "Have you used EASI?",
        "options": ["Yes", "No"],
        "status": "open",
        "counts": None,
    }
    await ada.ok("poll.vote", poll_id=poll["id"], option=0)
    assert (await ada.request("poll.vote", poll_id=poll["id"], option=1))[
        "code"
    ] == "poll.already_voted"
    assert (await bea.request("poll.vote", poll_id=poll["id"], option=5))[
        "code"
    ] == "poll.no_such_option"
    await bea.ok("poll.vote", poll_id=poll["id"], option=1)
    await chair.ok("poll.close", poll_id=poll["id"])
    closed = await bea.event("poll.closed")
    assert closed["poll"]["counts"] == [1, 1]
    assert (await bea.request("poll.vote", poll_id=poll["id"], option=0))["code"] == "poll.not_open"

"""Stories about questions: anonymous asking, the moderation queue, approval, votes, answers."""

from __future__ import annotations

from tests.chat.conftest import ANY, Live, Server, World, make_world


def question(text: str, *, asker: str | None, votes: int = 0, anonymous: bool = False) -> dict:
    return {
        "id": ANY,
        "text": text,
        "status": "approved",
        "anonymous": anonymous,
        "asker": asker,
        "votes": votes,
        "answered": False,
        "at": ANY,
    }


async def test_anonymous_question_is_approved_then_reaches_each_attendee_once_without_a_name(
    server: Server, world: World
) -> None:
    """SECURITY 8 and 12: a pending question reaches no attendee; once approved it reaches each
    attendee exactly once, and an anonymous asker's name reaches neither attendees nor speakers."""
    ada = await Live.join(server, world.session_id, world.attendees[0])
    bea = await Live.join(server, world.session_id, world.attendees[1])
    chair = await Live.join(server, world.session_id, world.chair)
    speaker = await Live.join(server, world.session_id, world.speaker)

    asked = await ada.ok("question.ask", text="How do police record stalking?", anonymous=True)
    assert asked["question"]["status"] == "pending"
    assert asked["question"]["asker"] is None
    question_id = asked["question"]["id"]

    submitted = await chair.event("question.submitted")
    assert submitted == {
        "type": "question.submitted",
        "seq": ANY,
        "question": {
            "id": question_id,
            "text": "How do police record stalking?",
            "status": "pending",
            "anonymous": True,
            "asker": None,  # the session does not let the chair see names
            "votes": 0,
            "answered": False,
            "at": ANY,
        },
    }
    await bea.nothing()
    await speaker.nothing()
    await ada.nothing()

    await chair.ok("question.approve", question_id=question_id)
    expected = {
        "type": "question.approved",
        "seq": submitted["seq"] + 1,
        "question": question("How do police record stalking?", asker=None, anonymous=True)
        | {"id": question_id},
    }
    for person in (ada, bea, speaker, chair):
        assert await person.event("question.approved") == expected
        await person.nothing(0.2)

    # A second approval is refused and broadcasts nothing.
    again = await chair.request("question.approve", question_id=question_id)
    assert again == {
        "type": "error",
        "id": ANY,
        "code": "question.not_pending",
        "message": ANY,
        "field": None,
    }
    await bea.nothing()


async def test_speaker_sees_approved_questions_ordered_by_votes(
    server: Server, world: World
) -> None:
    """The speaker's view: approved questions, most votes first, and the pinned one."""
    ada = await Live.join(server, world.session_id, world.attendees[0])
    bea = await Live.join(server, world.session_id, world.attendees[1])
    chair = await Live.join(server, world.session_id, world.chair)
    first = (await ada.ok("question.ask", text="First question"))["question"]["id"]
    second = (await bea.ok("question.ask", text="Second question"))["question"]["id"]
    for question_id in (first, second):
        await chair.ok("question.approve", question_id=question_id)
    assert await ada.ok("question.vote", question_id=second) == {"question_id": second, "votes": 1}
    await bea.ok("question.vote", question_id=second)
    again = await bea.request("question.vote", question_id=second)
    assert again["code"] == "question.already_voted"
    await chair.ok("question.pin", question_id=second)

    speaker = await Live.join(server, world.session_id, world.speaker)
    state = speaker.joined
    assert state is not None
    assert state["questions"] == [
        question("Second question", asker="Bea", votes=2) | {"id": second},
        question("First question", asker="Ada") | {"id": first},
    ]
    assert state["room"]["pinned_question_id"] == second
    assert state["queue"] is None  # speakers do not see the moderation queue

    await bea.ok("question.unvote", question_id=second)
    assert await speaker.event("question.voted") == {
        "type": "question.voted",
        "seq": ANY,
        "question_id": second,
        "votes": 1,
    }


async def test_rejected_question_never_reaches_attendees(server: Server, world: World) -> None:
    """SECURITY 8: a rejected question goes to moderators and its asker only."""
    ada = await Live.join(server, world.session_id, world.attendees[0])
    bea = await Live.join(server, world.session_id, world.attendees[1])
    chair = await Live.join(server, world.session_id, world.chair)
    question_id = (await ada.ok("question.ask", text="Something off-topic"))["question"]["id"]
    await chair.event("question.submitted")
    await chair.ok("question.reject", question_id=question_id)
    rejected = {"type": "question.rejected", "seq": ANY, "question_id": question_id}
    assert await chair.event("question.rejected") == rejected
    assert await ada.event("question.rejected") == rejected
    await bea.nothing()
    # Voting on it is as if it did not exist.
    refused = await bea.request("question.vote", question_id=question_id)
    assert refused["code"] == "question.not_found"
    late = await Live.join(server, world.session_id, world.attendees[2])
    assert late.joined is not None and late.joined["questions"] == []


async def test_chair_sees_anonymous_askers_name_only_when_the_session_allows(
    server: Server, database_url: str
) -> None:
    """SECURITY 12: whether the chair sees an anonymous asker's name is a setting."""
    world = await make_world(database_url, chair_sees_asker_names=True)
    ada = await Live.join(server, world.session_id, world.attendees[0])
    chair = await Live.join(server, world.session_id, world.chair)
    await ada.ok("question.ask", text="Can I ask this privately?", anonymous=True)
    submitted = await chair.event("question.submitted")
    assert submitted["question"]["asker"] == "Ada"
    assert submitted["question"]["anonymous"] is True
    await chair.ok("question.approve", question_id=submitted["question"]["id"])
    approved = await ada.event("question.approved")
    assert approved["question"]["asker"] is None


async def test_unmoderated_session_shows_questions_at_once(
    server: Server, database_url: str
) -> None:
    world = await make_world(database_url, moderation_required=False)
    ada = await Live.join(server, world.session_id, world.attendees[0])
    bea = await Live.join(server, world.session_id, world.attendees[1])
    await ada.ok("question.ask", text="Straight through?")
    approved = await bea.event("question.approved")
    assert approved["question"]["asker"] == "Ada"


async def test_chair_answers_and_edits_a_question(server: Server, world: World) -> None:
    ada = await Live.join(server, world.session_id, world.attendees[0])
    chair = await Live.join(server, world.session_id, world.chair)
    question_id = (await ada.ok("question.ask", text="waht is EASI"))["question"]["id"]
    await chair.ok("question.edit", question_id=question_id, text="What is EASI?")
    edited = await chair.event("question.submitted")
    assert edited["question"]["text"] == "waht is EASI"
    assert (await chair.event("question.edited"))["question"]["text"] == "What is EASI?"
    await ada.nothing()
    await chair.ok("question.approve", question_id=question_id)
    assert (await ada.event("question.approved"))["question"]["text"] == "What is EASI?"
    await chair.ok("question.answer", question_id=question_id)
    assert await ada.event("question.answered") == {
        "type": "question.answered",
        "seq": ANY,
        "question_id": question_id,
    }

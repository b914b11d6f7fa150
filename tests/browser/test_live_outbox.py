"""What the page keeps for people when the connection or the room fails them, in real Chromium:
chat typed while the server is down is sent once it is back; a message whose answer was lost is
sent again with the same key and posted once; a busy room is waited out; and a long history is
there a page at a time with "Show older messages"."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, WebSocketRoute, expect
from sqlalchemy import insert

from app.db import make_engine, make_sessionmaker, new_id, utcnow
from chat.models import Message, Question
from tests.browser.conftest import Contexts, DaisServer, ServerProcess
from tests.browser.live_helpers import new_story

pytestmark = pytest.mark.browser

DESKTOP = {"viewport": {"width": 1280, "height": 900}}
LIVE_SOCKET = re.compile(r"/api/sessions/[^/]+/live$")


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[ServerProcess]:
    running = ServerProcess(tmp_path)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def stored_texts(server: DaisServer, session_id: str) -> list[str]:
    """The session's visible chat messages in the database, oldest first."""
    with sqlite3.connect(server.settings.data_dir / "dais.db") as db:
        rows = db.execute(
            "SELECT text FROM live_messages WHERE session_id = ? AND status = 'visible'"
            " ORDER BY created_at, id",
            (session_id,),
        ).fetchall()
    return [text for (text,) in rows]


async def chat_texts(page: Page) -> list[str]:
    return await page.locator('[data-slot="chat"] .message-text').all_inner_texts()


async def open_chat(page: Page) -> None:
    await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    await page.get_by_role("tab", name="Chat").click()


async def test_messages_typed_while_the_server_is_down_are_sent_once_it_is_back(
    browser: Browser, restartable: ServerProcess, artifacts: Path
) -> None:
    """The server stops; the attendee goes on typing. Each message shows as "Sending…" and the
    page says they are kept; when the server is back each is in the chat exactly once, in the
    order typed, for the sender and for another attendee, and stored once."""
    contexts = Contexts(browser, restartable.server())
    story = await new_story(contexts, restartable.server(), "Kept while away")
    robin = await story.attendee("Robin", **DESKTOP)
    sam = await story.attendee("Sam", **DESKTOP)
    for page in (robin, sam):
        await open_chat(page)
    composer = robin.get_by_label("Message")
    await composer.fill("Before the drop")
    await composer.press("Enter")
    await expect(sam.locator('[data-slot="chat"]')).to_contain_text("Before the drop")

    restartable.stop()
    indicator = robin.locator("#connection")
    await expect(indicator).to_have_attribute("data-state", "reconnecting")
    typed = ["First while away", "Second while away", "Third while away"]
    for text in typed:
        await composer.fill(text)
        await composer.press("Enter")
        await expect(composer).to_have_value("")
    outbox = robin.locator('[data-slot="chat-outbox"]')
    await expect(outbox.locator(".message-text")).to_have_text(typed)
    await expect(outbox.locator(".pending-tag")).to_have_text(["Sending…"] * 3)
    sending = robin.locator('[data-slot="chat-sending"]')
    await expect(sending).to_have_attribute("role", "status")
    await expect(sending).to_have_text(
        "Not connected: your 3 messages are kept and sent when the connection is back."
    )
    await expect(robin.locator('[data-slot="chat"]')).not_to_contain_text("away")
    await robin.screenshot(path=artifacts / "attendee-chat-kept-while-away.png")

    restartable.start()
    await expect(indicator).to_have_attribute("data-state", "live", timeout=20_000)
    await expect(outbox).to_be_hidden()
    await expect(sending).to_have_text("")
    everything = ["Before the drop", *typed]
    for page in (robin, sam):
        await expect(page.locator('[data-slot="chat"] .message-text')).to_have_text(everything)
    assert stored_texts(restartable.server(), story.session["id"]) == everything
    assert [line for line in story.console if "pageerror" in line] == []
    for context in browser.contexts:
        await context.close()
    assert contexts.outside == []


class Wire:
    """The attendee's live socket, passed through to the server by Playwright, with two faults
    on call: the answer to one chat message is lost with its connection (the message itself
    reached the server), and one chat message is answered `room.busy` instead of being sent on."""

    def __init__(self) -> None:
        self.lose_answer_to: str | None = None
        self.busy_for: str | None = None
        self.sent: list[dict[str, Any]] = []  # chat.send frames as the page sent them
        self.connections = 0
        self.tasks: set[asyncio.Task[None]] = set()

    async def route(self, context: BrowserContext) -> None:
        await context.route_web_socket(LIVE_SOCKET, self.handle)

    def handle(self, page_side: WebSocketRoute) -> None:
        server_side = page_side.connect_to_server()
        self.connections += 1
        lost: set[str] = set()
        cut = False

        def from_page(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("type") == "chat.send":
                self.sent.append(frame)
                if frame["text"] == self.busy_for:
                    self.busy_for = None
                    busy = {
                        "type": "error",
                        "id": frame["id"],
                        "code": "room.busy",
                        "message": "The room is very busy: this is sent again in a moment.",
                        "retry_after_ms": 3000,
                    }
                    page_side.send(json.dumps(busy))
                    return
                if frame["text"] == self.lose_answer_to:
                    self.lose_answer_to = None
                    lost.add(frame["id"])
            server_side.send(message)

        def from_server(message: str | bytes) -> None:
            nonlocal cut
            if cut:
                return
            if json.loads(message).get("id") in lost:
                # The answer never arrives: the connection drops with it.
                cut = True
                task = asyncio.get_running_loop().create_task(self.drop(page_side, server_side))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
                return
            page_side.send(message)

        page_side.on_message(from_page)
        server_side.on_message(from_server)

    @staticmethod
    async def drop(page_side: WebSocketRoute, server_side: WebSocketRoute) -> None:
        await page_side.close(code=4000, reason="network")
        await server_side.close()


async def test_a_message_whose_answer_was_lost_or_that_met_a_busy_room_is_posted_once(
    contexts: Contexts, dais_server: DaisServer, artifacts: Path
) -> None:
    """A message reaches the server but its answer is lost with the connection: the page
    reconnects by itself and sends it again with the same key, and it is in the chat once. A
    message answered `room.busy` waits, says so ("sending again in N s"), goes again with the
    same key, and is in the chat once."""
    story = await new_story(contexts, dais_server, "Lost answers")
    wire = Wire()
    robin = await story.attendee("Robin", prepare=wire.route, **DESKTOP)
    sam = await story.attendee("Sam", **DESKTOP)
    for page in (robin, sam):
        await open_chat(page)
    composer = robin.get_by_label("Message")
    sam_chat = sam.locator('[data-slot="chat"] .message-text')

    wire.lose_answer_to = "Did this arrive?"
    await composer.fill("Did this arrive?")
    await composer.press("Enter")
    await expect(robin.locator('[data-slot="chat"] .message-text')).to_have_text(
        ["Did this arrive?"]
    )
    await expect(robin.locator("#connection")).to_have_attribute("data-state", "live")
    await expect(robin.locator('[data-slot="chat-outbox"]')).to_be_hidden()
    # Answered: committed before the answer, so stored once or twice by now.
    assert stored_texts(dais_server, story.session["id"]) == ["Did this arrive?"]
    assert wire.connections == 2
    first, again = (f for f in wire.sent if f["text"] == "Did this arrive?")
    assert first["key"] == again["key"] and first["id"] != again["id"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{8,64}", first["key"])

    wire.busy_for = "Busy room"
    await composer.fill("Busy room")
    await composer.press("Enter")
    sending = robin.locator('[data-slot="chat-sending"]')
    await expect(sending).to_have_text(
        re.compile(r"The room is very busy — sending again in [1-4] s")
    )
    await expect(robin.locator('[data-slot="chat-outbox"]')).to_contain_text("Sending…")
    await robin.screenshot(path=artifacts / "attendee-chat-room-busy.png")
    await expect(sending).to_have_text("", timeout=8_000)
    await expect(sam_chat).to_have_text(["Did this arrive?", "Busy room"])
    refused, resent = (f for f in wire.sent if f["text"] == "Busy room")
    assert refused["key"] == resent["key"] and refused["id"] != resent["id"]
    assert stored_texts(dais_server, story.session["id"]) == ["Did this arrive?", "Busy room"]
    await expect(robin.locator('[data-slot="chat"] .message-text')).to_have_text(
        ["Did this arrive?", "Busy room"]
    )
    assert [line for line in story.console if "pageerror" in line] == []


async def seed_history(
    server: DaisServer, session_id: str
) -> tuple[list[str], list[str], list[str]]:
    """200 chat messages a minute apart, 30 approved questions with different votes and 40
    waiting for the chair, written straight to the database: the texts in chat order, the
    approved ones' order (most votes first) and the queue's (oldest first)."""
    engine = make_engine(server.settings.resolved_database_url)
    start = utcnow() - timedelta(hours=4)
    messages = [f"Earlier message {i:03d}" for i in range(1, 201)]
    questions = [f"Earlier question {i:02d}" for i in range(1, 31)]
    waiting = [f"Waiting question {i:02d}: " + "so much to ask " * 4 for i in range(1, 41)]
    try:
        async with make_sessionmaker(engine)() as db, db.begin():
            await db.execute(
                insert(Message),
                [
                    {
                        "id": new_id(),
                        "session_id": session_id,
                        "author_id": new_id(),
                        "author_name": f"Attendee {i % 7}",
                        "author_role": "attendee",
                        "kind": "chat",
                        "text": text,
                        "status": "visible",
                        "created_at": start + timedelta(minutes=i),
                    }
                    for i, text in enumerate(messages)
                ],
            )
            await db.execute(
                insert(Question),
                [
                    {
                        "id": new_id(),
                        "session_id": session_id,
                        "asker_id": new_id(),
                        "asker_name": "Someone",
                        "anonymous": True,
                        "text": text,
                        "status": status,
                        "answered": False,
                        "votes": 100 - i if status == "approved" else 0,
                        "created_at": start + timedelta(minutes=i),
                    }
                    for texts, status in ((questions, "approved"), (waiting, "pending"))
                    for i, text in enumerate(texts)
                ],
            )
    finally:
        await engine.dispose()
    return messages, questions, [text.strip() for text in waiting]


async def test_a_long_history_is_there_a_page_at_a_time(
    contexts: Contexts, dais_server: DaisServer, artifacts: Path
) -> None:
    """With 200 messages in the room the page opens with the latest; "Show older messages"
    (used from the keyboard) brings the rest back a page at a time, focus staying on it, until
    it goes away and focus moves to the oldest message; every message is there once, in order.
    "Show more questions" does the same for the approved questions, most votes first. The
    chair's console pages back through the chat and the moderation queue too, and its own
    composer posts to the chat."""
    story = await new_story(contexts, dais_server, "Long history")
    messages, questions, waiting = await seed_history(dais_server, story.session["id"])
    page = await story.attendee("Robin", **DESKTOP)
    await open_chat(page)
    chat = page.locator('[data-slot="chat"] .message-text')
    await expect(chat.last).to_have_text(messages[-1])
    first_count = await chat.count()
    assert 10 <= first_count < len(messages)
    assert await chat_texts(page) == messages[-first_count:]

    older = page.get_by_role("button", name="Show older messages")
    await older.focus()
    for _ in range(10):
        shown = await chat.count()
        await page.keyboard.press("Enter")
        await expect(chat).not_to_have_count(shown)
        if not await older.is_visible():
            break
        await expect(older).to_be_focused()
        await expect(older).to_have_text("Show older messages")
    await expect(older).to_be_hidden()
    texts = await chat_texts(page)
    assert texts == messages
    oldest = page.locator('[data-slot="chat"] li').first
    await expect(oldest).to_be_focused()
    await expect(oldest).to_contain_text(messages[0])
    await page.screenshot(path=artifacts / "attendee-chat-oldest-message.png")

    # A new message still arrives at the end, and nothing loaded is dropped for it.
    await page.get_by_label("Message").fill("Hello from now")
    await page.get_by_label("Message").press("Enter")
    await expect(chat.last).to_have_text("Hello from now")
    assert await chat_texts(page) == [*messages, "Hello from now"]

    await page.get_by_role("tab", name="Q&A").click()
    listed = page.locator('[data-slot="questions"] .question-text')
    await expect(listed.first).to_have_text(questions[0])
    first_questions = await listed.count()
    assert first_questions < len(questions)
    more = page.get_by_role("button", name="Show more questions")
    await more.click()
    await expect(listed).to_have_count(len(questions))
    assert await listed.all_inner_texts() == questions
    await expect(more).to_be_hidden()

    chair = await story.invited("chair", "Casey Chair", **DESKTOP)
    await expect(chair.locator("#connection")).to_have_attribute("data-state", "live")
    console_chat = chair.locator('[data-slot="chat"] .message-text')
    await expect(console_chat.last).to_have_text("Hello from now")
    older = chair.get_by_role("button", name="Show older messages")
    for _ in range(10):
        if not await older.is_visible():
            break
        shown = await console_chat.count()
        await older.click()
        await expect(console_chat).not_to_have_count(shown)
    await expect(older).to_be_hidden()
    assert await console_chat.all_inner_texts() == [*messages, "Hello from now"]
    await chair.locator('[data-slot="chat"]').scroll_into_view_if_needed()
    await chair.screenshot(path=artifacts / "chair-console-older-messages.png")
    queue = chair.locator('[data-slot="queue"] .question-text')
    await expect(queue.first).to_have_text(waiting[0])
    assert await queue.count() < len(waiting)
    await chair.get_by_role("button", name="Show more waiting questions").click()
    await expect(queue).to_have_count(len(waiting))
    assert await queue.all_inner_texts() == waiting

    await chair.get_by_label("Message to the chat").fill("Thank you for waiting")
    await chair.get_by_label("Message to the chat").press("Enter")
    await page.get_by_role("tab", name="Chat").click()
    await expect(chat.last).to_have_text("Thank you for waiting")
    assert [line for line in story.console if "pageerror" in line] == []

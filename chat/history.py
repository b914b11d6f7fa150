"""Older history on demand: the join result holds the latest of each part of the room, and the
page asks for more a page at a time (`room.history`), when someone scrolls back or opens the
rest of the questions."""

from __future__ import annotations

from typing import Any

from chat.guard import LiveRouter, ReadContext
from chat.protocol import RoomHistory
from chat.room_cache import RoomCache
from chat.service import room_history

live = LiveRouter()


@live.read(RoomHistory, rate="history")
async def history(ctx: ReadContext, action: RoomHistory) -> dict[str, Any]:
    cache: RoomCache = ctx.gateway.cache
    facts = await cache.facts(ctx.db, ctx.session_id)
    page = await room_history(
        ctx.db,
        session_id=ctx.session_id,
        part=action.part,
        cursor=action.cursor,
        person_id=ctx.person_id,
        staff=ctx.conn.staff,
        reveal=facts.session.chair_sees_asker_names,
    )
    return {
        "items": [item.model_dump(mode="json") for item in page.items],
        "cursor": page.cursor,
        "voted": page.voted,
    }

"""The reference section of docs/protocol.md, rendered from the protocol's models and the
handlers registered for them: `python -m chat.reference` prints it.

Apart from `chat.protocol` because it reads the handlers: the protocol stays a leaf that every
live module may import, and this module, which imports the gateway's handlers, is imported by none.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from chat.gateway import live_handlers
from chat.protocol import (
    ACTIONS,
    EVENTS,
    Error,
    JoinResult,
    MessageView,
    Ok,
    PollView,
    QuestionView,
    RoomState,
    StagePresenter,
    StageView,
    You,
)
from chat.roles import CHAIR_ROLES, EVERYONE, PRESENTER_ROLES, STAFF_ROLES

# How the reference names each role set a permission is made of (`chat.guard.Permission`).
WHO_MAY = {
    EVERYONE: "anyone in the room",
    PRESENTER_ROLES: "presenters",
    STAFF_ROLES: "moderators, chair, organiser",
    CHAIR_ROLES: "chair, organiser",
}


def _type_of(model: type[BaseModel]) -> str:
    field = model.model_fields["type"]
    return str(field.default or field.annotation.__args__[0])  # type: ignore[union-attr]


def _fields(model: type[BaseModel], *, keyed: bool = False) -> str:
    """`keyed`: a room action, which may carry an idempotency `key` (see `Action`)."""
    names = [
        f"`{name}`" + ("" if info.is_required() else "?")
        for name, info in model.model_fields.items()
        if name not in {"type", "id", "seq"} and (keyed or name != "key")
    ]
    return ", ".join(names) or "none"


def _keyed(type_: str, handlers: dict[str, Any]) -> bool:
    handler = handlers.get(type_)
    return handler is not None and handler.ordered and not (handler.signal or handler.read)


def _summary(model: type[BaseModel]) -> str:
    doc = model.__doc__ or ""
    return " ".join(doc.split()) if model.__doc__ and model.__doc__ != BaseModel.__doc__ else ""


def _who(type_: str, handlers: dict[str, Any]) -> str:
    if type_ == "room.join":
        return "anyone with a token for the event"
    handler = handlers.get(type_)
    if handler is None:
        return "(no handler)"
    who = WHO_MAY.get(handler.permission, "?")
    return who + (f"; rate limit `{handler.rate}`" if handler.rate else "")


def render_reference() -> str:
    """The generated part of docs/protocol.md."""
    handlers = live_handlers().handlers
    lines = ["### Actions (client to server)", ""]
    lines += ["| type | fields | who may | notes |", "| --- | --- | --- | --- |"]
    lines += [
        f"| `{t}` | {_fields(m, keyed=_keyed(t, handlers))} | {_who(t, handlers)} | {_summary(m)} |"
        for t, m in ACTIONS.items()
    ]
    lines += ["", "### Replies", "", "| type | fields | notes |", "| --- | --- | --- |"]
    lines += [f"| `{_type_of(m)}` | `id`, {_fields(m)} | {_summary(m)} |" for m in (Ok, Error)]
    lines += ["", "### Pushed events", "", "| type | fields | notes |", "| --- | --- | --- |"]
    lines += [f"| `{_type_of(m)}` | {_fields(m)} | {_summary(m)} |" for m in EVENTS]
    views = (
        MessageView,
        QuestionView,
        PollView,
        RoomState,
        StageView,
        StagePresenter,
        You,
        JoinResult,
    )
    lines += ["", "### Shapes", "", "| name | fields | notes |", "| --- | --- | --- |"]
    lines += [f"| {m.__name__} | {_fields(m)} | {_summary(m)} |" for m in views]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_reference(), end="")

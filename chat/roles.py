"""Who is who in a room, spelled once: the roles, the sets of them that permissions name, and the
audiences a room event is addressed to. A leaf inside `chat`: it imports nothing of Dais."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """What a person is in one room. Organisers are event-wide chairs."""

    attendee = "attendee"
    speaker = "speaker"
    moderator = "moderator"
    chair = "chair"
    organiser = "organiser"


# The role sets a permission names (`chat.guard.Permission`), a socket's audiences are derived
# from (`audiences_of`) and the protocol reference describes (`chat.reference`).
EVERYONE = frozenset(Role)
STAFF_ROLES = frozenset({Role.moderator, Role.chair, Role.organiser})
PRESENTER_ROLES = frozenset({Role.speaker, *STAFF_ROLES})
CHAIR_ROLES = frozenset({Role.chair, Role.organiser})
# Who may send media that others see and hear. Moderators watch the green room but do not publish.
PUBLISHER_ROLES = frozenset({Role.speaker, Role.chair, Role.organiser})

# Audiences of a room event (stored space-separated in `RoomEvent.audience`, carried by
# `Envelope.audience`): everyone, the staff, the presenters, or one person's sockets.
ALL = "all"
STAFF = "staff"
PRESENTERS = "presenters"
PERSON = "person:"


def person(person_id: str) -> str:
    """The audience of one person's sockets."""
    return f"{PERSON}{person_id}"


def audiences_of(person_id: str, role: Role) -> frozenset[str]:
    """Every audience a socket of `person_id` in `role` receives."""
    audiences = {ALL, person(person_id)}
    if role in STAFF_ROLES:
        audiences.add(STAFF)
    if role in PRESENTER_ROLES:
        audiences.add(PRESENTERS)
    return frozenset(audiences)

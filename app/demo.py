"""The demo event: Westminster Insight's Tackling Stalking Digital Conference (shared/seed).

Loading it twice changes nothing. Invite links for its chair and speakers are re-used while
unspent, so the links printed at each start keep working until someone opens them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.agenda.models import Session, SessionKind
from app.auth.service import hash_password, sign
from app.db import utcnow
from app.event.models import Event
from app.invites.models import Invite
from app.invites.service import create_invite, invite_url
from app.people.models import Organiser, Participant, ParticipantKind, Role, SessionRole
from app.settings import Settings

SLUG = "tackling-stalking"
DAY = date(2027, 3, 4)
ZONE = "Europe/London"
ORGANISER_EMAIL = "events@westminster-insight.example"

DESCRIPTION = (
    "An estimated 2.5 million people in the UK are stalked each year. With long-lasting impacts "
    "on the victim's socioemotional health, if not addressed quickly, this devastating crime can "
    "also lead to more serious violence including homicide. It takes on average 100 incidents "
    "before victims report it to police, and just 5% of the stalking cases reported in England "
    "and Wales result in a charge by the CPS.\n\n"
    "Chaired by Saskia Garner, Head of Policy and Campaigns at the Suzy Lamplugh Trust, expert "
    "speakers discuss collaborative working across the police, criminal justice, probation, "
    "health, and victim advocates services, to improve prevention, victim support and "
    "conviction rates for stalking in all its forms."
)

CHAIR = ("Saskia Garner", "Head of Policy and Campaigns, Suzy Lamplugh Trust")
SPEAKERS = {
    "phillips": ("Jess Phillips MP", "Shadow Minister for Domestic Violence and Safeguarding"),
    "wheatly": ("Dr Rachel Wheatly", "Co-Developer, Early Awareness Stalking Intervention (EASI)"),
    "underwood": ("Dr Alan Underwood", "Clinical Psychologist, Stalking Threat Assessment Centre"),
    "ruggles": ("Professor Clive Ruggles", "Co-Founder and Chair, Alice Ruggles Trust"),
    "short": ("Dr Emma Short", "Co-Founder, National Centre for Cyberstalking Research"),
}
VIOLENCE_NOTE = "This session discusses stalking, serious violence and homicide."


@dataclass(frozen=True)
class DemoSession:
    start: str
    end: str
    kind: SessionKind
    title: str
    description: str
    speakers: tuple[str, ...]
    content_note: str | None = None


AGENDA = (
    DemoSession(
        "09:30",
        "10:15",
        SessionKind.keynote,
        "The latest updates in the policy and funding for stalking interventions",
        "Jess Phillips MP on the latest policy and funding for stalking interventions.",
        ("phillips",),
    ),
    DemoSession(
        "10:15",
        "11:00",
        SessionKind.talk,
        "Legally defining stalking and harassment",
        "Understanding the legal definitions of stalking and harassment.",
        ("phillips",),
    ),
    DemoSession(
        "11:15",
        "12:00",
        SessionKind.panel,
        "Understanding the psychology behind stalking: addressing common myths and misconceptions",
        "The psychology of stalking and the different stalker types, addressing common myths "
        "and misconceptions, and using this to support early intervention and prevention.",
        ("wheatly", "underwood"),
    ),
    DemoSession(
        "12:00",
        "12:45",
        SessionKind.panel,
        "Multi-agency working to improve early intervention and reduce escalation",
        "How to intervene early to prevent perpetrator behaviour from escalating.",
        ("wheatly", "underwood"),
    ),
    DemoSession(
        "12:45",
        "13:30",
        SessionKind.break_,
        "Lunch break",
        "",
        (),
    ),
    DemoSession(
        "13:30",
        "14:15",
        SessionKind.talk,
        "Improving support for the victims of all forms of stalking: bridging the gap between "
        "domestic abuse and stalking",
        "Lived experience and specialist victims' services: encouraging victims to come forward "
        "and supporting them through the different stages of their case.",
        ("ruggles",),
        "This session includes lived experience of stalking that ended in homicide.",
    ),
    DemoSession(
        "14:15",
        "15:00",
        SessionKind.panel,
        "Bringing perpetrators to justice: police and CPS approaches to stalking and the use of SPOs",
        "Best practice in policing strategies: equipping all teams, first responders included, "
        "to give an appropriate and safe response; working with the CPS; Stalking Protection "
        "Orders (SPOs) and appropriate sentencing.",
        (),
        VIOLENCE_NOTE,
    ),
    DemoSession(
        "15:00",
        "15:45",
        SessionKind.talk,
        "Spotlighting how to tackle cyberstalking",
        "Cyberstalking as a priority offence in the Online Safety Bill: disrupting perpetrators "
        "and supporting victims.",
        ("short",),
    ),
)


def demo_password(settings: Settings) -> str:
    return settings.demo_password or "demo-" + sign(settings.signing_key, "demo-organiser")[:12]


def _at(clock: str) -> datetime:
    hour, minute = map(int, clock.split(":"))
    return datetime.combine(DAY, datetime.min.time(), ZoneInfo(ZONE)).replace(
        hour=hour, minute=minute
    )


async def load_demo(db: AsyncSession, settings: Settings) -> Event:
    """Create the demo organiser, event, agenda and presenters, unless they exist already."""
    existing = await db.scalar(select(Event).where(Event.slug == SLUG))
    if existing is not None:
        return existing
    organiser = await db.scalar(select(Organiser).where(Organiser.email == ORGANISER_EMAIL))
    if organiser is None:
        organiser = Organiser(
            email=ORGANISER_EMAIL,
            name="Westminster Insight",
            password_hash=hash_password(demo_password(settings)),
        )
        db.add(organiser)
        await db.flush()
    event = Event(
        slug=SLUG,
        organiser_id=organiser.id,
        title="Tackling Stalking Digital Conference",
        description=DESCRIPTION,
        starts_on=DAY,
        ends_on=DAY,
        timezone=ZONE,
        published=True,
        word_filter=[],
    )
    db.add(event)
    await db.flush()
    people = {
        key: Participant(
            event_id=event.id,
            kind=ParticipantKind.invited.value,
            display_name=name,
            affiliation=affiliation,
        )
        for key, (name, affiliation) in {"chair": CHAIR, **SPEAKERS}.items()
    }
    db.add_all(people.values())
    await db.flush()
    for item in AGENDA:
        session = Session(
            event_id=event.id,
            title=item.title,
            description=item.description,
            kind=item.kind.value,
            starts_at=_at(item.start),
            ends_at=_at(item.end),
            content_note=item.content_note,
        )
        db.add(session)
        await db.flush()
        if item.kind == SessionKind.break_:
            continue
        db.add(SessionRole(session_id=session.id, participant_id=people["chair"].id, role="chair"))
        for position, key in enumerate(item.speakers):
            db.add(
                SessionRole(
                    session_id=session.id,
                    participant_id=people[key].id,
                    role=Role.speaker.value,
                    position=position,
                )
            )
    await db.commit()
    return event


@dataclass(frozen=True)
class DemoLink:
    label: str
    url: str


async def demo_invite_links(db: AsyncSession, settings: Settings, event: Event) -> list[DemoLink]:
    """One usable invite link for the chair and each speaker: an unspent one, else a new one."""
    rows = await db.execute(
        select(Participant, SessionRole.session_id, SessionRole.role)
        .join(SessionRole, SessionRole.participant_id == Participant.id)
        .join(Session, Session.id == SessionRole.session_id)
        .where(Participant.event_id == event.id, Participant.revoked_at.is_(None))
        .order_by(Session.starts_at)
    )
    first_role: dict[str, tuple[Participant, str, str]] = {}
    for person, session_id, role in rows:
        first_role.setdefault(person.id, (person, session_id, role))
    links = []
    now = utcnow()
    for person, session_id, role in sorted(
        first_role.values(), key=lambda r: (r[2] != Role.chair, r[0].display_name)
    ):
        invite = await db.scalar(
            select(Invite).where(
                Invite.participant_id == person.id,
                Invite.used_at.is_(None),
                Invite.revoked_at.is_(None),
                Invite.expires_at > now,
            )
        )
        if invite is None:
            invite = await create_invite(
                db,
                participant=person,
                session_id=session_id,
                role=Role(role),
                days=settings.invite_days,
            )
        url = invite_url(settings.base_url, settings.signing_key, invite)
        links.append(DemoLink(f"{role.capitalize()} {person.display_name}", url))
    return links

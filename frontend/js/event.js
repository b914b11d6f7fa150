// The attendee's event page: what, when (in the viewer's zone), who, and registration.

import { api, whoAmI } from "./api.js";
import { sessionItem, sessionUrl } from "./agenda.js";
import { h, replace, showView } from "./dom.js";
import { installExit } from "./exit.js";
import { personAt, registrationForm } from "./register.js";
import { dateOnly, day, nowAndNext, span, viewerZone, zoneName } from "./time.js";

installExit();

const root = document.getElementById("event");
const slug = decodeURIComponent(location.pathname.split("/")[2]);

try {
  const [event, me] = await Promise.all([api(`/api/events/${encodeURIComponent(slug)}/agenda`), whoAmI()]);
  render(event, me);
  // Now / next move on by themselves.
  setInterval(() => renderNowNext(event), 60_000);
} catch (error) {
  replace(root, h("p", { class: "form-error", role: "alert" }, error.message));
}
root.removeAttribute("aria-busy");

function render(event, me) {
  document.title = `${event.title} · Dais`;
  const zone = viewerZone();
  const sessions = [...event.sessions].sort((a, b) => Date.parse(a.starts_at) - Date.parse(b.starts_at));
  const firstIso = sessions[0] ? sessions[0].starts_at : `${event.starts_on}T12:00:00Z`;
  const zoneNote = zone === event.timezone
    ? `Times are in ${zoneName(zone, firstIso)} (${zone}), the event's own time zone.`
    : `Times are in your time zone, ${zoneName(zone, firstIso)} (${zone}). The event runs on ${zoneName(event.timezone, firstIso)} (${event.timezone}).`;
  replace(root,
    h("div", { class: "event-head" },
      h("p", { class: "eyebrow" }, event.starts_on === event.ends_on
        ? dateOnly(event.starts_on) : `${dateOnly(event.starts_on)} to ${dateOnly(event.ends_on)}`),
      h("h1", {}, event.title),
      event.description.split(/\n{2,}/).map((para) => h("p", { class: "description" }, para)),
    ),
    h("div", { class: "event-grid" },
      h("div", { class: "event-main" },
        h("section", { class: "now-next card", "aria-labelledby": "now-next-heading", id: "now-next" }),
        h("section", { "aria-labelledby": "agenda-heading" },
          h("div", { class: "agenda-head" },
            h("h2", { id: "agenda-heading" }, "Agenda"),
            h("a", { class: "button secondary", href: `/api/events/${event.id}/agenda.ics`, download: `${event.slug}.ics` },
              "Add to calendar")),
          h("p", { class: "hint zone-note", id: "zone-note" }, zoneNote),
          groupByDay(sessions, zone).map(([label, items]) => [
            h("h3", { class: "agenda-day" }, label),
            h("ol", { class: "agenda" }, items.map((s) => sessionItem(event, s))),
          ]),
        ),
      ),
      h("aside", { class: "event-side" },
        h("section", { class: "card", id: "registration", "aria-labelledby": "registration-heading" })),
    ),
  );
  renderNowNext(event);
  renderRegistration(event, personAt(me, event));
}

function groupByDay(sessions, zone) {
  const groups = new Map();
  for (const session of sessions) {
    const label = day(session.starts_at, zone);
    if (!groups.has(label)) groups.set(label, []);
    groups.get(label).push(session);
  }
  return [...groups];
}

function renderNowNext(event) {
  const box = document.getElementById("now-next");
  const { now, next } = nowAndNext(event.sessions);
  const line = (label, session) => h("p", { class: "now-next-line" },
    h("span", { class: `badge badge-${label.toLowerCase()}` }, label),
    h("a", { href: sessionUrl(event, session) }, session.title),
    h("span", { class: "muted" }, ` ${label === "Next" ? `${day(session.starts_at)}, ` : ""}${span(session.starts_at, session.ends_at)}`));
  replace(box,
    h("h2", { id: "now-next-heading", class: "small-heading" }, "Now and next"),
    now ? line("Now", now) : null,
    next ? line("Next", next) : null,
    !now && !next ? h("p", { class: "muted" }, "This event has finished.") : null);
}

function renderRegistration(event, person) {
  const box = document.getElementById("registration");
  if (person) {
    replace(box,
      h("h2", { id: "registration-heading" }, "You are registered"),
      h("p", {}, "You take part as ", h("strong", {}, person.display_name), "."),
      h("p", { class: "hint" }, "Open a session from the agenda to watch, chat and ask questions."));
    return;
  }
  replace(box,
    h("h2", { id: "registration-heading" }, "Register"),
    h("p", {}, "You need only a display name to take part."),
    registrationForm(event, (registered) => {
      renderRegistration(event, registered);
      showView(`You are registered as ${registered.display_name}`);
    }));
}

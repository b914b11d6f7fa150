// How the agenda reads to an attendee: session times in their zone, presenters, now and next.

import { h } from "./dom.js";
import { span } from "./time.js";

export const KIND_LABEL = { keynote: "Keynote", panel: "Panel", talk: "Talk", break: "Break" };

export const sessionUrl = (event, session) =>
  `/e/${encodeURIComponent(event.slug)}/sessions/${encodeURIComponent(session.id)}`;

export function presenters(session) {
  const people = [];
  if (session.chair) people.push(h("span", { class: "person" }, "Chair: ", personLabel(session.chair)));
  for (const speaker of session.speakers || []) people.push(h("span", { class: "person" }, personLabel(speaker)));
  return people;
}

function personLabel(person) {
  return [h("strong", {}, person.display_name), person.affiliation ? h("span", { class: "affiliation" }, `, ${person.affiliation}`) : null];
}

export function sessionItem(event, session, { badge } = {}) {
  return h("li", { class: `agenda-item kind-${session.kind}`, id: `s-${session.id}` },
    h("p", { class: "agenda-time" },
      h("time", { datetime: session.starts_at }, span(session.starts_at, session.ends_at))),
    h("div", { class: "agenda-body" },
      h("p", { class: "agenda-kind" }, KIND_LABEL[session.kind] || session.kind,
        badge ? h("span", { class: `badge badge-${badge.toLowerCase()}` }, badge) : null),
      h("h3", {}, session.kind === "break" ? session.title : h("a", { href: sessionUrl(event, session) }, session.title)),
      session.description ? h("p", {}, session.description) : null,
      h("p", { class: "presenters" }, presenters(session)),
      session.content_note ? h("p", { class: "note-flag" }, "Content note: ", session.content_note) : null,
    ));
}

// The session page: one URL, three layouts. Attendees get the content note, then the room; a chair
// or moderator gets the chair console; a speaker gets the green room (roles from /api/auth/me).

import { api, whoAmI } from "./api.js";
import { presenters } from "./agenda.js";
import { mountAttendeeRoom } from "./attendee-room.js";
import { mountChairConsole } from "./chair-console.js";
import { fromTemplate, h, replace, showView } from "./dom.js";
import { installExit, onExit } from "./exit.js";
import { mountGreenRoom } from "./green-room.js";
import { LiveSession, STATE } from "./live.js";
import { personAt, registrationForm } from "./register.js";
import { RoomState } from "./room.js";
import { day, span } from "./time.js";

installExit();

const root = document.getElementById("session");
const [, , slug, , sessionId] = location.pathname.split("/").map(decodeURIComponent);

// What a screen reader hears as the page shows each role's view (see showView in dom.js).
const VIEW_NAME = {
  attendee: "Session room",
  chair: "Chairing",
  organiser: "Chairing",
  moderator: "Moderating",
  speaker: "Green room",
};

const STATE_TEXT = {
  [STATE.connecting]: "Connecting…",
  [STATE.live]: "Live",
  [STATE.reconnecting]: "Reconnecting…",
  [STATE.closed]: "Not connected",
};

try {
  const [event, me] = await Promise.all([api(`/api/events/${encodeURIComponent(slug)}/agenda`), whoAmI()]);
  const session = event.sessions.find((s) => s.id === sessionId);
  document.title = `${session.title} · ${event.title} · Dais`;
  const back = document.getElementById("back");
  back.href = `/e/${encodeURIComponent(event.slug)}`;
  back.textContent = `${event.title}: agenda`;
  await start(event, session, me);
} catch (error) {
  replace(root, h("p", { class: "form-error", role: "alert" }, error.message));
}
root.removeAttribute("aria-busy");

async function start(event, session, me) {
  // An organiser is an event-wide chair: the console, not the attendee room.
  const role = (me && me.roles && me.roles[session.id]) || (me && me.organiser ? "organiser" : "attendee");
  const person = personAt(me, event);
  document.body.dataset.role = role;
  if (role === "attendee" && !person) {
    const { fragment, slots } = fromTemplate("tpl-register");
    slots.title.textContent = session.title;
    slots.form.append(registrationForm(event, async () => start(event, session, await whoAmI())));
    replace(root, fragment);
    return;
  }
  const seenKey = `dais:note-seen:${session.id}`;
  if (role === "attendee" && session.content_note && !sessionStorage.getItem(seenKey)) {
    const { fragment, slots } = fromTemplate("tpl-note");
    slots.title.textContent = session.title;
    slots.note.textContent = session.content_note;
    slots.agenda.href = `/e/${encodeURIComponent(event.slug)}`;
    fragment.querySelector('[data-action="continue"]').addEventListener("click", () => {
      sessionStorage.setItem(seenKey, "1");
      join(event, session, person, role);
    });
    replace(root, fragment);
    showView(`${session.title}: content note before you join`);
    return;
  }
  join(event, session, person, role);
}

function join(event, session, person, role) {
  const live = new LiveSession(session.id);
  const room = new RoomState(live, session.id);
  const template = { attendee: "tpl-attendee", chair: "tpl-chair", organiser: "tpl-chair", moderator: "tpl-chair", speaker: "tpl-speaker" }[role];
  const { fragment, slots } = fromTemplate(template);
  slots.title.textContent = session.title;
  if (slots.when) slots.when.textContent = `${day(session.starts_at)}, ${span(session.starts_at, session.ends_at)}`;
  if (slots.presenters) replace(slots.presenters, presenters(session));
  const offline = fromTemplate("tpl-offline");
  slots.offline.append(offline.fragment);
  const context = { event, session, person, role, live, room, slots };
  const mount = { attendee: mountAttendeeRoom, chair: mountChairConsole, organiser: mountChairConsole, moderator: mountChairConsole, speaker: mountGreenRoom }[role];
  const unmount = mount(context);
  replace(root, fragment);
  showView(`${VIEW_NAME[role]}: ${session.title}`);
  showConnection(live, offline.slots.offline);
  onExit(() => { live.stop(); if (unmount) unmount(); });
  window.addEventListener("pagehide", () => live.stop());
  live.start();
}

// The connection indicator always says what is true, and live-only controls follow it.
function showConnection(live, offlineNote) {
  const indicator = document.getElementById("connection");
  const text = indicator.querySelector(".connection-text");
  const update = (state) => {
    indicator.dataset.state = state;
    text.textContent = state === STATE.closed && live.reason ? live.reason : STATE_TEXT[state];
    offlineNote.hidden = state === STATE.live;
    if (state === STATE.closed && live.reason) offlineNote.textContent = live.reason;
    else if (state === STATE.reconnecting && live.everJoined) offlineNote.textContent = "The connection dropped. Dais is reconnecting by itself; nothing you sent is lost, and chat messages you write now are sent when it is back.";
    else if (state === STATE.reconnecting) offlineNote.textContent = "The connection dropped. Dais is reconnecting by itself; nothing you sent is lost.";
    else if (state === STATE.connecting) offlineNote.textContent = "Connecting to the session…";
    for (const fieldset of document.querySelectorAll(".needs-live")) fieldset.disabled = state !== STATE.live;
    // What these send is kept while the connection is down (live.js's outbox), once the room has
    // been joined: a refused join would refuse it anyway.
    const keeps = state === STATE.live || (state === STATE.reconnecting && live.everJoined);
    for (const fieldset of document.querySelectorAll(".needs-joined")) fieldset.disabled = !keeps;
  };
  live.addEventListener("state", (event) => update(event.detail));
  update(live.state);
}

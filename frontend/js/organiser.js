// The organiser console: sign in, events and their privacy settings, the agenda editor, invite
// links, people with revoke, the registration count, the audit log, recordings and attendance.

import { api, apiPage, showFormError, whoAmI } from "./api.js";
import { KIND_LABEL } from "./agenda.js";
import { announce, copyButton, fromTemplate, h, replace, showView } from "./dom.js";
import { installExit } from "./exit.js";
import { clock, day, isoToWall, span, wallToIso } from "./time.js";

const root = document.getElementById("organiser");
const ROLE_LABEL = { chair: "Chair", speaker: "Speaker", moderator: "Moderator" };

let state = { events: [], event: null, slots: null };


function showSignIn() {
  const { fragment, slots } = fromTemplate("tpl-sign-in");
  slots.form.addEventListener("submit", async (submit) => {
    submit.preventDefault();
    const form = slots.form;
    try {
      const organiser = await api("/api/auth/sign-in", {
        method: "POST",
        body: { email: form.elements.email.value.trim(), password: form.elements.password.value },
      });
      await showConsole(organiser);
    } catch (error) {
      showFormError(form, error.status === 401 ? { message: "That email and password do not match an organiser account." } : error);
    }
  });
  replace(root, fragment);
  document.getElementById("who").replaceChildren();
}

async function showConsole(organiser) {
  replace(document.getElementById("who"),
    h("span", {}, `Signed in as ${organiser.name}`),
    h("button", { type: "button", class: "small secondary", onclick: signOut }, "Sign out"));
  const { fragment, slots } = fromTemplate("tpl-console");
  state.slots = slots;
  replace(root, fragment);
  showView(`Organiser console, signed in as ${organiser.name}`);
  slots["event-choice"].addEventListener("change", () => selectEvent(slots["event-choice"].value));
  root.querySelector('[data-action="new-event"]').addEventListener("click", () => {
    state.event = null;
    slots["event-choice"].value = "";
    renderEventPanels();
    slots["event-form"].querySelector("input").focus();
  });
  await loadEvents();
}

async function signOut() {
  await api("/api/auth/sign-out", { method: "POST" }).catch(() => {});
  showSignIn();
}

async function loadEvents(selectId) {
  state.events = await api("/api/events/mine");
  const choice = state.slots["event-choice"];
  replace(choice,
    h("option", { value: "" }, state.events.length ? "Choose an event" : "No events yet"),
    state.events.map((e) => h("option", { value: e.id }, `${e.title}${e.published ? "" : " (draft)"}`)));
  const id = selectId || (state.event && state.event.id) || (state.events[0] && state.events[0].id);
  if (id) await selectEvent(id);
  else renderEventPanels();
}

async function selectEvent(id) {
  if (!id) {
    state.event = null;
    renderEventPanels();
    return;
  }
  state.event = await api(`/api/events/${id}/settings`);
  state.slots["event-choice"].value = id;
  renderEventPanels();
}

function renderEventPanels() {
  const { slots, event } = state;
  replace(slots["event-form"], eventForm(event));
  for (const panel of root.querySelectorAll("[data-panel]")) {
    if (panel.dataset.panel !== "event") panel.hidden = !event;
  }
  if (!event) return;
  slots["public-link"].href = `/e/${encodeURIComponent(event.slug)}`;
  replace(slots["session-form"], sessionForm(event, null));
  loadRegistrations(event);
  loadAgenda(event);
  loadPeople(event);
  loadReports(event);
}

// Form building
let fieldCount = 0;
function field(label, input, hint) {
  const id = input.id || `f${++fieldCount}`;
  input.id = id;
  const hintEl = hint ? h("span", { class: "hint", id: `${id}-hint` }, hint) : null;
  if (hintEl) input.setAttribute("aria-describedby", hintEl.id);
  if (input.type === "checkbox") return h("div", { class: "check-row" }, h("label", { class: "check", for: id }, input, ` ${label}`), hintEl);
  return h("div", { class: "field" }, h("label", { for: id }, label), hintEl, input);
}

let zoneList;
function zoneOptions() {
  if (!zoneList) {
    const zones = Intl.supportedValuesOf ? Intl.supportedValuesOf("timeZone") : ["Europe/London"];
    zoneList = h("datalist", { id: "zones" }, zones.map((z) => h("option", { value: z })));
    document.body.append(zoneList);
  }
  return "zones";
}

function eventForm(event) {
  const v = event || { title: "", description: "", starts_on: "", ends_on: "", timezone: "Europe/London", published: false,
    organiser_sees_attendee_names: false, attendees_see_each_other: false, replays_enabled: false, retention_days: 30, word_filter: [] };
  const form = h("form", { class: "stack", novalidate: true },
    field("Title", h("input", { name: "title", required: true, maxlength: "200", value: v.title })),
    event ? null : field("Web address", h("input", { name: "slug", pattern: "[a-z0-9][a-z0-9-]{1,78}[a-z0-9]", placeholder: "made from the title" }), "Optional. Lower-case letters, digits and dashes."),
    field("Description", h("textarea", { name: "description", rows: "5", maxlength: "20000" }, v.description)),
    h("div", { class: "field-row" },
      field("First day", h("input", { name: "starts_on", type: "date", required: true, value: v.starts_on })),
      field("Last day", h("input", { name: "ends_on", type: "date", required: true, value: v.ends_on }))),
    field("Time zone", h("input", { name: "timezone", list: zoneOptions(), required: true, value: v.timezone }), "Agenda times are entered in this zone; attendees see them in their own."),
    field("Published", h("input", { name: "published", type: "checkbox", checked: v.published }), "Published events are listed and open to registration."),
    h("fieldset", { class: "privacy" },
      h("legend", {}, "Privacy"),
      field("I can see attendees' display names", h("input", { name: "organiser_sees_attendee_names", type: "checkbox", checked: v.organiser_sees_attendee_names }), "Off: you see only how many registered."),
      field("Attendees can see who else is attending", h("input", { name: "attendees_see_each_other", type: "checkbox", checked: v.attendees_see_each_other }), "Off: attendees see only how many people are watching."),
      field("Replays of recordings for attendees", h("input", { name: "replays_enabled", type: "checkbox", checked: v.replays_enabled })),
      field("Keep chat and Q&A for (days)", h("input", { name: "retention_days", type: "number", min: "1", max: "3650", required: true, value: String(v.retention_days) }), "Then they are deleted."),
      field("Words held for review", h("textarea", { name: "word_filter", rows: "3" }, (v.word_filter || []).join("\n")), "One a line. Chat messages containing them wait for a moderator.")),
    h("button", { type: "submit" }, event ? "Save event" : "Create event"));
  form.addEventListener("submit", async (submit) => {
    submit.preventDefault();
    const e = form.elements;
    const body = {
      title: e.title.value.trim(),
      description: e.description.value,
      starts_on: e.starts_on.value,
      ends_on: e.ends_on.value,
      timezone: e.timezone.value.trim(),
      published: e.published.checked,
      organiser_sees_attendee_names: e.organiser_sees_attendee_names.checked,
      attendees_see_each_other: e.attendees_see_each_other.checked,
      replays_enabled: e.replays_enabled.checked,
      retention_days: Number(e.retention_days.value),
      word_filter: e.word_filter.value.split("\n").map((w) => w.trim()).filter(Boolean),
    };
    if (!event && e.slug.value.trim()) body.slug = e.slug.value.trim();
    try {
      const saved = await api(event ? `/api/events/${event.id}` : "/api/events", { method: event ? "PATCH" : "POST", body });
      showFormError(form, null);
      announce(event ? "Event saved." : "Event created.");
      await loadEvents(saved.id);
    } catch (error) {
      showFormError(form, error);
    }
  });
  return form;
}

async function loadRegistrations(event) {
  const { slots } = state;
  try {
    const registrations = await api(`/api/events/${event.id}/registrations`);
    slots.registrations.textContent = String(registrations.count);
    slots.registrations.setAttribute("aria-label", `${registrations.count} attendees registered`);
    replace(slots["registration-names"], registrations.display_names
      ? h("ul", { class: "names" }, registrations.display_names.map((n) => h("li", {}, n)))
      : h("p", { class: "hint" }, "Names are hidden by this event's privacy settings."));
  } catch (error) {
    slots.registrations.textContent = "–";
    replace(slots["registration-names"], h("p", { class: "form-error" }, error.message));
  }
}

async function loadAgenda(event) {
  const list = state.slots.sessions;
  const agenda = await api(`/api/events/${event.id}/agenda`);
  const sessions = agenda.sessions.sort((a, b) => Date.parse(a.starts_at) - Date.parse(b.starts_at));
  if (!sessions.length) {
    replace(list, h("li", { class: "muted" }, "No sessions yet."));
    return;
  }
  // Keep any open edit or invite panel (and a freshly made link) across the refresh.
  const open = new Map([...list.querySelectorAll(".org-session-extra")].map((el) => [el.dataset.session, el]));
  replace(list, sessions.map((session) => {
    const item = h("li", { class: "org-session", id: `session-${session.id}` });
    const extra = open.get(session.id) || h("div", { class: "org-session-extra", dataset: { session: session.id } });
    replace(item,
      h("div", { class: "org-session-head" },
        h("p", { class: "agenda-time" }, span(session.starts_at, session.ends_at, event.timezone)),
        h("div", {},
          h("h3", {}, session.title),
          h("p", { class: "muted small" }, KIND_LABEL[session.kind], session.chair ? ` · Chair: ${session.chair.display_name}` : "",
            session.speakers.length ? ` · ${session.speakers.map((s) => s.display_name).join(", ")}` : "",
            session.content_note ? " · has a content note" : "")),
        h("div", { class: "actions" },
          h("button", { type: "button", class: "small secondary", onclick: () => replace(extra, sessionForm(event, session)) }, "Edit"),
          h("button", { type: "button", class: "small", onclick: () => { replace(extra, inviteForm(event, session)); extra.querySelector("select").focus(); } }, "Invite"),
          h("button", { type: "button", class: "small danger", onclick: () => deleteSession(event, session) }, "Delete"))),
      extra);
    return item;
  }));
}

async function deleteSession(event, session) {
  if (!confirm(`Delete “${session.title}”? Its invites stop working.`)) return;
  try {
    await api(`/api/sessions/${session.id}`, { method: "DELETE" });
    announce("Session deleted.");
    loadAgenda(event);
  } catch (error) {
    alert(error.message);
  }
}

function sessionForm(event, session) {
  const v = session || { title: "", description: "", kind: "talk", starts_at: null, ends_at: null, content_note: "",
    moderation_required: true, anonymous_questions_allowed: true, chair_sees_asker_names: false };
  const wall = (iso, fallback) => (iso ? isoToWall(iso, event.timezone) : `${event.starts_on}T${fallback}`);
  const form = h("form", { class: "stack session-form", novalidate: true },
    field("Title", h("input", { name: "title", required: true, maxlength: "200", value: v.title })),
    field("Kind", h("select", { name: "kind" }, Object.entries(KIND_LABEL).map(([value, label]) =>
      h("option", { value, selected: v.kind === value }, label)))),
    h("div", { class: "field-row" },
      field(`Starts (${event.timezone})`, h("input", { name: "starts_at", type: "datetime-local", required: true, value: wall(v.starts_at, "09:00") })),
      field(`Ends (${event.timezone})`, h("input", { name: "ends_at", type: "datetime-local", required: true, value: wall(v.ends_at, "10:00") }))),
    field("Description", h("textarea", { name: "description", rows: "3", maxlength: "20000" }, v.description)),
    field("Content note", h("textarea", { name: "content_note", rows: "2", maxlength: "2000" }, v.content_note || ""),
      "Optional. Shown to attendees before they join, e.g. “discusses stalking and homicide”."),
    h("fieldset", {},
      h("legend", {}, "Questions"),
      field("The chair approves questions before anyone sees them", h("input", { name: "moderation_required", type: "checkbox", checked: v.moderation_required })),
      field("Attendees may ask anonymously", h("input", { name: "anonymous_questions_allowed", type: "checkbox", checked: v.anonymous_questions_allowed })),
      field("The chair sees the names of anonymous askers", h("input", { name: "chair_sees_asker_names", type: "checkbox", checked: v.chair_sees_asker_names }))),
    h("div", { class: "actions" },
      h("button", { type: "submit" }, session ? "Save session" : "Add session"),
      session ? h("button", { type: "button", class: "secondary", onclick: () => form.remove() }, "Cancel") : null));
  form.addEventListener("submit", async (submit) => {
    submit.preventDefault();
    const e = form.elements;
    const body = {
      title: e.title.value.trim(),
      kind: e.kind.value,
      description: e.description.value,
      content_note: e.content_note.value.trim() || null,
      moderation_required: e.moderation_required.checked,
      anonymous_questions_allowed: e.anonymous_questions_allowed.checked,
      chair_sees_asker_names: e.chair_sees_asker_names.checked,
    };
    try {
      if (!e.starts_at.value || !e.ends_at.value) throw { message: "Please give a start and an end.", fields: [] };
      body.starts_at = wallToIso(e.starts_at.value, event.timezone);
      body.ends_at = wallToIso(e.ends_at.value, event.timezone);
      await api(session ? `/api/sessions/${session.id}` : `/api/events/${event.id}/sessions`, { method: session ? "PATCH" : "POST", body });
      announce(session ? "Session saved." : "Session added.");
      if (!session) {
        form.reset();
        state.slots["new-session"].open = false;
      }
      await loadAgenda(event);
    } catch (error) {
      showFormError(form, error);
    }
  });
  return form;
}

function inviteForm(event, session) {
  const result = h("div", { class: "invite-result", "aria-live": "polite" });
  const form = h("form", { class: "stack invite-form", novalidate: true },
    h("h4", {}, `Invite someone to “${session.title}”`),
    field("Role", h("select", { name: "role" }, Object.entries(ROLE_LABEL).map(([value, label]) => h("option", { value }, label)))),
    field("Name", h("input", { name: "display_name", required: true, maxlength: "80" }), "As shown on the agenda."),
    field("Affiliation", h("input", { name: "affiliation", maxlength: "200" }), "Optional, e.g. “Clinical Psychologist, Stalking Threat Assessment Centre”."),
    field("Email", h("input", { name: "email", type: "email", maxlength: "254" }), "Optional. Dais does not send email; copy the link below and send it yourself."),
    h("button", { type: "submit" }, "Make invite link"),
    result);
  form.addEventListener("submit", async (submit) => {
    submit.preventDefault();
    const e = form.elements;
    try {
      const invite = await api(`/api/sessions/${session.id}/invites`, {
        method: "POST",
        body: { role: e.role.value, display_name: e.display_name.value.trim() || null, affiliation: e.affiliation.value.trim() || null, email: e.email.value.trim() || null },
      });
      showFormError(form, null);
      const url = h("input", { class: "invite-url", readonly: true, value: invite.url, "aria-label": `Invite link for ${invite.display_name}` });
      replace(result,
        h("p", {}, `Invite link for ${invite.display_name} as ${ROLE_LABEL[invite.role].toLowerCase()}. It works once, until ${new Date(invite.expires_at).toLocaleDateString()}.`),
        h("div", { class: "copy-row" }, url, copyButton(url, "Copy link")));
      url.focus();
      url.select();
      loadAgenda(event).catch(() => {});
      loadPeople(event).catch(() => {});
    } catch (error) {
      showFormError(form, error);
    }
  });
  return form;
}

async function loadPeople(event) {
  const list = state.slots.people;
  const people = await api(`/api/events/${event.id}/people`);
  if (!people.length) {
    replace(list, h("li", { class: "muted" }, "Nobody invited yet."));
    return;
  }
  replace(list, people.map((person) => h("li", { class: `person-row${person.revoked_at ? " revoked" : ""}` },
    h("div", {},
      h("strong", {}, person.display_name),
      person.affiliation ? h("span", { class: "muted" }, `, ${person.affiliation}`) : null,
      h("p", { class: "small muted" }, roleSummary(person.roles),
        person.revoked_at ? " · revoked" : "")),
    person.revoked_at ? null : h("button", {
      type: "button",
      class: "small danger",
      "aria-label": `Revoke ${person.display_name}`,
      onclick: async () => {
        if (!confirm(`Revoke ${person.display_name}? They are signed out and their unused invites stop working.`)) return;
        try {
          await api(`/api/events/${event.id}/people/${person.id}/revoke`, { method: "POST" });
          announce(`${person.display_name} revoked.`);
          loadPeople(event);
        } catch (error) {
          alert(error.message);
        }
      },
    }, "Revoke"))));
}

// "Chair of 7 sessions, speaker in 1" rather than one word per session.
function roleSummary(roles) {
  const counts = new Map();
  for (const { role } of roles) counts.set(role, (counts.get(role) || 0) + 1);
  if (!counts.size) return "No session role";
  return [...counts].map(([role, n]) => `${ROLE_LABEL[role]}, ${n} ${n === 1 ? "session" : "sessions"}`).join(" · ");
}

// -- Reports: audit log, recordings, attendance ------------------------------------------------

async function loadReports(event) {
  const { slots } = state;
  let titles = new Map();
  try {
    const agenda = await api(`/api/events/${event.id}/agenda`);
    titles = new Map(agenda.sessions.map((s) => [s.id, s]));
  } catch { /* titles are a nicety */ }
  const title = (id) => (titles.get(id) ? titles.get(id).title : "A deleted session");
  const load = async (slot, path, render) => {
    try {
      replace(slots[slot], render(await api(path)));
    } catch (error) {
      replace(slots[slot], h("p", { class: "form-error" }, error.message));
    }
  };
  replace(slots.audit, auditLog(event, title));
  await Promise.all([
    load("recordings", `/api/events/${event.id}/recordings`, (recordings) => recordingList(recordings, title, event)),
    load("attendance", `/api/events/${event.id}/attendance`, (series) => attendanceCharts(series, titles, event)),
  ]);
}

const ACTION_LABEL = {
  "question.approve": "Approved a question", "question.reject": "Rejected a question", "question.edit": "Edited a question",
  "question.answer": "Marked a question answered", "question.pin": "Pinned a question", "message.delete": "Deleted a message",
  "held.release": "Released a held message", "held.discard": "Discarded a held message", "person.mute": "Muted someone",
  "person.unmute": "Unmuted someone", "person.remove": "Removed someone", "room.slow_mode": "Changed slow mode",
  "room.lock": "Locked or unlocked the room", "announcement.post": "Posted an announcement", "poll.create": "Created a poll",
  "poll.open": "Opened a poll", "poll.close": "Closed a poll", "stage.go_live": "Put someone live", "stage.take_off": "Took someone off stage",
  "stage.mute": "Muted a speaker for attendees", "session.end": "Ended the session",
};
// The audit log, newest first, a page at a time; refused attempts can be hidden, and repeated
// refusals arrive folded into one entry with a count.
function auditLog(event, title) {
  const root = h("div", {});
  const doneOnly = h("input", { type: "checkbox" });
  const rows = h("tbody", {});
  const summary = h("p", { class: "hint", "aria-live": "polite" });
  const older = h("button", { type: "button", class: "small", hidden: true }, "Older entries");
  let next = null;
  let shown = 0;
  let refused = 0;
  const row = (e) => h("tr", {},
    h("td", { class: "nowrap" }, h("time", { datetime: e.created_at }, shortWhen(e.created_at, event.timezone))),
    h("td", {}, title(e.session_id)),
    h("td", { class: "nowrap" }, e.actor_role),
    h("td", {}, ACTION_LABEL[e.action] || e.action, e.detail ? h("span", { class: "muted" }, ` (${e.detail})`) : null),
    h("td", { class: e.outcome === "done" ? "" : "outcome-refused" },
      { done: "Done", forbidden: "Refused: not allowed" }[e.outcome] || e.outcome,
      e.count > 1 ? ` ×${e.count}` : ""));
  const load = async (path, fresh) => {
    older.disabled = true;
    try {
      const page = await apiPage(path);
      if (fresh) { rows.replaceChildren(); shown = 0; refused = 0; }
      rows.append(...page.data.map(row));
      shown += page.data.length;
      refused += page.data.reduce((n, e) => n + (e.outcome !== "done" ? e.count : 0), 0);
      next = page.next;
      older.hidden = !next;
      summary.textContent = shown
        ? `${shown} ${shown === 1 ? "entry" : "entries"}${next ? " so far" : ""}, newest first${refused ? `; ${refused} refused attempts` : ""}.`
        : "No moderation actions yet. Every approve, reject, mute, removal and stage change is listed here, and every refused attempt.";
    } catch (error) {
      summary.textContent = error.message;
    } finally {
      older.disabled = false;
    }
  };
  const first = () => load(`/api/events/${event.id}/audit${doneOnly.checked ? "?outcome=done" : ""}`, true);
  doneOnly.addEventListener("change", first);
  older.addEventListener("click", () => next && load(next, false));
  root.append(
    h("label", { class: "check" }, doneOnly, " Only what was done (hide refused attempts)"),
    summary,
    h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": "Audit log entries" },
      h("table", { class: "audit-table" },
        h("thead", {}, h("tr", {}, ["When", "Session", "Who", "Action", "Outcome"].map((c) => h("th", { scope: "col" }, c)))),
        rows)),
    older);
  first();
  return root;
}

function shortWhen(iso, zone) {
  return new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", timeZone: zone }).format(new Date(iso));
}

function duration(seconds) {
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds % 60);
  return m ? `${m} min ${s} s` : `${s} s`;
}

function size(bytes) {
  return bytes > 1e6 ? `${(bytes / 1e6).toFixed(1)} MB` : `${Math.max(1, Math.round(bytes / 1e3))} kB`;
}

function recordingList(recordings, title, event) {
  if (!recordings.length) return h("p", { class: "muted" }, "No recordings yet. Each session's stage is recorded while someone is live.");
  const probe = document.createElement("video");
  const playable = Boolean(probe.canPlayType('video/webm; codecs="vp8, opus"'));
  return h("ul", { class: "recordings" }, recordings.map((r) => {
    const label = `${title(r.session_id)}, ${day(r.started_at, event.timezone)} ${clock(r.started_at, event.timezone)}`;
    return h("li", { class: "recording" },
      h("p", {}, h("strong", {}, title(r.session_id)), h("br"),
        h("span", { class: "muted small" }, `${day(r.started_at, event.timezone)}, ${clock(r.started_at, event.timezone)}–${clock(r.ended_at, event.timezone)} · ${duration(r.duration_seconds)} · ${size(r.size_bytes)}`)),
      playable ? h("video", { controls: true, preload: "metadata", src: r.url, "aria-label": `Recording: ${label}` }) : null,
      h("a", { href: r.url, download: "", class: "small" }, `Download (Matroska, ${size(r.size_bytes)})`),
    );
  }));
}

// One accessible inline SVG line chart per session (people watching per minute), each with a table
// of the same numbers.
function attendanceCharts(series, sessions, event) {
  const withPoints = series.filter((s) => s.points.length);
  if (!withPoints.length) return h("p", { class: "muted" }, "No attendance yet. The number of people in each session is stored every minute while it runs.");
  return withPoints.map((s) => {
    const session = sessions.get(s.session_id);
    const name = session ? session.title : "A deleted session";
    const points = s.points.map((p) => ({ at: Date.parse(p.minute), n: p.watching, minute: p.minute }));
    const peak = points.reduce((a, b) => (b.n > a.n ? b : a), points[0]);
    const summary = `${name}: ${points.length} ${points.length === 1 ? "minute" : "minutes"} sampled from ${clock(points[0].minute, event.timezone)} to ${clock(points.at(-1).minute, event.timezone)}; peak ${peak.n} watching at ${clock(peak.minute, event.timezone)}.`;
    const id = `att-${s.session_id}`;
    return h("section", { class: "att-session", "aria-labelledby": `${id}-h` },
      h("h3", { id: `${id}-h` }, name),
      lineChart(points, { id, title: `People watching ${name} over time`, summary, zone: event.timezone }),
      h("details", {},
        h("summary", {}, "The numbers as a table"),
        h("div", { class: "table-wrap" },
          h("table", { class: "att-table" },
            h("caption", { class: "visually-hidden" }, `People watching ${name}, per minute`),
            h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Minute"), h("th", { scope: "col" }, "Watching"))),
            h("tbody", {}, points.map((p) => h("tr", {}, h("td", {}, clock(p.minute, event.timezone)), h("td", {}, String(p.n)))))))));
  });
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  for (const child of children) if (child) el.append(child);
  return el;
}

function lineChart(points, { id, title, summary, zone }) {
  const W = 640, H = 220, L = 44, R = 16, T = 14, B = 34;
  const t0 = points[0].at;
  const t1 = Math.max(points.at(-1).at, t0 + 60_000);
  const max = Math.max(1, ...points.map((p) => p.n));
  const step = niceStep(max);
  const top = Math.ceil(max / step) * step;
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (n) => T + (1 - n / top) * (H - T - B);
  const chart = svg("svg", { class: "att-chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": `${id}-t ${id}-d` });
  const titleEl = svg("title", { id: `${id}-t` });
  titleEl.textContent = title;
  const desc = svg("desc", { id: `${id}-d` });
  desc.textContent = summary;
  chart.append(titleEl, desc);
  for (let n = 0; n <= top; n += step) {
    chart.append(svg("line", { class: "grid", x1: L, x2: W - R, y1: y(n), y2: y(n) }));
    const label = svg("text", { x: L - 6, y: y(n) + 4, "text-anchor": "end" });
    label.textContent = String(n);
    chart.append(label);
  }
  chart.append(svg("line", { class: "axis", x1: L, x2: W - R, y1: y(0), y2: y(0) }));
  const ticks = Math.min(6, points.length);
  for (let i = 0; i < ticks; i++) {
    const t = t0 + ((t1 - t0) * i) / Math.max(1, ticks - 1);
    const label = svg("text", { x: x(t), y: H - B + 18, "text-anchor": i === 0 ? "start" : i === ticks - 1 ? "end" : "middle" });
    label.textContent = clock(new Date(t).toISOString(), zone);
    chart.append(label);
  }
  const path = points.map((p, i) => `${i ? "L" : "M"}${x(p.at).toFixed(1)},${y(p.n).toFixed(1)}`).join(" ");
  if (points.length > 1) {
    chart.append(svg("path", { class: "area", d: `${path} L${x(points.at(-1).at).toFixed(1)},${y(0)} L${x(t0).toFixed(1)},${y(0)} Z` }));
    chart.append(svg("path", { class: "line", d: path }));
  }
  for (const p of points.length <= 60 ? points : []) chart.append(svg("circle", { cx: x(p.at).toFixed(1), cy: y(p.n).toFixed(1), r: 3, fill: "currentColor", class: "dot" }));
  return chart;
}

function niceStep(max) {
  for (const step of [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000]) if (max / step <= 5) return step;
  return 10_000;
}

// Start last: every module-level binding above is initialised before the console renders (an
// organiser already signed in gets the console straight away). The sign-in page is open to
// anyone, so it carries the exit control like every attendee page.
installExit();
const me = await whoAmI().catch(() => null);
if (me && me.organiser) await showConsole(me.organiser);
else showSignIn();
root.removeAttribute("aria-busy");

// The organiser console: sign in, events and their privacy settings, the agenda editor, invite
// links, people with revoke, and the registration count.

import { api, showFormError, whoAmI } from "./api.js";
import { KIND_LABEL } from "./agenda.js";
import { announce, copyButton, fromTemplate, h, replace } from "./dom.js";
import { isoToWall, span, wallToIso } from "./time.js";

const root = document.getElementById("organiser");
const ROLE_LABEL = { chair: "Chair", speaker: "Speaker", moderator: "Moderator" };

let state = { events: [], event: null, slots: null };

const me = await whoAmI().catch(() => null);
if (me && me.organiser) await showConsole(me.organiser);
else showSignIn();
root.removeAttribute("aria-busy");

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
  root.querySelector("h1").setAttribute("tabindex", "-1");
  root.querySelector("h1").focus();
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

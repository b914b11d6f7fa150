// Registration with a display name only; shared by the event page and the session page.

import { api, showFormError } from "./api.js";
import { h } from "./dom.js";

export function registrationForm(event, onRegistered) {
  const form = h("form", { class: "stack register-form", novalidate: true },
    h("label", { for: "display-name" }, "Display name"),
    h("span", { class: "hint", id: "display-name-hint" }, "Any name you like. It is shown next to your chat messages and named questions."),
    h("input", { id: "display-name", name: "display_name", required: true, maxlength: "80", autocomplete: "nickname", "aria-describedby": "display-name-hint" }),
    h("label", { for: "email" }, "Email (optional)"),
    h("span", { class: "hint", id: "email-hint" }, "Only for the organiser to reach you about this event. Never shown to anyone else."),
    h("input", { id: "email", name: "email", type: "email", maxlength: "254", autocomplete: "email", "aria-describedby": "email-hint" }),
    h("button", { type: "submit" }, "Register"),
  );
  form.addEventListener("submit", async (submit) => {
    submit.preventDefault();
    const displayName = form.elements.display_name.value.trim();
    const email = form.elements.email.value.trim();
    if (!displayName) {
      showFormError(form, { message: "Please enter a display name.", fields: [{ field: "display_name", message: "Enter any name you like." }] });
      return;
    }
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const person = await api(`/api/events/${event.id}/register`, {
        method: "POST",
        body: { display_name: displayName, email: email || null },
      });
      showFormError(form, null);
      onRegistered(person);
    } catch (error) {
      showFormError(form, error);
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

// The person this browser is signed in as, if they belong to `event`.
export function personAt(me, event) {
  return me && me.participant && me.participant.event_id === event.id ? me.participant : null;
}

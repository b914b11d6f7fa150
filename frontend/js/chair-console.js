// The chair console (also for moderators): moderation queue, green room and stage control, chat
// moderation, polls, announcements, and a clock against the agenda.

import { renderPolls } from "./attendee-room.js";
import { openCamera, stopStream } from "./devices.js";
import { announce, h, replace } from "./dom.js";
import { PROTOCOL, STATE } from "./live.js";
import { renderPinned, renderQuestions } from "./questions.js";
import { clock, minutes } from "./time.js";

const A = PROTOCOL.actions;

export function mountChairConsole({ session, role, live, room, slots }) {
  const act = (type, fields) => live.send(type, fields).catch((error) => announce(error.message));
  const button = (label, onclick, attrs = {}) =>
    h("button", { type: "button", class: "small", disabled: live.state !== STATE.live, onclick, ...attrs }, label);
  if (role === "moderator") {
    slots["role-label"].textContent = "Moderator console";
    // Moderators moderate; the stage is the chair's.
    slots["green-room-card"].remove();
  }

  // Session clock against the agenda.
  const tick = () => {
    const now = Date.now();
    const start = Date.parse(session.starts_at);
    const end = Date.parse(session.ends_at);
    let text;
    if (now < start) text = `Starts at ${clock(session.starts_at)}, in ${minutes((start - now) / 60000)}`;
    else if (now < end) text = `${minutes((now - start) / 60000)} in, ${minutes((end - now) / 60000)} left (ends ${clock(session.ends_at)})`;
    else text = `Over time by ${minutes((now - end) / 60000)} (was due to end ${clock(session.ends_at)})`;
    slots.clock.textContent = text;
    slots.clock.dataset.over = String(now >= end);
  };
  tick();
  const clockTimer = setInterval(tick, 15_000);

  // Questions
  const renderAll = () => {
    renderQuestions(slots.queue, room.pending(), {
      empty: "No questions waiting.",
      actions: (q) => [
        button("Approve", () => act(A.questionApprove, { question_id: q.id })),
        button("Edit", () => {
          const text = prompt("Edit the question for clarity", q.text);
          if (text && text.trim() && text !== q.text) act(A.questionEdit, { question_id: q.id, text: text.trim() });
        }, { class: "small secondary" }),
        button("Reject", () => act(A.questionReject, { question_id: q.id }), { class: "small secondary" }),
      ],
    });
    renderQuestions(slots.questions, room.approved(), {
      empty: "None yet.",
      actions: (q) => q.status === "answered" ? [] : [
        button(room.pinned && room.pinned.id === q.id ? "Unpin" : "Pin", () =>
          act(A.questionPin, { question_id: room.pinned && room.pinned.id === q.id ? null : q.id })),
        button("Answered", () => act(A.questionAnswered, { question_id: q.id }), { class: "small secondary" }),
      ],
    });
    renderPinned(slots.pinned, room.pinned);
    renderChat();
    renderSpeakers();
    renderPolls(slots.polls, [...room.polls.values()], live, {
      controls: (poll) => poll.open
        ? button("Close poll", () => act(A.pollClose, { poll_id: poll.id }))
        : button("Open poll", () => act(A.pollOpen, { poll_id: poll.id })),
    });
  };
  for (const part of ["questions", "pinned", "chat", "polls", "stage"]) room.on(part, renderAll);
  live.addEventListener("state", renderAll);
  room.on("watching", () => { slots.watching.textContent = room.watching ?? "–"; });
  room.on("room", () => {
    slots["slow-mode"].value = String(room.room.slow_mode_seconds || 0);
    slots.lock.checked = Boolean(room.room.locked);
  });

  // Chat moderation
  function renderChat() {
    if (!room.messages.length) {
      replace(slots.chat, h("li", { class: "empty muted" }, "No messages yet."));
      return;
    }
    replace(slots.chat, room.messages.map((m) => h("li", { class: "message" },
      h("strong", {}, m.author || "Anonymous"), " ", m.text,
      h("span", { class: "message-actions" },
        button("Delete", () => act(A.chatDelete, { message_id: m.id }), { class: "small secondary", "aria-label": `Delete message from ${m.author}` }),
        m.author_id ? button("Mute", () => act(A.personMute, { participant_id: m.author_id, muted: true }), { class: "small secondary", "aria-label": `Mute ${m.author}` }) : null,
        m.author_id ? button("Remove", () => {
          if (confirm(`Remove ${m.author} from this session? They cannot rejoin.`)) act(A.personRemove, { participant_id: m.author_id });
        }, { class: "small danger", "aria-label": `Remove ${m.author}` }) : null))));
  }
  slots["slow-mode"].addEventListener("change", () => act(A.roomSlowMode, { seconds: Number(slots["slow-mode"].value) }));
  slots.lock.addEventListener("change", () => act(A.roomLock, { locked: slots.lock.checked }));

  // Green room: each speaker with their stage controls.
  function renderSpeakers() {
    if (role === "moderator") return;
    const people = [...(session.chair ? [{ ...session.chair, chair: true }] : []), ...session.speakers];
    replace(slots.speakers, people.map((person) => {
      const isLive = room.stage.live.includes(person.id);
      const muted = room.stage.muted[person.id] || {};
      return h("li", { class: `speaker-tile${isLive ? " is-live" : ""}` },
        h("div", { class: "tile-video", "aria-hidden": "true" }, h("span", {}, initials(person.display_name))),
        h("p", { class: "tile-name" }, h("strong", {}, person.display_name), person.chair ? " (chair)" : ""),
        person.affiliation ? h("p", { class: "affiliation small" }, person.affiliation) : null,
        h("p", { class: "tile-status" }, isLive ? "Live" : "In the green room"),
        h("div", { class: "tile-actions" },
          isLive
            ? button("Take off stage", () => act(A.stageTakeOff, { participant_id: person.id }), { class: "small secondary" })
            : button("Go live", () => act(A.stageGoLive, { participant_id: person.id })),
          button(muted.audio ? "Unmute" : "Mute", () => act(A.stageMute, { participant_id: person.id, audio: !muted.audio }), {
            class: "small secondary", "aria-pressed": String(Boolean(muted.audio)), "aria-label": `${muted.audio ? "Unmute" : "Mute"} ${person.display_name}`,
          })));
    }));
  }

  // The chair's own camera, for hosting.
  let ownStream = null;
  const ownButton = slots["own-preview"] && slots["own-preview"].parentElement.querySelector('[data-action="own-camera"]');
  if (ownButton) {
    ownButton.addEventListener("click", async () => {
      if (ownStream) {
        stopStream(ownStream);
        ownStream = null;
        slots["own-preview"].hidden = true;
        ownButton.textContent = "Start my camera";
        return;
      }
      try {
        ownStream = await openCamera();
        slots["own-preview"].srcObject = ownStream;
        slots["own-preview"].hidden = false;
        ownButton.textContent = "Stop my camera";
      } catch (error) {
        announce(`Camera not available: ${error.message}`);
      }
    });
  }

  // Polls and announcements
  slots["poll-form"].addEventListener("submit", async (submit) => {
    submit.preventDefault();
    const form = slots["poll-form"];
    const options = form.elements.options.value.split("\n").map((s) => s.trim()).filter(Boolean);
    if (options.length < 2) {
      announce("A poll needs at least two options.");
      return;
    }
    try {
      await live.send(A.pollCreate, { question: form.elements.question.value.trim(), options });
      form.reset();
    } catch (error) {
      announce(error.message);
    }
  });
  slots["announce-form"].addEventListener("submit", async (submit) => {
    submit.preventDefault();
    const form = slots["announce-form"];
    try {
      await live.send(A.announcementPost, { text: form.elements.text.value.trim() });
      form.reset();
      announce("Announcement posted.");
    } catch (error) {
      announce(error.message);
    }
  });

  renderAll();
  return () => {
    clearInterval(clockTimer);
    stopStream(ownStream);
  };
}

function initials(name) {
  return name.split(/\s+/).filter((w) => /^[A-Z]/.test(w) && !/^(Dr|MP|Professor|Prof)$/.test(w)).slice(0, 2).map((w) => w[0]).join("");
}

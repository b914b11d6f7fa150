// The attendee's room: stage, pinned question, captions, reactions, Q&A, chat and polls.

import { mountChatComposer, mountHistoryButton } from "./composer.js";
import { $$, announce, h, replace, tabs } from "./dom.js";
import { PROTOCOL, STATE, explain } from "./live.js";
import { askerLabel, renderPinned, renderQuestions } from "./questions.js";
import { stageRenderer, watchStage } from "./stage.js";
import { clock } from "./time.js";

const A = PROTOCOL.actions;
export const REACTION_EMOJI = { applause: "👏", heart: "💜", laugh: "😄", thinking: "🤔", thumbs_up: "👍" };

export function mountAttendeeRoom({ session, live, room, slots }) {
  const side = slots.ask.closest(".room-side");
  tabs(side.querySelector('[role="tablist"]'));

  // Q&A
  if (!session.anonymous_questions_allowed) slots["anonymous-row"].remove();
  slots["moderation-hint"].textContent = session.moderation_required
    ? "The chair reviews questions before anyone else sees them."
    : "Questions appear for everyone straight away.";
  slots.ask.addEventListener("submit", async (submit) => {
    submit.preventDefault();
    const form = slots.ask;
    const text = form.elements.text.value.trim();
    if (!text) return;
    const anonymous = Boolean(form.elements.anonymous && form.elements.anonymous.checked);
    try {
      const result = await live.send(A.questionAsk, { text, anonymous });
      if (result.question) room.rememberMine(result.question);
      form.elements.text.value = "";
      renderAllQuestions();
      announce(result.question && result.question.status === "pending" ? "Question sent to the chair." : "Question posted.");
    } catch (error) {
      announce(explain(error));
      slots["ask-error"].textContent = explain(error);
    }
  });
  const renderAllQuestions = () => {
    slots["ask-error"].textContent = room.you && room.you.muted ? "A moderator has muted you: you cannot ask or chat for now." : "";
    renderQuestions(slots["my-questions"], room.mine(), { empty: "You have not asked anything yet.", showStatus: true });
    renderQuestions(slots.questions, room.approved(), {
      empty: "No questions yet.",
      actions: (q) => q.answered ? [] : [h("button", {
        type: "button",
        class: "vote small secondary",
        "aria-pressed": String(room.voted.has(q.id)),
        disabled: live.state !== STATE.live,
        "aria-label": `${room.voted.has(q.id) ? "Take back your vote for" : "Vote for"}: ${q.text}`,
        onclick: async () => {
          const voted = room.voted.has(q.id);
          try {
            await live.send(voted ? A.questionUnvote : A.questionVote, { question_id: q.id });
            if (voted) room.voted.delete(q.id);
            else room.voted.add(q.id);
            renderAllQuestions();
          } catch (error) {
            announce(explain(error));
          }
        },
      }, "▲ ", room.voted.has(q.id) ? "Voted" : "Vote")],
    });
    renderPinned(slots.pinned, room.pinned());
  };
  room.on("questions", renderAllQuestions);
  room.on("you", renderAllQuestions);
  live.addEventListener("state", renderAllQuestions);
  mountHistoryButton({ room, part: "questions", button: slots["more-questions"], list: slots.questions,
    noun: (n) => (n === 1 ? "more question" : "more questions") });

  // Chat
  const stopComposer = mountChatComposer({ live, form: slots["chat-form"], outbox: slots["chat-outbox"], status: slots["chat-sending"] });
  const lines = new Map();
  room.on("chat", () => renderChat(slots.chat, room.messages, lines));
  mountHistoryButton({ room, part: "messages", button: slots["older-messages"], list: slots.chat, scrollTop: true,
    noun: (n) => (n === 1 ? "older message" : "older messages") });
  room.on("announcement", (message) => {
    if (!message) return;
    showAnnouncement(slots.announcement, message);
    announce(`Announcement: ${message.text}`);
  });
  room.on("room", () => {
    const seconds = room.room.slow_mode_seconds;
    slots["chat-note"].textContent = seconds ? `Slow mode: one message every ${seconds} seconds.` : "";
  });

  // Polls
  room.on("polls", () => renderPolls(slots.polls, [...room.polls.values()].filter((p) => p.status !== "draft"), live, room));

  // Reactions
  for (const button of $$("[data-reaction]", slots.reactions.parentElement)) {
    button.addEventListener("click", () => live.send(A.reactionSend, { reaction: button.dataset.reaction }).catch(() => {}));
  }
  room.on("reaction", (reaction) => {
    if (!reaction || !REACTION_EMOJI[reaction]) return;
    const burst = h("span", { class: "burst" }, REACTION_EMOJI[reaction]);
    slots.reactions.append(burst);
    setTimeout(() => burst.remove(), 1500);
    while (slots.reactions.childElementCount > 12) slots.reactions.firstElementChild.remove();
  });

  room.on("watching", () => { slots.watching.textContent = room.watching ?? "–"; });

  // Captions: ready for a live captions feed; the newest lines stay on screen.
  slots["captions-toggle"].addEventListener("change", (change) => {
    slots.captions.hidden = !change.target.checked;
  });

  // Stage
  const stage = stageRenderer({ box: slots.stage, empty: slots["stage-empty"], sound: slots.sound, session });
  const watching = watchStage(live, (tracks) => stage.tracks(tracks));
  room.on("stage", () => stage.stage(room.stage));
  slots["audio-only"].addEventListener("change", (change) => {
    watching.viewer.setAudioOnly(change.target.checked).catch(() => {});
  });
  return () => {
    watching.close();
    stopComposer();
  };
}

export function showAnnouncement(box, message) {
  box.hidden = false;
  replace(box,
    h("p", { class: "eyebrow" }, `Announcement · ${clock(message.at)}`),
    h("p", {}, message.text),
    h("button", { type: "button", class: "small secondary", onclick: () => { box.hidden = true; } }, "Dismiss"));
}

// Lines are kept per message and only new ones inserted, so that the list's live region reads
// out what arrived, not the whole chat again.
function renderChat(list, messages, lines) {
  if (!messages.length) {
    lines.clear();
    replace(list, h("li", { class: "empty muted" }, "No messages yet."));
    return;
  }
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const wanted = messages.map((m) => {
    if (!lines.has(m.id)) lines.set(m.id, chatLine(m));
    return lines.get(m.id);
  });
  const keep = new Set(wanted);
  for (const [id, line] of lines) if (!keep.has(line)) lines.delete(id);
  for (const child of [...list.children]) if (!keep.has(child)) child.remove();
  let next = list.firstElementChild;
  for (const line of wanted) {
    if (line === next) next = next.nextElementSibling;
    else list.insertBefore(line, next);
  }
  if (atBottom) list.scrollTop = list.scrollHeight;
}

export function chatLine(m, extra = null) {
  const role = m.author_role && m.author_role !== "attendee" ? h("span", { class: "role-badge" }, m.author_role) : null;
  return h("li", { class: m.kind === "announcement" ? "message announcement" : "message", dataset: { id: m.id } },
    m.kind === "announcement" ? h("strong", {}, "Announcement: ") : h("strong", {}, m.author || "Someone"),
    role, " ", h("span", { class: "message-text" }, m.text),
    h("time", { class: "message-time muted small", datetime: m.at }, ` ${clock(m.at)}`),
    extra);
}

// PollView: {id, question, options, status: draft|open|closed, counts?}.
export function renderPolls(box, polls, live, room, { controls } = {}) {
  if (!polls.length) {
    replace(box, h("p", { class: "muted" }, "No polls yet."));
    return;
  }
  const order = { open: 0, draft: 1, closed: 2 };
  polls.sort((a, b) => order[a.status] - order[b.status]);
  replace(box, polls.map((poll) => {
    const mine = room.myPollVotes.get(poll.id);
    const total = (poll.counts || []).reduce((a, b) => a + b, 0);
    const canVote = poll.status === "open" && mine === undefined && !controls;
    const label = { draft: " (draft: not shown to attendees yet)", open: "", closed: " (closed)" }[poll.status];
    const form = h("form", { class: "poll card-inner" },
      h("fieldset", { disabled: !canVote || live.state !== STATE.live },
        h("legend", {}, poll.question, label),
        poll.options.map((option, index) => h("div", { class: "poll-option" },
          h("label", { class: "check" },
            canVote ? h("input", { type: "radio", name: `poll-${poll.id}`, value: String(index), required: true }) : null,
            ` ${option}`, mine === index ? h("span", { class: "muted" }, " (your vote)") : null),
          poll.counts ? bar(poll.counts[index] || 0, total) : null)),
        canVote ? h("button", { type: "submit", class: "small" }, "Vote") : null,
        poll.status === "open" && mine !== undefined ? h("p", { class: "hint" }, "Thank you: results are shown when the poll closes.") : null),
      controls ? controls(poll) : null);
    form.addEventListener("submit", async (submit) => {
      submit.preventDefault();
      const choice = form.querySelector("input:checked");
      if (!choice) return;
      try {
        await live.send(PROTOCOL.actions.pollVote, { poll_id: poll.id, option: Number(choice.value) });
        room.myPollVotes.set(poll.id, Number(choice.value));
        renderPolls(box, polls, live, room, { controls });
        announce("Vote counted.");
      } catch (error) {
        if (error.code === "poll.already_voted") room.myPollVotes.set(poll.id, Number(choice.value));
        announce(explain(error));
      }
    });
    return form;
  }));
}

function bar(count, total) {
  const share = total ? Math.round((100 * count) / total) : 0;
  const fill = h("span", { class: "poll-fill" });
  fill.style.width = `${share}%`; // CSSOM, not a style attribute: the CSP allows no inline styles
  return h("span", { class: "poll-bar" },
    fill,
    h("span", { class: "poll-count" }, `${count} (${share}%)`));
}

export { askerLabel };

// The attendee's room: stage, pinned question, captions, reactions, Q&A, chat and polls.

import { $$, announce, h, replace, tabs } from "./dom.js";
import { PROTOCOL, STATE } from "./live.js";
import { Viewer } from "./media.js";
import { renderPinned, renderQuestions } from "./questions.js";

const A = PROTOCOL.actions;
const REACTION_EMOJI = { applause: "👏", support: "💜", insight: "💡", agree: "👍" };

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
      await live.send(A.questionAsk, { text, anonymous });
      form.elements.text.value = "";
      announce(session.moderation_required ? "Question sent to the chair." : "Question posted.");
    } catch (error) {
      announce(error.message);
    }
  });
  const renderAllQuestions = () => {
    renderQuestions(slots["my-questions"], room.mine(), { empty: "You have not asked anything yet.", showStatus: true });
    renderQuestions(slots.questions, room.approved(), {
      empty: "No questions yet.",
      actions: (q) => q.status === "answered" ? [] : [h("button", {
        type: "button",
        class: "vote",
        "aria-pressed": String(Boolean(q.voted)),
        disabled: live.state !== STATE.live,
        "aria-label": `${q.voted ? "Take back your vote for" : "Vote for"}: ${q.text}`,
        onclick: () => live.send(q.voted ? A.questionUnvote : A.questionVote, { question_id: q.id }).catch((e) => announce(e.message)),
      }, "▲ ", q.voted ? "Voted" : "Vote")],
    });
  };
  room.on("questions", renderAllQuestions);
  live.addEventListener("state", renderAllQuestions);
  room.on("pinned", () => renderPinned(slots.pinned, room.pinned));

  // Chat
  slots["chat-form"].addEventListener("submit", async (submit) => {
    submit.preventDefault();
    const input = slots["chat-form"].elements.text;
    const text = input.value.trim();
    if (!text) return;
    try {
      await live.send(A.chatSend, { text });
      input.value = "";
    } catch (error) {
      announce(error.code === "rate_limited" ? "Slow mode is on: please wait a moment." : error.message);
    }
  });
  room.on("chat", () => renderChat(slots.chat, room.messages));
  room.on("announcement", (frame) => {
    slots.chat.append(h("li", { class: "announcement" }, h("strong", {}, "Announcement: "), frame.text));
    announce(`Announcement: ${frame.text}`);
  });

  // Polls
  room.on("polls", () => renderPolls(slots.polls, [...room.polls.values()], live));

  // Reactions
  for (const button of $$("[data-reaction]", slots.reactions.parentElement)) {
    button.addEventListener("click", () => live.send(A.reactionSend, { kind: button.dataset.reaction }).catch(() => {}));
  }
  room.on("reaction", (frame) => {
    if (!frame || !frame.kind) return;
    const burst = h("span", { class: "burst" }, REACTION_EMOJI[frame.kind] || "");
    slots.reactions.append(burst);
    setTimeout(() => burst.remove(), 1500);
  });

  room.on("watching", () => { slots.watching.textContent = room.watching ?? "–"; });

  // Captions: the feed pushes lines; the newest few stay on screen.
  slots["captions-toggle"].addEventListener("change", (change) => {
    slots.captions.hidden = !change.target.checked;
  });
  room.on("caption", (frame) => {
    if (!frame || !frame.text) return;
    if (slots.captions.querySelector(".muted")) slots.captions.replaceChildren();
    slots.captions.append(h("p", {}, frame.text));
    while (slots.captions.childElementCount > 3) slots.captions.firstElementChild.remove();
  });

  // Stage
  const viewer = new Viewer(live);
  viewer.addEventListener("tiles", (event) => renderStage(slots.stage, slots["stage-empty"], event.detail));
  live.on(PROTOCOL.events.joined, () => viewer.watch().catch(() => {}));
  return () => viewer.close();
}

function renderChat(list, messages) {
  if (!messages.length) {
    replace(list, h("li", { class: "empty muted" }, "No messages yet."));
    return;
  }
  replace(list, messages.map((m) => h("li", { class: "message" }, h("strong", {}, m.author || "Anonymous"), " ", m.text)));
  list.scrollTop = list.scrollHeight;
}

export function renderPolls(box, polls, live, { controls } = {}) {
  if (!polls.length) {
    replace(box, h("p", { class: "muted" }, "No polls yet."));
    return;
  }
  replace(box, polls.map((poll) => {
    const total = Object.values(poll.counts || {}).reduce((a, b) => a + b, 0);
    const form = h("form", { class: "poll card-inner" },
      h("fieldset", { disabled: !poll.open || live.state !== STATE.live },
        h("legend", {}, poll.question, poll.open ? "" : " (closed)"),
        poll.options.map((option, index) => h("label", { class: "check" },
          h("input", { type: "radio", name: `poll-${poll.id}`, value: String(index), checked: poll.my_vote === index }),
          ` ${option}`,
          poll.counts ? h("span", { class: "muted" }, ` ${poll.counts[index] || 0} of ${total}`) : null)),
        controls ? null : h("button", { type: "submit" }, "Vote")),
      controls ? controls(poll) : null);
    form.addEventListener("submit", (submit) => {
      submit.preventDefault();
      const choice = form.querySelector("input:checked");
      if (choice) live.send(PROTOCOL.actions.pollVote, { poll_id: poll.id, option: Number(choice.value) }).catch((e) => announce(e.message));
    });
    return form;
  }));
}

// Live speakers' cameras side by side; a screen share takes the large space when present.
export function renderStage(box, empty, tiles) {
  empty.hidden = tiles.length > 0;
  box.classList.toggle("has-screen", tiles.some((t) => t.screen));
  replace(box, tiles.map((tile) => {
    const video = h("video", { autoplay: true, playsinline: true, class: tile.screen ? "tile screen" : "tile" });
    video.srcObject = tile.stream;
    return video;
  }));
}

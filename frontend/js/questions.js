// One rendering of a question list (QuestionView from chat/protocol.py), with the buttons each
// view needs.

import { h, replace } from "./dom.js";

export const STATUS_LABEL = {
  pending: "Waiting for the chair",
  approved: "Approved: everyone can see it",
  rejected: "Not taken up",
  answered: "Answered",
};

export function askerLabel(q) {
  if (!q.asker) return "Anonymous";
  return q.anonymous ? `${q.asker} (anonymous to everyone else)` : q.asker;
}

function statusOf(q) {
  return q.status === "approved" && q.answered ? "answered" : q.status;
}

// actions: (question) => [elements]; editor: (question) => element shown instead of the text.
export function renderQuestions(list, questions, { empty, actions = () => [], showStatus = false, editing = null, editor } = {}) {
  if (!questions.length) {
    replace(list, h("li", { class: "empty muted" }, empty || "No questions yet."));
    return;
  }
  replace(list, questions.map((q) => h("li", { class: `question status-${statusOf(q)}`, dataset: { id: q.id } },
    editing === q.id && editor ? editor(q) : h("p", { class: "question-text" }, q.text),
    h("p", { class: "question-meta" },
      h("span", { class: "asker" }, askerLabel(q)),
      typeof q.votes === "number" && q.status === "approved" ? h("span", {}, ` · ${q.votes} ${q.votes === 1 ? "vote" : "votes"}`) : null,
      q.answered && !showStatus ? h("span", { class: "status status-answered" }, " · Answered") : null,
      showStatus ? h("span", { class: `status status-${statusOf(q)}` }, STATUS_LABEL[statusOf(q)] || q.status) : null),
    editing === q.id ? null : h("div", { class: "question-actions" }, actions(q)),
  )));
}

export function renderPinned(box, question) {
  box.hidden = !question;
  if (!question) return;
  replace(box,
    h("p", { class: "eyebrow" }, "Being answered now"),
    h("p", { class: "pinned-text" }, question.text),
    h("p", { class: "question-meta" }, askerLabel(question)));
}

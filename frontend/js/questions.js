// One rendering of a question list, with the buttons each view needs.

import { h, replace } from "./dom.js";

export const STATUS_LABEL = {
  pending: "Waiting for the chair",
  approved: "Approved",
  rejected: "Not taken up",
  answered: "Answered",
};

// actions: (question) => [button elements]
export function renderQuestions(list, questions, { empty, actions = () => [], showStatus = false } = {}) {
  if (!questions.length) {
    replace(list, h("li", { class: "empty muted" }, empty || "No questions yet."));
    return;
  }
  replace(list, questions.map((q) => h("li", { class: `question status-${q.status}`, dataset: { id: q.id } },
    h("p", { class: "question-text" }, q.text),
    h("p", { class: "question-meta" },
      h("span", {}, q.author || "Anonymous"),
      typeof q.votes === "number" ? h("span", {}, ` · ${q.votes} ${q.votes === 1 ? "vote" : "votes"}`) : null,
      showStatus ? h("span", { class: `status status-${q.status}` }, STATUS_LABEL[q.status] || q.status) : null),
    h("div", { class: "question-actions" }, actions(q)),
  )));
}

export function renderPinned(box, question) {
  box.hidden = !question;
  if (!question) return;
  replace(box,
    h("p", { class: "eyebrow" }, "Being answered now"),
    h("p", { class: "pinned-text" }, question.text),
    h("p", { class: "question-meta" }, question.author || "Anonymous"));
}

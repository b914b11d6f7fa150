// The chat composer of the attendee room and the chair console. A message typed leaves the input
// at once and waits under the chat as "Sending…" until the server has it (LiveSession keeps it
// across a dropped connection and a busy room, and sends it again with the same key); then it is
// in the chat like everyone else's. One that cannot be sent says why, with "Send again".

import { announce, h, replace } from "./dom.js";
import { PROTOCOL, STATE, explain, newKey } from "./live.js";

// An answer within this long is not worth a "Sending…" flash.
const QUIET_MS = 500;

export function mountChatComposer({ live, form, outbox, status }) {
  const input = form.elements.text;
  const items = []; // {text, key, failed: error text or "", shown}
  let note = ""; // said once nothing is waiting (a message held for review)
  let countdown = null;

  const send = (item) => {
    item.failed = "";
    item.shown = item.shown || live.state !== STATE.live;
    if (!item.shown) setTimeout(() => { item.shown = true; render(); }, QUIET_MS);
    render();
    // The same key every time: a message that may have reached the server is never posted twice.
    live.send(PROTOCOL.actions.chatSend, { text: item.text }, { key: item.key }).then((result) => {
      items.splice(items.indexOf(item), 1);
      note = result.held ? "Your message waits for a moderator to review it." : "";
      render();
    }, (error) => {
      item.failed = explain(error);
      item.shown = true;
      render();
    });
  };

  form.addEventListener("submit", (submit) => {
    submit.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    note = "";
    const item = { text, key: newKey(), failed: "", shown: false };
    items.push(item);
    send(item);
  });

  function statusText() {
    const waiting = items.filter((item) => item.shown && !item.failed).length;
    const failed = items.filter((item) => item.failed).length;
    const busy = live.busyUntil - Date.now();
    if (busy > 0) return `The room is very busy — sending again in ${Math.max(1, Math.ceil(busy / 1000))} s`;
    if (waiting && live.state !== STATE.live) {
      return waiting === 1
        ? "Not connected: your message is kept and sent when the connection is back."
        : `Not connected: your ${waiting} messages are kept and sent when the connection is back.`;
    }
    if (waiting) return waiting === 1 ? "Sending…" : `Sending ${waiting} messages…`;
    if (failed) return failed === 1 ? "A message was not sent." : `${failed} messages were not sent.`;
    return note;
  }

  function renderStatus() {
    const text = statusText();
    if (status.textContent !== text) status.textContent = text;
    const busy = live.busyUntil > Date.now();
    if (busy && !countdown) countdown = setInterval(renderStatus, 250);
    if (!busy && countdown) {
      clearInterval(countdown);
      countdown = null;
    }
  }

  function render() {
    const shown = items.filter((item) => item.shown);
    outbox.hidden = shown.length === 0;
    replace(outbox, shown.map((item) => h("li", { class: item.failed ? "message pending failed" : "message pending" },
      h("strong", {}, "You"), " ", h("span", { class: "message-text" }, item.text), " ",
      item.failed
        ? [h("span", { class: "pending-tag" }, `Not sent: ${item.failed}`),
          h("span", { class: "message-actions" },
            h("button", { type: "button", class: "small", "aria-label": `Send again: ${item.text}`,
              onclick: () => { send(item); input.focus(); } }, "Send again"),
            h("button", { type: "button", class: "small secondary", "aria-label": `Remove unsent message: ${item.text}`,
              onclick: () => { items.splice(items.indexOf(item), 1); render(); input.focus(); } }, "Remove"))]
        : h("span", { class: "pending-tag" }, "Sending…"))));
    renderStatus();
  }

  live.addEventListener("state", render);
  live.addEventListener("busy", render);
  render();
  return () => clearInterval(countdown);
}

// "Show older messages", "Show more questions"…: a button that fetches the next page of a part of
// the room (RoomState.loadMore) and is there only while there is more. While it loads it stays
// focusable (aria-disabled, not disabled); afterwards focus stays on it, or, once there is no
// more, moves to the first item it brought.
export function mountHistoryButton({ room, part, button, list, noun, scrollTop = false }) {
  const label = button.textContent;
  const update = () => { button.hidden = !room.hasMore(part); };
  room.on("more", update);
  button.addEventListener("click", async () => {
    if (button.getAttribute("aria-disabled") === "true") return;
    const focused = document.activeElement === button;
    button.setAttribute("aria-disabled", "true");
    button.textContent = "Loading…";
    // A list that announces new arrivals should not read out a page of old ones: the count is said.
    const live = list.getAttribute("aria-live");
    if (live) list.setAttribute("aria-live", "off");
    try {
      const shown = await room.loadMore(part);
      if (scrollTop) list.scrollTop = 0;
      announce(shown.length ? `${shown.length} ${noun(shown.length)} shown.` : `No more ${noun(2)}.`);
      update();
      const lost = document.activeElement === button || document.activeElement === document.body;
      if (button.hidden && focused && lost) {
        const first = shown.length ? list.querySelector(`[data-id="${CSS.escape(shown[0].id)}"]`) : null;
        const target = first || list.querySelector("li");
        if (target) {
          target.tabIndex = -1;
          target.focus();
        }
      }
    } catch (error) {
      announce(explain(error));
    } finally {
      button.removeAttribute("aria-disabled");
      button.textContent = label;
      update();
      if (live) setTimeout(() => list.setAttribute("aria-live", live), 300);
    }
  });
  update();
}

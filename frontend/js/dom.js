// Building page elements without innerHTML, so text from the server is never parsed as markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      el.className = value;
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else if (name in el && typeof value !== "string") {
      el[name] = value;
    } else {
      el.setAttribute(name, value === true ? "" : value);
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

// One polite live region per page tells screen-reader users what just happened.
export function announce(message) {
  let region = document.getElementById("announcer");
  if (!region) {
    region = h("div", { id: "announcer", class: "visually-hidden", "aria-live": "polite" });
    document.body.append(region);
  }
  region.textContent = "";
  setTimeout(() => { region.textContent = message; }, 50);
}

// A page that swaps what it shows (content note, room, "you are registered") says so by moving
// focus to #view-title, a hidden line placed before "Exit this page" (pages/parts/exit.html):
// screen readers read it out, and the next Tab lands on the exit control. Focusing the new view's
// heading instead would leave the exit control behind it in tab order.
export function showView(label) {
  const title = document.getElementById("view-title");
  if (!title) return;
  title.textContent = label;
  title.focus();
}

// Tabs per the ARIA authoring practices: arrow keys move between tabs, Tab moves into the panel.
export function tabs(list) {
  const buttons = $$('[role="tab"]', list);
  // The list may still be in a template's fragment, not yet in the document.
  const panel = (button) => list.getRootNode().getElementById(button.getAttribute("aria-controls"));
  const select = (button, focus = false) => {
    for (const other of buttons) {
      const selected = other === button;
      other.setAttribute("aria-selected", String(selected));
      other.tabIndex = selected ? 0 : -1;
      panel(other).hidden = !selected;
    }
    if (focus) button.focus();
  };
  for (const [index, button] of buttons.entries()) {
    button.addEventListener("click", () => select(button));
    button.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 }[event.key];
      if (event.key === "Home") select(buttons[0], true);
      else if (event.key === "End") select(buttons.at(-1), true);
      else if (step) select(buttons[(index + step + buttons.length) % buttons.length], true);
      else return;
      event.preventDefault();
    });
  }
  select(buttons.find((b) => b.getAttribute("aria-selected") === "true") || buttons[0]);
  return { select: (id) => select(buttons.find((b) => b.id === id)) };
}

// A copy button next to a read-only field: copies, and says so.
export function copyButton(input, label = "Copy") {
  const button = h("button", { type: "button", class: "secondary" }, label);
  button.addEventListener("click", async () => {
    input.select();
    try {
      await navigator.clipboard.writeText(input.value);
    } catch {
      document.execCommand("copy");
    }
    button.textContent = "Copied";
    announce("Link copied");
    setTimeout(() => { button.textContent = label; }, 2000);
  });
  return button;
}

// Clone a <template id=…> and collect its [data-slot] elements by name.
export function fromTemplate(id) {
  const fragment = document.getElementById(id).content.cloneNode(true);
  const slots = {};
  for (const el of fragment.querySelectorAll("[data-slot]")) slots[el.dataset.slot] = el;
  return { fragment, slots };
}

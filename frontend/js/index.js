// The list of published events.

import { api } from "./api.js";
import { h, replace } from "./dom.js";
import { installExit } from "./exit.js";
import { dateOnly } from "./time.js";

installExit();

const list = document.getElementById("events");
try {
  const events = await api("/api/events");
  replace(list, events.length
    ? h("ul", { class: "event-list" }, events.map((event) => h("li", { class: "card event-card" },
        h("h2", {}, h("a", { href: `/e/${encodeURIComponent(event.slug)}` }, event.title)),
        h("p", { class: "meta" }, event.starts_on === event.ends_on
          ? dateOnly(event.starts_on)
          : `${dateOnly(event.starts_on)} to ${dateOnly(event.ends_on)}`),
        h("p", { class: "summary" }, event.description.split("\n")[0]),
      )))
    : h("p", {}, "There are no published events yet."));
} catch (error) {
  replace(list, h("p", { class: "form-error", role: "alert" }, error.message));
}
list.removeAttribute("aria-busy");

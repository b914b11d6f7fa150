// The stage as people see it: live speakers' cameras in a grid, a screen share large when there is
// one, names on every tile, sound played (with an "unmute" control when autoplay is blocked).

import { api } from "./api.js";
import { h, replace } from "./dom.js";
import { MediaElements, Viewer, restartWhenFailed } from "./media.js";
import { PROTOCOL } from "./live.js";

export function presenterNames(session) {
  const names = new Map();
  if (session.chair) names.set(session.chair.id, session.chair.display_name);
  for (const s of session.speakers || []) names.set(s.id, s.display_name);
  return names;
}

// Presenters invited after the page loaded are not in `session`: when the stage shows someone it
// does not know, the agenda is read again (at most every 5 s: a request inside that is deferred to
// its end, not dropped) and `names` and the session's speakers updated; then `onChange()`. Someone
// the agenda does not name either (an organiser on stage) is not asked about again.
// Returns learn(personIds).
export function followPresenterNames(session, names, onChange) {
  let last = -Infinity;
  let pending = null;
  const asked = new Set();
  const unnamed = new Set();
  const refresh = () => {
    pending = null;
    last = Date.now();
    const slug = location.pathname.split("/")[2];
    const these = [...asked];
    asked.clear();
    api(`/api/events/${slug}/agenda`).then((event) => {
      const fresh = event.sessions.find((s) => s.id === session.id);
      if (fresh) {
        session.chair = fresh.chair;
        session.speakers = fresh.speakers;
        for (const [id, name] of presenterNames(fresh)) names.set(id, name);
      }
      for (const id of these) if (!names.has(id)) unnamed.add(id);
      onChange();
    }).catch(() => {});
  };
  return (ids) => {
    const unknown = ids.filter((id) => !names.has(id) && !unnamed.has(id));
    if (!unknown.length) return;
    for (const id of unknown) asked.add(id);
    if (pending) return;
    const wait = last + 5000 - Date.now();
    if (wait <= 0) refresh();
    else pending = setTimeout(refresh, wait);
  };
}

// Watches the stage on every (re)join and keeps `onTracks` told what is received.
export function watchStage(live, onTracks) {
  const viewer = new Viewer(live);
  viewer.addEventListener("tracks", (event) => onTracks(event.detail));
  const offJoin = live.on(PROTOCOL.events.joined, () => viewer.watch().catch(() => {}));
  const offFailed = restartWhenFailed(viewer, live, () => viewer.watch().catch(() => {}));
  const offGone = () => viewer.closePeer();
  live.addEventListener("disconnected", offGone);
  return {
    viewer,
    close() {
      offJoin();
      offFailed();
      live.removeEventListener("disconnected", offGone);
      viewer.close();
    },
  };
}

// Renders the attendee stage into `box` from the received tracks and the public stage view.
export function stageRenderer({ box, empty, sound, session, elements = new MediaElements() }) {
  const names = presenterNames(session);
  const audioBox = h("div", { class: "stage-audio", hidden: true });
  box.after(audioBox);
  const unmute = h("button", { type: "button", class: "unmute", onclick: () => elements.unmute() },
    h("span", { "aria-hidden": "true" }, "🔇 "), "Turn on sound");
  sound.replaceChildren(unmute);
  sound.hidden = true;
  elements.addEventListener("sound", (event) => { sound.hidden = !event.detail; });

  let tracks = [];
  let stage = { live: [], presenters: [], ended: false };
  const learnNames = followPresenterNames(session, names, () => render());
  const render = () => {
    const live = new Set(stage.live);
    const videos = tracks.filter((t) => t.kind === "video" && (live.size === 0 || live.has(t.person_id)));
    learnNames(videos.map((t) => t.person_id));
    elements.audio(audioBox, tracks);
    elements.prune(new Set(videos.map((t) => t.mid)));
    const screen = videos.find((t) => t.source === "screen");
    box.classList.toggle("has-screen", Boolean(screen));
    box.dataset.count = String(videos.length);
    const order = [...videos].sort((a, b) => (b.source === "screen") - (a.source === "screen"));
    replace(box, order.map((t) => {
      const name = names.get(t.person_id) || "Speaker";
      const presenter = stage.presenters.find((p) => p.person_id === t.person_id);
      const audioMuted = presenter && presenter.muted && presenter.muted.audio;
      const dataset = { personId: t.person_id, ...(t.layers ? { layer: `${t.layer}/${t.layers}` } : {}) };
      return h("figure", { class: `tile${t.source === "screen" ? " screen" : ""}`, dataset },
        elements.video(t),
        h("figcaption", {}, t.source === "screen" ? `${name}: screen` : name, audioMuted ? " (muted)" : ""),
        t.reduced ? h("p", { class: "tile-quality", dataset: { slot: "reduced-quality" } },
          "Low bandwidth: reduced quality") : null);
    }));
    if (stage.ended) empty.textContent = "This session's stage has ended. Thank you for watching.";
    else if (!videos.length) empty.textContent = stage.live.length ? "Connecting to the stage…" : "The stage opens when the chair brings the first speaker on.";
    empty.hidden = videos.length > 0;
  };
  return {
    tracks(next) { tracks = next; render(); },
    stage(next) { stage = next || stage; render(); },
    elements,
  };
}

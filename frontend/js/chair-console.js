// The chair console (also for moderators and the event's organiser): moderation queue, green room
// with each speaker's live preview and the stage controls, chat moderation, polls, announcements,
// and a clock against the agenda.

import { chatLine, renderPolls } from "./attendee-room.js";
import { mountChatComposer, mountHistoryButton } from "./composer.js";
import { openCamera, stopStream } from "./devices.js";
import { announce, h, replace } from "./dom.js";
import { PROTOCOL, STATE, explain } from "./live.js";
import { MediaElements, Publisher } from "./media.js";
import { renderPinned, renderQuestions } from "./questions.js";
import { followPresenterNames, presenterNames, watchStage } from "./stage.js";
import { clock, minutes } from "./time.js";

const A = PROTOCOL.actions;

export function mountChairConsole({ session, role, live, room, slots }) {
  const runsStage = role === "chair" || role === "organiser";
  const act = async (type, fields = {}) => {
    try {
      return await live.send(type, fields);
    } catch (error) {
      announce(explain(error));
      slots.status.textContent = explain(error);
      return null;
    }
  };
  const button = (label, onclick, attrs = {}) =>
    h("button", { type: "button", class: "small", disabled: live.state !== STATE.live, onclick, ...attrs }, label);
  if (role === "moderator") {
    slots["role-label"].textContent = "Moderator console";
    // Moderators moderate; the stage is the chair's.
    slots["green-room-card"].remove();
  } else if (role === "organiser") {
    slots["role-label"].textContent = "Chair console (organiser)";
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
    const total = end - start;
    slots["clock-bar"].value = total > 0 ? Math.max(0, Math.min(1, (now - start) / total)) : 0;
  };
  tick();
  const clockTimer = setInterval(tick, 15_000);

  // Questions: the queue with an inline editor, approved ones with answered / pin.
  let editing = null;
  const editor = (q) => {
    const form = h("form", { class: "question-editor stack" },
      h("label", { for: `edit-${q.id}` }, "Edit the question for clarity"),
      h("textarea", { id: `edit-${q.id}`, name: "text", rows: "3", maxlength: "1000", required: true }, q.text),
      h("div", { class: "actions" },
        h("button", { type: "submit", class: "small" }, "Save"),
        h("button", { type: "button", class: "small secondary", onclick: () => { editing = null; renderQuestionsAll(); } }, "Cancel")));
    form.addEventListener("submit", async (submit) => {
      submit.preventDefault();
      const text = form.elements.text.value.trim();
      if (text && text !== q.text && !(await act(A.questionEdit, { question_id: q.id, text }))) return;
      editing = null;
      renderQuestionsAll();
      announce("Question saved.");
    });
    form.addEventListener("keydown", (event) => {
      if (event.key === "Escape") { editing = null; renderQuestionsAll(); }
    });
    return form;
  };
  const startEdit = (q) => {
    editing = q.id;
    renderQuestionsAll();
    const area = document.getElementById(`edit-${q.id}`);
    if (area) { area.focus(); area.select(); }
  };
  const renderQuestionsAll = () => {
    renderQuestions(slots.queue, room.pending(), {
      empty: "No questions waiting.",
      editing,
      editor,
      actions: (q) => [
        button("Approve", () => act(A.questionApprove, { question_id: q.id }), { "aria-label": `Approve: ${q.text}` }),
        button("Edit", () => startEdit(q), { class: "small secondary", "aria-label": `Edit: ${q.text}` }),
        button("Reject", () => act(A.questionReject, { question_id: q.id }), { class: "small secondary", "aria-label": `Reject: ${q.text}` }),
      ],
    });
    // "(50+)" while more wait than the join and the pages so far brought.
    slots["queue-count"].textContent = room.queue.size ? `(${room.queue.size}${room.hasMore("queue") ? "+" : ""})` : "";
    const pinnedId = room.room.pinned_question_id;
    renderQuestions(slots.questions, room.approved(), {
      empty: "None yet.",
      editing,
      editor,
      actions: (q) => [
        button(pinnedId === q.id ? "Unpin" : "Pin", () => act(A.questionPin, { question_id: pinnedId === q.id ? null : q.id }), {
          "aria-pressed": String(pinnedId === q.id), "aria-label": `${pinnedId === q.id ? "Unpin" : "Pin"}: ${q.text}` }),
        q.answered ? null : button("Answered", () => act(A.questionAnswer, { question_id: q.id }), { class: "small secondary", "aria-label": `Mark answered: ${q.text}` }),
        button("Edit", () => startEdit(q), { class: "small secondary", "aria-label": `Edit: ${q.text}` }),
        button("Take down", () => act(A.questionReject, { question_id: q.id }), { class: "small danger", "aria-label": `Take down: ${q.text}` }),
      ],
    });
    renderPinned(slots.pinned, room.pinned());
  };
  room.on("questions", renderQuestionsAll);
  mountHistoryButton({ room, part: "queue", button: slots["more-queue"], list: slots.queue,
    noun: (n) => (n === 1 ? "more waiting question" : "more waiting questions") });
  mountHistoryButton({ room, part: "questions", button: slots["more-questions"], list: slots.questions,
    noun: (n) => (n === 1 ? "more question" : "more questions") });

  // Chat moderation: delete; held messages released or discarded; slow mode and lock.
  const renderChat = () => {
    const held = [...room.held.values()];
    slots["held-card"].hidden = held.length === 0 && !room.hasMore("held");
    replace(slots.held, held.map((m) => chatLine(m, h("span", { class: "message-actions" },
      button("Release", () => act(A.heldRelease, { message_id: m.id }), { "aria-label": `Release message from ${m.author}` }),
      button("Discard", () => act(A.heldDiscard, { message_id: m.id }), { class: "small secondary", "aria-label": `Discard message from ${m.author}` })))));
    if (!room.messages.length) {
      replace(slots.chat, h("li", { class: "empty muted" }, "No messages yet."));
      return;
    }
    const moderated = (m) => m.author_role === "attendee" && m.author_id !== room.you?.person_id;
    // Follows new messages unless the chair has scrolled back (or loaded older ones) to read.
    const atBottom = slots.chat.scrollHeight - slots.chat.scrollTop - slots.chat.clientHeight < 40;
    replace(slots.chat, room.messages.map((m) => chatLine(m, h("span", { class: "message-actions" },
      button("Delete", () => act(A.messageDelete, { message_id: m.id }), { class: "small secondary", "aria-label": `Delete message from ${m.author}` }),
      moderated(m) ? button("Mute 15 min", () => act(A.personMute, { person_id: m.author_id, minutes: 15 }), { class: "small secondary", "aria-label": `Mute ${m.author} for 15 minutes` }) : null,
      moderated(m) ? button("Remove", () => {
        if (confirm(`Remove ${m.author} from this session? They cannot rejoin it.`)) act(A.personRemove, { person_id: m.author_id });
      }, { class: "small danger", "aria-label": `Remove ${m.author} from the session` }) : null))));
    if (atBottom) slots.chat.scrollTop = slots.chat.scrollHeight;
  };
  room.on("chat", renderChat);
  mountHistoryButton({ room, part: "messages", button: slots["older-messages"], list: slots.chat, scrollTop: true,
    noun: (n) => (n === 1 ? "older message" : "older messages") });
  mountHistoryButton({ room, part: "held", button: slots["more-held"], list: slots.held,
    noun: (n) => (n === 1 ? "more held message" : "more held messages") });
  const stopComposer = mountChatComposer({ live, form: slots["chat-form"], outbox: slots["chat-outbox"], status: slots["chat-sending"] });
  const renderRoom = () => {
    slots["slow-mode"].value = String(room.room.slow_mode_seconds || 0);
    if (!slots["slow-mode"].value) {
      slots["slow-mode"].append(h("option", { value: String(room.room.slow_mode_seconds) }, `${room.room.slow_mode_seconds} seconds`));
      slots["slow-mode"].value = String(room.room.slow_mode_seconds);
    }
    slots.lock.checked = Boolean(room.room.locked);
  };
  room.on("room", renderRoom);
  slots["slow-mode"].addEventListener("change", async () => {
    if (await act(A.roomSlowMode, { seconds: Number(slots["slow-mode"].value) })) announce("Slow mode changed.");
  });
  slots.lock.addEventListener("change", async () => {
    if (await act(A.roomLock, { locked: slots.lock.checked })) announce(slots.lock.checked ? "Room locked to new people." : "Room open.");
  });
  room.on("people", (frame) => {
    if (!frame || !frame.type) return;
    const what = { "person.muted": "muted", "person.unmuted": "unmuted", "person.removed": "removed" }[frame.type];
    if (what) slots.status.textContent = `Someone was ${what}.`;
  });

  room.on("watching", () => { slots.watching.textContent = room.watching ?? "–"; });

  // Polls and announcements
  room.on("polls", () => renderPolls(slots.polls, [...room.polls.values()], live, room, {
    controls: (poll) => poll.status === "draft"
      ? button("Open poll", () => act(A.pollOpen, { poll_id: poll.id }), { "aria-label": `Open poll: ${poll.question}` })
      : poll.status === "open"
        ? button("Close poll and show results", () => act(A.pollClose, { poll_id: poll.id }), { "aria-label": `Close poll: ${poll.question}` })
        : null,
  }));
  slots["poll-form"].addEventListener("submit", async (submit) => {
    submit.preventDefault();
    const form = slots["poll-form"];
    const options = form.elements.options.value.split("\n").map((s) => s.trim()).filter(Boolean);
    if (options.length < 2 || options.length > 10) {
      announce("A poll needs between two and ten options.");
      slots.status.textContent = "A poll needs between two and ten options.";
      return;
    }
    if (await act(A.pollCreate, { question: form.elements.question.value.trim(), options })) {
      form.reset();
      announce("Poll created as a draft: open it when you are ready.");
    }
  });
  slots["announce-form"].addEventListener("submit", async (submit) => {
    submit.preventDefault();
    const form = slots["announce-form"];
    if (await act(A.announcementPost, { text: form.elements.text.value.trim() })) {
      form.reset();
      announce("Announcement posted.");
    }
  });

  const cleanups = [];
  if (runsStage) cleanups.push(mountGreenRoomControls({ session, live, room, slots, act, button }));

  const renderAll = () => {
    renderQuestionsAll();
    renderChat();
    renderRoom();
    room.dispatchEvent(new CustomEvent("polls"));
  };
  live.addEventListener("state", renderAll);
  renderAll();
  return () => {
    clearInterval(clockTimer);
    stopComposer();
    for (const cleanup of cleanups) cleanup();
  };
}

// The green room as the chair sees it: every presenter with their live preview (the chair's viewing
// connection receives the whole green room), and the stage controls.
function mountGreenRoomControls({ session, live, room, slots, act, button }) {
  const names = presenterNames(session);
  const learnNames = followPresenterNames(session, names, () => render());
  const elements = new MediaElements();
  elements.mute(); // the chair hears speakers through their own device, not twice
  let tracks = [];
  const watching = watchStage(live, (next) => { tracks = next; render(); });
  const audioBox = h("div", { hidden: true });
  slots.speakers.after(audioBox);

  // The chair's own camera, published like a speaker's so the chair can go live too.
  let ownStream = null;
  const ownVideo = h("video", { muted: true, autoplay: true, playsinline: true, class: "own", "aria-label": "Your camera" });
  const publisher = new Publisher(live);
  const ownButton = slots["own-camera"];
  const you = () => (room.you ? room.you.person_id : null);
  ownButton.addEventListener("click", async () => {
    if (ownStream) {
      stopStream(ownStream);
      ownStream = null;
      live.send(A.stageTakeOff, { person_id: you() }).catch(() => {});
      publisher.setStream(null).catch(() => {});
      ownButton.textContent = "Start my camera";
      render();
      return;
    }
    try {
      ownStream = await openCamera();
    } catch (error) {
      announce(`Camera not available: ${error.message}`);
      return;
    }
    ownButton.textContent = "Stop my camera";
    render();
    if (live.state === STATE.live) publisher.setStream(ownStream).catch((error) => announce(`Publishing failed: ${explain(error)}`));
  });
  // Each new socket gets its own publishing connection (the server closed the old one with it).
  const offJoin = live.on(PROTOCOL.events.joined, () => {
    if (ownStream) publisher.start(ownStream).catch(() => {});
  });
  const offGone = () => publisher.closePeer();
  live.addEventListener("disconnected", offGone);

  const confirmBox = slots["end-confirm"];
  slots["end-session"].addEventListener("click", () => {
    confirmBox.hidden = false;
    confirmBox.querySelector("button").focus();
  });
  confirmBox.querySelector('[data-action="end-yes"]').addEventListener("click", async () => {
    confirmBox.hidden = true;
    if (await act(A.sessionEnd)) announce("The session's stage has ended.");
  });
  confirmBox.querySelector('[data-action="end-no"]').addEventListener("click", () => {
    confirmBox.hidden = true;
    slots["end-session"].focus();
  });

  // Tiles are kept per person and updated in place: a click is never lost to a re-render (the
  // stage changes while the chair works), and focus stays on the button that was pressed.
  const tiles = new Map();
  const presenterOf = (id) => room.greenRoom.presenters.find((p) => p.person_id === id);
  function tileFor(id) {
    let tile = tiles.get(id);
    if (tile) return tile;
    const label = () => names.get(id) || (id === you() ? "You" : "Presenter");
    const mute = (kind) => () => {
      const p = presenterOf(id);
      if (p) act(A.stageMute, { person_id: id, kind, muted: !p.muted[kind] });
    };
    tile = {
      li: h("li", { class: "speaker-tile", dataset: { personId: id } }),
      video: h("div", { class: "tile-video" }),
      screen: h("div", { class: "tile-video tile-screen", hidden: true }),
      name: h("p", { class: "tile-name" }),
      status: h("p", { class: "tile-status" }),
      actions: h("div", { class: "tile-actions" }),
      hint: h("p", { class: "hint" }, "Their controls appear when they open their green room."),
      stage: button("Go live", () => {
        const p = presenterOf(id);
        act(p && p.live ? A.stageTakeOff : A.stageGoLive, { person_id: id });
      }),
      audio: button("Mute audio", mute("audio"), { class: "small secondary" }),
      videoMute: button("Mute video", mute("video"), { class: "small secondary" }),
      label,
    };
    tile.actions.append(tile.stage, tile.audio, tile.videoMute);
    tile.li.append(tile.video, tile.screen, tile.name, tile.status, tile.actions, tile.hint);
    tiles.set(id, tile);
    return tile;
  }
  const setButton = (el, text, attrs) => {
    if (el.textContent !== text) el.textContent = text;
    for (const [name, value] of Object.entries(attrs)) if (el.getAttribute(name) !== value) el.setAttribute(name, value);
    el.disabled = live.state !== STATE.live;
  };
  const setChildren = (el, ...children) => {
    const flat = children.filter(Boolean);
    if (flat.length === el.childNodes.length && flat.every((c, i) => c === el.childNodes[i])) return;
    el.replaceChildren(...flat);
  };

  function render() {
    const green = room.greenRoom;
    const presenters = new Map(green.presenters.map((p) => [p.person_id, p]));
    learnNames([...presenters.keys()].filter((id) => id !== you()));
    const people = [...(session.chair ? [session.chair.id] : []), ...session.speakers.map((s) => s.id)];
    for (const id of presenters.keys()) if (!people.includes(id)) people.push(id);
    const videos = new Map(tracks.filter((t) => t.kind === "video" && t.source === "camera").map((t) => [t.person_id, t]));
    const screens = new Map(tracks.filter((t) => t.kind === "video" && t.source === "screen").map((t) => [t.person_id, t]));
    elements.audio(audioBox, tracks);
    elements.prune(new Set([...videos.values(), ...screens.values()].map((t) => t.mid)));
    const items = people.map((id) => {
      const tile = tileFor(id);
      const p = presenters.get(id);
      const name = tile.label();
      const isMe = id === you();
      const isLive = Boolean(p && p.live);
      const muted = (p && p.muted) || { audio: false, video: false };
      let status = isMe && !ownStream ? "You: start your camera to appear here" : "Not here yet";
      if (p && !p.connected) status = isLive ? "Live, reconnecting…" : "Reconnecting…";
      else if (p) status = isLive ? "Live on stage" : "In the green room";
      const screen = screens.get(id);
      tile.li.className = `speaker-tile${isLive ? " is-live" : ""}${p ? "" : " absent"}`;
      let preview;
      if (isMe && ownStream) {
        if (ownVideo.srcObject !== ownStream) ownVideo.srcObject = ownStream;
        preview = ownVideo;
      } else if (videos.has(id)) {
        preview = elements.video(videos.get(id));
      } else {
        tile.initials = tile.initials || h("span", { "aria-hidden": "true" }, initials(name));
        preview = tile.initials;
      }
      tile.badge = tile.badge || h("span", { class: "live-badge" }, "LIVE");
      setChildren(tile.video, preview, isLive ? tile.badge : null);
      tile.screen.hidden = !screen;
      setChildren(tile.screen, screen ? elements.video(screen) : null);
      tile.name.replaceChildren(h("strong", {}, name), session.chair && id === session.chair.id ? " (chair)" : "");
      tile.status.textContent = [status, muted.audio ? "sound off for attendees" : "", muted.video ? "video off for attendees" : "",
        screen ? "sharing screen" : ""].filter(Boolean).join(" · ");
      tile.actions.hidden = !p;
      tile.hint.hidden = Boolean(p) || isMe;
      setButton(tile.stage, isLive ? "Take off stage" : "Go live", {
        class: isLive ? "small secondary" : "small", "aria-label": isLive ? `Take ${name} off stage` : `Put ${name} live` });
      setButton(tile.audio, muted.audio ? "Unmute audio" : "Mute audio", {
        "aria-pressed": String(muted.audio), "aria-label": `${muted.audio ? "Unmute" : "Mute"} ${name}'s audio` });
      setButton(tile.videoMute, muted.video ? "Show video" : "Mute video", {
        "aria-pressed": String(muted.video), "aria-label": `${muted.video ? "Show" : "Mute"} ${name}'s video` });
      return tile.li;
    });
    setChildren(slots.speakers, ...items);
    const live = room.stage.live.length;
    slots["stage-summary"].textContent = room.stage.ended
      ? "The session's stage has ended."
      : live ? `${live} on stage now.` : "Nobody is on stage: attendees see a waiting screen.";
  }
  room.on("stage", render);
  live.addEventListener("state", render);
  render();
  return () => {
    offJoin();
    live.removeEventListener("disconnected", offGone);
    watching.close();
    publisher.close();
    stopStream(ownStream);
  };
}

function initials(name) {
  return name.split(/\s+/).filter((w) => /^[A-Z]/.test(w) && !/^(Dr|MP|Professor|Prof)$/.test(w)).slice(0, 2).map((w) => w[0]).join("");
}

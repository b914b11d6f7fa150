// The speaker's green room: camera and microphone preview with device choice, a level meter,
// screen share, an unmistakable "you are live" indicator (from `stage.changed`), the other
// presenters, and approved questions by votes.

import { levelMeter, listDevices, openCamera, shareScreen, stopStream } from "./devices.js";
import { announce, h, replace } from "./dom.js";
import { PROTOCOL, explain } from "./live.js";
import { Publisher, restartWhenFailed } from "./media.js";
import { renderPinned, renderQuestions } from "./questions.js";

export function mountGreenRoom({ live, room, slots }) {
  let stream = null;
  let screen = null;
  let stopMeter = () => {};
  const publisher = new Publisher(live);
  const buttons = Object.fromEntries(
    [...slots.preview.closest(".preview").querySelectorAll("[data-action]")].map((b) => [b.dataset.action, b]),
  );
  let joined = false;
  let joins = 0; // successful joins of the live socket
  let publishedOn = 0; // the join whose socket carries our publishing connection

  publisher.addEventListener("state", (event) => {
    const text = { connected: "Your camera reaches Dais.", connecting: "Connecting your camera to Dais…", failed: "Your camera's connection to Dais failed; retrying when the connection is back.", disconnected: "Your camera's connection to Dais dropped…" }[event.detail];
    if (text) slots["publish-state"].textContent = text;
    slots["publish-state"].dataset.state = event.detail;
  });
  // Which layers of the camera go out (the server pauses those nobody watches): for support.
  publisher.addEventListener("layers", (event) => {
    slots["publish-state"].dataset.cameraLayers = event.detail.join(" ");
  });

  // A publishing connection that fails while the socket stays up starts again (the server drops a
  // failed connection, so the new offer makes a new one).
  restartWhenFailed(publisher, live, () => {
    publishedOn = 0;
    publish();
  });

  // One publishing connection per socket: started once the socket has joined and the camera runs.
  function publish() {
    if (!stream || !joined || publishedOn === joins) return;
    publishedOn = joins;
    publisher.start(stream, screen).catch((error) => {
      slots["device-error"].textContent = `Your camera could not be connected to Dais: ${explain(error)}`;
    });
  }

  async function start({ videoId, audioId } = {}) {
    const previous = stream;
    try {
      stream = await openCamera({ videoId, audioId });
    } catch (error) {
      slots["preview-empty"].textContent = "Your camera or microphone could not be started.";
      slots["device-error"].textContent = `${error.name === "NotAllowedError" ? "Permission was refused. Allow camera and microphone for this site, then reload." : error.message}`;
      return;
    }
    stopStream(previous);
    stopMeter();
    slots.preview.srcObject = stream;
    slots["preview-empty"].hidden = true;
    slots["device-error"].textContent = "";
    stopMeter = levelMeter(stream, (level) => { slots.level.value = level; });
    await fillDevices();
    if (publisher.pc) {
      // A device change: swap the tracks on the live connection, no renegotiation.
      await publisher.replaceTrack("camera", stream.getVideoTracks()[0]);
      await publisher.replaceTrack("mic", stream.getAudioTracks()[0]);
      applyToggles();
    } else {
      publish();
    }
  }

  async function fillDevices() {
    const { cameras, microphones } = await listDevices();
    const current = (kind) => {
      const track = kind === "video" ? stream.getVideoTracks()[0] : stream.getAudioTracks()[0];
      return track ? track.getSettings().deviceId : "";
    };
    const fill = (select, devices, kind, noun) => replace(select, devices.map((d, i) =>
      h("option", { value: d.deviceId, selected: d.deviceId === current(kind) }, d.label || `${noun} ${i + 1}`)));
    fill(slots.cameras, cameras, "video", "Camera");
    fill(slots.microphones, microphones, "audio", "Microphone");
  }

  slots.cameras.addEventListener("change", () => start({ videoId: slots.cameras.value, audioId: slots.microphones.value }));
  slots.microphones.addEventListener("change", () => start({ videoId: slots.cameras.value, audioId: slots.microphones.value }));

  // Camera off / microphone muted by the speaker: the track is disabled (black frames, silence).
  const off = { video: false, audio: false };
  const applyToggles = () => {
    if (!stream) return;
    for (const track of stream.getVideoTracks()) track.enabled = !off.video;
    for (const track of stream.getAudioTracks()) track.enabled = !off.audio;
  };
  const toggle = (button, kind, onLabel, offLabel) => {
    button.addEventListener("click", () => {
      off[kind] = !off[kind];
      applyToggles();
      button.setAttribute("aria-pressed", String(off[kind]));
      button.textContent = off[kind] ? offLabel : onLabel;
      announce(off[kind] ? `${kind === "video" ? "Camera" : "Microphone"} off` : `${kind === "video" ? "Camera" : "Microphone"} on`);
    });
  };
  toggle(buttons["toggle-camera"], "video", "Turn camera off", "Turn camera on");
  toggle(buttons["toggle-mic"], "audio", "Mute microphone", "Unmute microphone");

  const screenButton = buttons["share-screen"];
  const screenStopped = () => {
    stopStream(screen);
    screen = null;
    slots["screen-preview"].srcObject = null;
    slots["screen-box"].hidden = true;
    screenButton.setAttribute("aria-pressed", "false");
    screenButton.textContent = "Share screen";
    publisher.setScreen(null).catch(() => {});
    announce("Screen sharing stopped");
  };
  screenButton.addEventListener("click", async () => {
    if (screen) {
      screenStopped();
      return;
    }
    try {
      screen = await shareScreen();
    } catch {
      return; // the person cancelled the browser's picker
    }
    screenButton.setAttribute("aria-pressed", "true");
    screenButton.textContent = "Stop sharing";
    slots["screen-preview"].srcObject = screen;
    slots["screen-box"].hidden = false;
    screen.getVideoTracks()[0].addEventListener("ended", () => { if (screen) screenStopped(); });
    if (publisher.pc) publisher.setScreen(screen).catch((error) => announce(`Screen share failed: ${explain(error)}`));
    announce("Sharing your screen");
  });

  // Publishing starts once the live socket has joined, again after every reconnect (the server
  // keeps the speaker's place on stage for a while); the chair decides when attendees see it.
  live.on(PROTOCOL.events.joined, () => {
    joined = true;
    joins += 1;
    publish();
  });
  live.addEventListener("disconnected", () => {
    joined = false;
    publisher.closePeer();
  });

  const showOnAir = () => {
    const me = room.you && room.you.person_id;
    const mine = room.greenRoom.presenters.find((p) => p.person_id === me);
    const isLive = Boolean(me && room.stage.live.includes(me));
    slots["on-air"].dataset.live = String(isLive);
    let text = isLive
      ? "You are live. Attendees can see and hear you."
      : "You are in the green room. Attendees cannot see or hear you.";
    if (room.stage.ended) text = "The session has ended. Attendees can no longer see or hear you.";
    if (isLive && mine && mine.muted.audio) text += " The chair has turned your sound off for attendees.";
    if (isLive && mine && mine.muted.video) text += " The chair has turned your video off for attendees.";
    slots["on-air-text"].textContent = text;
    document.title = `${isLive ? "● LIVE · " : ""}${document.title.replace(/^● LIVE · /, "")}`;
  };
  room.on("stage", showOnAir);

  const renderAll = () => {
    renderQuestions(slots.questions, room.approved(), { empty: "No approved questions yet." });
    renderPinned(slots.pinned, room.pinned());
  };
  room.on("questions", renderAll);

  start();
  return () => {
    stopMeter();
    stopStream(stream);
    stopStream(screen);
    publisher.close();
  };
}

// The speaker's green room: camera and microphone preview with device choice, a level meter,
// screen share, an unmistakable "you are live" indicator, and approved questions by votes.

import { levelMeter, listDevices, openCamera, shareScreen, stopStream } from "./devices.js";
import { announce, h, replace } from "./dom.js";
import { PROTOCOL } from "./live.js";
import { Publisher } from "./media.js";
import { renderPinned, renderQuestions } from "./questions.js";

export function mountGreenRoom({ person, live, room, slots }) {
  let stream = null;
  let screen = null;
  let stopMeter = () => {};
  const publisher = new Publisher(live);
  const buttons = Object.fromEntries(
    [...slots.preview.closest(".preview").querySelectorAll("[data-action]")].map((b) => [b.dataset.action, b]),
  );

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
      await publisher.replaceTrack("camera", stream.getVideoTracks()[0] || null);
      await publisher.replaceTrack("mic", stream.getAudioTracks()[0] || null);
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

  const toggle = (button, kind, onLabel, offLabel) => {
    button.addEventListener("click", () => {
      if (!stream) return;
      const tracks = kind === "video" ? stream.getVideoTracks() : stream.getAudioTracks();
      const off = button.getAttribute("aria-pressed") !== "true";
      for (const track of tracks) track.enabled = !off;
      button.setAttribute("aria-pressed", String(off));
      button.textContent = off ? offLabel : onLabel;
      announce(off ? `${kind === "video" ? "Camera" : "Microphone"} off` : `${kind === "video" ? "Camera" : "Microphone"} on`);
    });
  };
  toggle(buttons["toggle-camera"], "video", "Turn camera off", "Turn camera on");
  toggle(buttons["toggle-mic"], "audio", "Mute microphone", "Unmute microphone");

  buttons["share-screen"].addEventListener("click", async () => {
    const button = buttons["share-screen"];
    if (screen) {
      stopStream(screen);
      screen = null;
      button.setAttribute("aria-pressed", "false");
      button.textContent = "Share screen";
      return;
    }
    try {
      screen = await shareScreen();
    } catch {
      return; // the person cancelled the browser's picker
    }
    button.setAttribute("aria-pressed", "true");
    button.textContent = "Stop sharing";
    screen.getVideoTracks()[0].addEventListener("ended", () => {
      screen = null;
      button.setAttribute("aria-pressed", "false");
      button.textContent = "Share screen";
    });
    publisher.addScreenTrack(screen);
    announce("Sharing your screen");
  });

  // Publishing starts once the live socket has joined; the chair decides when attendees see it.
  live.on(PROTOCOL.events.joined, () => {
    if (stream) publisher.publish(stream, screen).catch((error) => { slots["device-error"].textContent = `Publishing failed: ${error.message}`; });
  });

  const showOnAir = () => {
    const isLive = Boolean(person && room.stage.live.includes(person.id));
    slots["on-air"].dataset.live = String(isLive);
    slots["on-air-text"].textContent = isLive
      ? "You are live. Attendees can see and hear you."
      : "You are in the green room. Attendees cannot see or hear you.";
  };
  room.on("stage", showOnAir);

  const renderAll = () => {
    renderQuestions(slots.questions, room.approved(), { empty: "No approved questions yet." });
    renderPinned(slots.pinned, room.pinned);
  };
  room.on("questions", renderAll);
  room.on("pinned", renderAll);

  start();
  return () => {
    stopMeter();
    stopStream(stream);
    stopStream(screen);
    publisher.close();
  };
}

// WebRTC through the server only: a presenter publishes with an offer to the Dais media server; a
// viewer (attendee, chair, fellow speaker) watches with an offer from the server. Signalling rides
// on the live socket (live.js, names from chat/protocol.py); there is no peer-to-peer path.
//
// No trickle ICE: every SDP is sent once ICE gathering is complete, candidates inside.

import { PROTOCOL, STATE } from "./live.js";

const A = PROTOCOL.actions;
const E = PROTOCOL.events;

// The camera goes out as three simulcast layers, lowest first (the server ranks them in this
// order, and gives each attendee the best its link carries: streaming/simulcast.py). A browser
// that cannot (or a camera too small for three) sends fewer; the server takes what comes.
// How often an attendee's page asks which layer it gets (for the "Low bandwidth" label).
const QUALITY_EVERY_MS = 4000;
const QUALITY_IDLE_MS = 8000;
const CAMERA_LAYERS = [
  { rid: "q", scaleResolutionDownBy: 4, maxBitrate: 200000 },
  { rid: "h", scaleResolutionDownBy: 2, maxBitrate: 600000 },
  { rid: "f", scaleResolutionDownBy: 1, maxBitrate: 1800000 },
];

// Publishing: everything on one transport. Viewing: the server offers, and its BUNDLE group decides;
// "balanced" because its first offer has no m-line at all when nobody is on stage yet, which
// Chromium refuses under max-bundle ("max-bundle configured but ... no BUNDLE group").
function newPeer(bundlePolicy = "max-bundle") {
  return new RTCPeerConnection({ iceServers: [], bundlePolicy, rtcpMuxPolicy: "require" });
}

// Resolves once the local description holds every candidate (or after `ms`, with what it has).
export function gathered(pc, ms = 4000) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState !== "complete") return;
      pc.removeEventListener("icegatheringstatechange", done);
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      pc.removeEventListener("icegatheringstatechange", done);
      resolve();
    }, ms);
    pc.addEventListener("icegatheringstatechange", done);
  });
}

// A screen share goes out as one layer at full resolution and a low frame rate: slides and text
// stay sharp (the encoder is told the content is detail, and to drop frames, never resolution,
// when its link or CPU is short), and a page of text needs few frames a second.
const SCREEN_LAYER = { maxFramerate: 5, maxBitrate: 1500000 };

function addScreen(pc, track, screen) {
  track.contentHint = "detail";
  const transceiver = pc.addTransceiver(track, { direction: "sendonly", streams: [screen], sendEncodings: [SCREEN_LAYER] });
  const parameters = transceiver.sender.getParameters();
  parameters.degradationPreference = "maintain-resolution";
  transceiver.sender.setParameters(parameters).catch((error) => log("screen share settings", error));
  return transceiver;
}

function log(what, error) {
  // Visible in the console (and to the browser tests, which collect console errors).
  console.error(`[dais media] ${what}: ${error && (error.message || error)}`);
}

// Publishes camera and microphone (and a screen as a second video) to the server. One peer
// connection per live socket: sharing or stopping the screen renegotiates it with `media.publish`.
export class Publisher extends EventTarget {
  constructor(live) {
    super();
    this.live = live;
    this.pc = null;
    this.peerId = null;
    // Dynacast: the server says which layers of the camera anyone watches; the others pause.
    this.offLayers = live.on(E.mediaLayers, (frame) => {
      this.queue(() => this.sendLayers(frame));
    });
    this.transceivers = new Map(); // "mic" | "camera" | "screen" -> RTCRtpTransceiver
    this.mayPublish = null;
    this.busy = Promise.resolve();
  }

  // Serialise negotiations: a second one waits for the first.
  queue(step) {
    const next = this.busy.then(step, step);
    this.busy = next.catch(() => {});
    return next;
  }

  // (Re)start publishing on the current socket: a fresh peer connection.
  start(stream, screen = null) {
    return this.queue(async () => {
      this.closePeer();
      const pc = newPeer();
      this.pc = pc;
      const audio = stream && stream.getAudioTracks()[0];
      const video = stream && stream.getVideoTracks()[0];
      // Order matters to the server: first audio is the mic, first video the camera, second the screen.
      this.transceivers.set("mic", pc.addTransceiver(audio || "audio", { direction: audio ? "sendonly" : "inactive", streams: stream ? [stream] : [] }));
      this.transceivers.set("camera", pc.addTransceiver(video || "video", { direction: video ? "sendonly" : "inactive", streams: stream ? [stream] : [], sendEncodings: CAMERA_LAYERS }));
      const screenTrack = screen && screen.getVideoTracks()[0];
      if (screenTrack) this.transceivers.set("screen", addScreen(pc, screenTrack, screen));
      pc.addEventListener("connectionstatechange", () => {
        this.dispatchEvent(new CustomEvent("state", { detail: pc.connectionState }));
      });
      await this.negotiate(pc);
    });
  }

  async negotiate(pc) {
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    if (this.pc !== pc) return;
    const result = await this.live.send(A.mediaPublish, { sdp: pc.localDescription.sdp });
    if (this.pc !== pc) return;
    this.mayPublish = result.may_publish;
    this.peerId = result.peer_id;
    try {
      await pc.setRemoteDescription({ type: "answer", sdp: result.sdp });
    } catch (error) {
      log("publish answer refused", error);
      throw error;
    }
    this.dispatchEvent(new CustomEvent("published", { detail: result }));
  }

  // Start, change or stop (stream = null) the camera and microphone on this socket's connection,
  // by renegotiating it. (A new connection on the same socket, with new ICE credentials, replaces
  // the old one on the server: that is only for restarting a failed one.)
  setStream(stream) {
    if (!this.pc) return stream ? this.start(stream) : Promise.resolve();
    return this.queue(async () => {
      const pc = this.pc;
      if (!pc) return;
      for (const [source, track] of [["mic", stream && stream.getAudioTracks()[0]], ["camera", stream && stream.getVideoTracks()[0]]]) {
        const transceiver = this.transceivers.get(source);
        if (!transceiver) continue;
        await transceiver.sender.replaceTrack(track || null);
        if (stream) transceiver.sender.setStreams(stream);
        transceiver.direction = track ? "sendonly" : "inactive";
      }
      await this.negotiate(pc);
    });
  }

  // Add (or replace) the screen share as the second video, or stop it (screen = null).
  setScreen(screen) {
    return this.queue(async () => {
      const pc = this.pc;
      if (!pc) return;
      const track = screen && screen.getVideoTracks()[0];
      let transceiver = this.transceivers.get("screen");
      if (track) {
        if (transceiver) {
          track.contentHint = "detail";
          await transceiver.sender.replaceTrack(track);
          transceiver.direction = "sendonly";
        } else {
          transceiver = addScreen(pc, track, screen);
          this.transceivers.set("screen", transceiver);
        }
      } else if (transceiver) {
        await transceiver.sender.replaceTrack(null);
        transceiver.direction = "inactive";
      } else {
        return;
      }
      await this.negotiate(pc);
    });
  }

  // Send the layers (rids) in `active` of the `label` video, and pause the others.
  async sendLayers({ peer_id, label, active }) {
    const transceiver = this.transceivers.get(label);
    if (!this.pc || peer_id !== this.peerId || !transceiver) return;
    const sender = transceiver.sender;
    const parameters = sender.getParameters();
    if (!parameters.encodings || parameters.encodings.length < 2) return;
    let changed = false;
    for (const encoding of parameters.encodings) {
      const on = active.includes(encoding.rid);
      if (encoding.active !== on) {
        encoding.active = on;
        changed = true;
      }
    }
    if (!changed) return;
    try {
      await sender.setParameters(parameters);
    } catch (error) {
      log("pausing layers", error);
      return;
    }
    const sent = parameters.encodings.filter((encoding) => encoding.active).map((encoding) => encoding.rid);
    this.dispatchEvent(new CustomEvent("layers", { detail: sent }));
  }

  // Swap a device without renegotiating.
  async replaceTrack(source, track) {
    const transceiver = this.transceivers.get(source);
    if (transceiver) await transceiver.sender.replaceTrack(track || null);
  }

  closePeer() {
    if (this.pc) this.pc.close();
    this.pc = null;
    this.transceivers.clear();
  }

  close() {
    this.offLayers();
    this.closePeer();
  }
}

// Restarts a media connection that failed (the network, or the server process hosting the
// session's stage went away) while the live socket stays up: `restart()` 2 s after "failed", or
// after 5 s still "disconnected", backing off to 30 s while it keeps failing; a connection that
// gets through resets the wait. `target` has the connection as `pc`. Returns a stop().
export function restartWhenFailed(target, live, restart) {
  let timer = null;
  let wait = 2000;
  const onState = (event) => {
    const state = event.detail;
    if (state === "connected") {
      wait = 2000;
      clearTimeout(timer);
      timer = null;
      return;
    }
    if ((state !== "failed" && state !== "disconnected") || timer) return;
    timer = setTimeout(() => {
      timer = null;
      const pc = target.pc;
      if (live.state === STATE.live && (!pc || pc.connectionState !== "connected")) restart();
    }, state === "failed" ? wait : Math.max(wait, 5000));
    wait = Math.min(wait * 2, 30000);
  };
  target.addEventListener("state", onState);
  return () => {
    clearTimeout(timer);
    target.removeEventListener("state", onState);
  };
}

// Receives the stage from the server: tracks come and go as the stage changes, each labelled with
// whose it is (`tracks`: mid -> person_id, source mic/camera/screen).
export class Viewer extends EventTarget {
  constructor(live) {
    super();
    this.live = live;
    this.pc = null;
    this.peerId = null;
    this.layout = []; // [{mid, kind, person_id, source, track_id}]
    this.streams = new Map(); // mid -> MediaStream holding that m-line's receiving track
    this.busy = Promise.resolve();
    this.generation = 0;
    this.audioOnly = false; // "Audio only": the server offers the speakers' sound and no video
    // mid -> {layer, layers, reduced}: which layer of a speaker's camera this page gets (asked
    // every few seconds: the server picks the best its link carries, see streaming/simulcast.py).
    this.quality = new Map();
    this.qualityTimer = null;
    this.off = live.on(E.mediaOffered, (frame) => {
      if (frame.peer_id !== this.peerId) return;
      const generation = this.generation;
      this.queue(() => this.accept(frame, generation));
    });
  }

  queue(step) {
    const next = this.busy.then(step, step);
    this.busy = next.catch((error) => {
      log("answering the server's offer failed", error);
      this.dispatchEvent(new CustomEvent("error", { detail: error }));
    });
    return next;
  }

  // Start watching on the current socket (again after a reconnect: the server closed the old one).
  watch() {
    const generation = ++this.generation;
    return this.queue(async () => {
      this.closePeer();
      const offer = await this.live.send(A.mediaWatch, this.audioOnly ? { audio_only: true } : {});
      if (generation !== this.generation) return;
      const pc = newPeer("balanced");
      this.pc = pc;
      this.peerId = offer.peer_id;
      pc.addEventListener("track", ({ track, transceiver }) => {
        this.streams.set(transceiver.mid, new MediaStream([track]));
      });
      pc.addEventListener("connectionstatechange", () => {
        this.dispatchEvent(new CustomEvent("state", { detail: pc.connectionState }));
      });
      await this.accept(offer, generation);
    });
  }

  // Ask which layer of each video this page gets, now and every QUALITY_EVERY_MS while watching
  // (every QUALITY_IDLE_MS while no video comes in layers: a stage of one-layer videos, or one
  // whose layers have not started yet), and again after each new offer.
  askQuality(generation) {
    clearTimeout(this.qualityTimer);
    if (generation !== this.generation || !this.pc) return;
    this.qualityTimer = setTimeout(() => this.askQuality(generation), QUALITY_EVERY_MS);
    if (this.audioOnly || !this.layout.some((t) => t.kind === "video")) return;
    this.live.send(A.mediaQuality, {}).then(({ videos }) => {
      if (generation !== this.generation) return;
      if (!videos.length) {
        clearTimeout(this.qualityTimer);
        this.qualityTimer = setTimeout(() => this.askQuality(generation), QUALITY_IDLE_MS);
      }
      const next = new Map(videos.map((v) => [v.mid, v]));
      const key = (map) => JSON.stringify([...map].map(([mid, v]) => [mid, v.layer, v.layers, v.reduced]));
      if (key(next) === key(this.quality)) return;
      this.quality = next;
      this.emit();
    }).catch(() => {});
  }

  // Switch to or from audio only: watch again (the server replaces this socket's connection).
  setAudioOnly(audioOnly) {
    this.audioOnly = audioOnly;
    return this.watch();
  }

  async accept({ peer_id: peerId, sdp, tracks }, generation) {
    const pc = this.pc;
    if (!pc || generation !== this.generation || peerId !== this.peerId) return;
    try {
      await pc.setRemoteDescription({ type: "offer", sdp });
    } catch (error) {
      log("setRemoteDescription(server offer) failed", error);
      throw error;
    }
    await pc.setLocalDescription(await pc.createAnswer());
    await gathered(pc);
    if (this.pc !== pc) return;
    this.layout = tracks || [];
    this.emit();
    await this.live.send(A.mediaAnswer, { peer_id: peerId, sdp: pc.localDescription.sdp });
    this.askQuality(generation);
  }

  // What is being received now: one entry per labelled m-line with its track.
  current() {
    if (!this.pc) return [];
    const byMid = new Map(this.pc.getTransceivers().map((t) => [t.mid, t]));
    return this.layout.flatMap((info) => {
      const transceiver = byMid.get(info.mid);
      if (!transceiver) return [];
      let stream = this.streams.get(info.mid);
      if (!stream || stream.getTracks()[0] !== transceiver.receiver.track) {
        stream = new MediaStream([transceiver.receiver.track]);
        this.streams.set(info.mid, stream);
      }
      const quality = this.quality.get(info.mid);
      const layers = quality ? { layer: quality.layer, layers: quality.layers, reduced: quality.reduced } : { reduced: false };
      return [{ ...info, stream, track: transceiver.receiver.track, ...layers }];
    });
  }

  emit() {
    this.dispatchEvent(new CustomEvent("tracks", { detail: this.current() }));
  }

  closePeer() {
    if (this.pc) this.pc.close();
    clearTimeout(this.qualityTimer);
    this.quality = new Map();
    this.pc = null;
    this.peerId = null;
    this.layout = [];
    this.streams.clear();
    this.emit();
  }

  close() {
    this.generation += 1;
    this.closePeer();
    this.off();
  }
}

// Keeps <video>/<audio> elements for received tracks, one per m-line, reused across renegotiations
// (no flicker when the stage changes), and handles autoplay: sound starts muted with an "unmute"
// control if the browser refuses to play it without a click.
export class MediaElements extends EventTarget {
  constructor() {
    super();
    this.videos = new Map(); // mid -> <video>
    this.audios = new Map(); // mid -> <audio>
    this.soundBlocked = false;
    this.soundWanted = true;
  }

  video(entry) {
    let video = this.videos.get(entry.mid);
    if (!video) {
      video = document.createElement("video");
      video.autoplay = true;
      video.playsInline = true;
      video.muted = true; // sound comes from the <audio> elements
      this.videos.set(entry.mid, video);
    }
    if (video.srcObject !== entry.stream) {
      video.srcObject = entry.stream;
      video.play().catch(() => {});
    }
    video.dataset.personId = entry.person_id;
    video.dataset.source = entry.source;
    return video;
  }

  // Plays every received mic track (hidden <audio> elements inside `box`).
  audio(box, entries) {
    const keep = new Set();
    for (const entry of entries) {
      if (entry.kind !== "audio") continue;
      keep.add(entry.mid);
      let audio = this.audios.get(entry.mid);
      if (!audio) {
        audio = document.createElement("audio");
        audio.autoplay = true;
        this.audios.set(entry.mid, audio);
        box.append(audio);
      }
      audio.dataset.personId = entry.person_id;
      if (audio.srcObject !== entry.stream) {
        audio.srcObject = entry.stream;
        this.play(audio);
      }
    }
    for (const [mid, audio] of this.audios) {
      if (!keep.has(mid)) {
        audio.srcObject = null;
        audio.remove();
        this.audios.delete(mid);
      }
    }
  }

  play(audio) {
    audio.muted = !this.soundWanted;
    audio.play().then(() => this.setBlocked(false)).catch((error) => {
      if (error && error.name === "NotAllowedError") {
        // Autoplay policy: play muted until the person asks for sound.
        audio.muted = true;
        audio.play().catch(() => {});
        this.setBlocked(true);
      }
    });
  }

  setBlocked(blocked) {
    if (this.soundBlocked === blocked) return;
    this.soundBlocked = blocked;
    this.dispatchEvent(new CustomEvent("sound", { detail: blocked }));
  }

  // From a click: the browser now allows sound.
  unmute() {
    this.soundWanted = true;
    for (const audio of this.audios.values()) {
      audio.muted = false;
      audio.play().catch(() => {});
    }
    this.setBlocked(false);
  }

  mute() {
    this.soundWanted = false;
    for (const audio of this.audios.values()) audio.muted = true;
  }

  prune(mids) {
    for (const [mid, video] of this.videos) {
      if (!mids.has(mid)) {
        video.srcObject = null;
        video.remove();
        this.videos.delete(mid);
      }
    }
  }
}

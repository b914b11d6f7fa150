// WebRTC through the server only: a speaker publishes with an offer to the server; a viewer
// (attendee, chair, fellow speaker) watches with an offer from the server. Signalling rides on the
// live socket (live.js). There is no peer-to-peer path: the only peer is the Dais media server.
//
// PHASE 2: align the names in SIGNAL with streaming/'s signalling messages.

export const SIGNAL = {
  // Publisher -> server actions (replies via live.js's ok/error with the request id).
  publishOffer: "media.publish", // {sdp} -> ok {sdp: answer}
  publishStop: "media.unpublish", // {}
  // Viewer: ask to watch; the server then pushes an offer.
  watch: "media.watch", // {} -> server pushes `offered`
  watchAnswer: "media.answer", // {pc_id, sdp}
  // Both directions: trickled ICE candidates (host candidates of the server only).
  candidate: "media.candidate", // {pc_id, candidate, sdp_mid, sdp_mline_index}
  // Pushed by the server.
  offered: "media.offered", // {pc_id, sdp}
  candidateAdded: "media.candidate_added", // {pc_id, candidate, sdp_mid, sdp_mline_index}
  tracksChanged: "media.tracks_changed", // {tracks: [{mid, participant_id, kind, source: "camera"|"screen"}]}
  keyframeWanted: "media.keyframe_wanted", // to publishers; browsers answer PLI themselves
};

// ICE servers come from the server (settings.ice_servers) in the `joined` frame, if any.
function peer(iceServers = []) {
  return new RTCPeerConnection({ iceServers, bundlePolicy: "max-bundle", rtcpMuxPolicy: "require" });
}

function trickle(pc, live, pcId) {
  pc.addEventListener("icecandidate", ({ candidate }) => {
    if (!candidate) return;
    live.send(SIGNAL.candidate, {
      pc_id: pcId,
      candidate: candidate.candidate,
      sdp_mid: candidate.sdpMid,
      sdp_mline_index: candidate.sdpMLineIndex,
    }).catch(() => {});
  });
  return live.on(SIGNAL.candidateAdded, (frame) => {
    if (frame.pc_id !== pcId) return;
    pc.addIceCandidate({ candidate: frame.candidate, sdpMid: frame.sdp_mid, sdpMLineIndex: frame.sdp_mline_index })
      .catch(() => {});
  });
}

// Publishes a camera/microphone stream (and optionally a screen track) to the server.
export class Publisher extends EventTarget {
  constructor(live, { iceServers } = {}) {
    super();
    this.live = live;
    this.iceServers = iceServers;
    this.pc = null;
    this.senders = new Map(); // "camera" | "mic" | "screen" -> RTCRtpSender
  }

  async publish(stream, screen = null) {
    this.close();
    const pc = peer(this.iceServers);
    this.pc = pc;
    for (const track of stream.getTracks()) {
      const sender = pc.addTransceiver(track, { direction: "sendonly", streams: [stream] }).sender;
      this.senders.set(track.kind === "audio" ? "mic" : "camera", sender);
    }
    if (screen) this.addScreenTrack(screen);
    pc.addEventListener("connectionstatechange", () => {
      this.dispatchEvent(new CustomEvent("state", { detail: pc.connectionState }));
    });
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    const reply = await this.live.send(SIGNAL.publishOffer, { sdp: pc.localDescription.sdp });
    this.unsubscribe = trickle(pc, this.live, reply.pc_id);
    await pc.setRemoteDescription({ type: "answer", sdp: reply.sdp });
    return pc;
  }

  addScreenTrack(screen) {
    const [track] = screen.getVideoTracks();
    if (!this.pc || !track) return;
    this.senders.set("screen", this.pc.addTransceiver(track, { direction: "sendonly", streams: [screen] }).sender);
  }

  // Swap a device without renegotiating.
  async replaceTrack(kind, track) {
    const sender = this.senders.get(kind);
    if (sender) await sender.replaceTrack(track);
  }

  close() {
    if (this.unsubscribe) this.unsubscribe();
    if (this.pc) {
      this.pc.close();
      this.live.send(SIGNAL.publishStop).catch(() => {});
    }
    this.pc = null;
    this.senders.clear();
  }
}

// Receives the stage from the server: tracks come and go as the chair changes the stage.
export class Viewer extends EventTarget {
  constructor(live, { iceServers } = {}) {
    super();
    this.live = live;
    this.iceServers = iceServers;
    this.pc = null;
    this.streams = new Map(); // mid -> MediaStream
    this.layout = new Map(); // mid -> {participant_id, kind, source}
    this.off = [
      live.on(SIGNAL.offered, (frame) => this.answer(frame).catch((e) => this.fail(e))),
      live.on(SIGNAL.tracksChanged, (frame) => this.retile(frame.tracks || [])),
    ];
  }

  watch() {
    return this.live.send(SIGNAL.watch);
  }

  async answer({ pc_id: pcId, sdp }) {
    if (!this.pc || this.pcId !== pcId) {
      this.closePeer();
      this.pc = peer(this.iceServers);
      this.pcId = pcId;
      this.unsubscribe = trickle(this.pc, this.live, pcId);
      this.pc.addEventListener("track", ({ track, transceiver, streams }) => {
        const stream = streams[0] || new MediaStream([track]);
        this.streams.set(transceiver.mid, stream);
        this.emit();
      });
      this.pc.addEventListener("connectionstatechange", () => {
        this.dispatchEvent(new CustomEvent("state", { detail: this.pc && this.pc.connectionState }));
      });
    }
    await this.pc.setRemoteDescription({ type: "offer", sdp });
    const answer = await this.pc.createAnswer();
    await this.pc.setLocalDescription(answer);
    await this.live.send(SIGNAL.watchAnswer, { pc_id: pcId, sdp: this.pc.localDescription.sdp });
  }

  retile(tracks) {
    this.layout = new Map(tracks.map((t) => [t.mid, t]));
    this.emit();
  }

  // The stage as tiles: one per live speaker's camera, plus any screen share (shown large).
  emit() {
    const tiles = [];
    for (const [mid, stream] of this.streams) {
      const info = this.layout.get(mid) || {};
      if (stream.getVideoTracks().length || info.kind === "video") {
        tiles.push({ mid, stream, participantId: info.participant_id, screen: info.source === "screen" });
      }
    }
    this.dispatchEvent(new CustomEvent("tiles", { detail: tiles }));
  }

  fail(error) {
    this.dispatchEvent(new CustomEvent("error", { detail: error }));
  }

  closePeer() {
    if (this.unsubscribe) this.unsubscribe();
    if (this.pc) this.pc.close();
    this.pc = null;
    this.streams.clear();
  }

  close() {
    this.closePeer();
    for (const off of this.off) off();
  }
}

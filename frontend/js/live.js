// The live socket of one session: connect, send actions, receive numbered events, reconnect with
// backoff and resume from the last sequence number seen.
//
// PHASE 2: every name the server must agree on is in PROTOCOL below; align it with chat/'s typed
// messages and docs/protocol.md, and nothing else in the pages needs to change.

export const PROTOCOL = {
  path: (sessionId) => `/api/sessions/${encodeURIComponent(sessionId)}/live`,
  // Authentication rides on the HttpOnly session cookie sent with the upgrade (never the URL).
  // The first frame joins the room and says what this tab saw last (null on a first join).
  join: "session.join", // {type, id, last_seq}
  // Replies to an action carry its `id`.
  reply: { ok: "ok", error: "error" }, // {type:"ok", id, ...} / {type:"error", id, code, message}
  // Client actions: {type, id, ...fields}.
  actions: {
    chatSend: "chat.send", // {text}
    chatDelete: "chat.delete", // {message_id}
    questionAsk: "question.ask", // {text, anonymous}
    questionVote: "question.vote", // {question_id}
    questionUnvote: "question.unvote", // {question_id}
    questionApprove: "question.approve", // {question_id}
    questionReject: "question.reject", // {question_id}
    questionEdit: "question.edit", // {question_id, text}
    questionAnswered: "question.answer", // {question_id}
    questionPin: "question.pin", // {question_id | null}
    pollCreate: "poll.create", // {question, options: [text]}
    pollOpen: "poll.open", // {poll_id}
    pollClose: "poll.close", // {poll_id}
    pollVote: "poll.vote", // {poll_id, option}
    reactionSend: "reaction.send", // {kind}
    personMute: "person.mute", // {participant_id, muted}
    personRemove: "person.remove", // {participant_id}
    roomSlowMode: "room.slow_mode", // {seconds}  (0 turns it off)
    roomLock: "room.lock", // {locked}
    announcementPost: "announcement.post", // {text}
    stageGoLive: "stage.go_live", // {participant_id}
    stageTakeOff: "stage.take_off", // {participant_id}
    stageMute: "stage.mute", // {participant_id, audio?, video?}
  },
  // Pushed events, named in the past tense, each with `seq`: {type, seq, ...}.
  events: {
    joined: "session.joined", // {seq, role, you: {participant_id}, watching, state: {...}}
    resync: "session.resync", // too far behind: drop local state, a fresh `joined` follows
    chatPosted: "chat.posted", // {message: {id, author, text, at}}
    chatDeleted: "chat.deleted", // {message_id}
    questionAsked: "question.asked", // moderators and the asker: {question}
    questionApproved: "question.approved", // {question}
    questionRejected: "question.rejected", // moderators and the asker: {question_id}
    questionEdited: "question.edited", // {question}
    questionVoted: "question.voted", // {question_id, votes}
    questionAnswered: "question.answered", // {question_id}
    questionPinned: "question.pinned", // {question | null}
    pollOpened: "poll.opened", // {poll}
    pollClosed: "poll.closed", // {poll}
    pollResults: "poll.results", // {poll_id, counts}
    reactionSent: "reaction.sent", // {kind, count}
    watchingChanged: "watching.changed", // {count}
    announcementPosted: "announcement.posted", // {text, at}
    personMuted: "person.muted", // {participant_id, muted}
    personRemoved: "person.removed", // to the person removed
    roomChanged: "room.changed", // {slow_mode_seconds, locked}
    stageChanged: "stage.changed", // {live: [participant_id], muted: {...}}
    captionAdded: "caption.added", // {text, final}
    // Media signalling events are listed in media.js's SIGNAL.
  },
  // Close codes after which reconnecting cannot help.
  finalCloseCodes: {
    1008: "You are not allowed into this session. Please register or use your invite link again.",
    4001: "You have been removed from this session.",
    4003: "This session is locked to new people.",
  },
};

// The states the connection indicator shows.
export const STATE = {
  connecting: "connecting",
  live: "live",
  reconnecting: "reconnecting",
  closed: "closed",
};

const BACKOFF_MS = { first: 500, max: 15_000 };

export class LiveSession extends EventTarget {
  constructor(sessionId, { WebSocketImpl = WebSocket } = {}) {
    super();
    this.sessionId = sessionId;
    this.WebSocketImpl = WebSocketImpl;
    this.state = STATE.closed;
    this.lastSeq = null;
    this.attempt = 0;
    this.everOpened = false;
    this.pending = new Map(); // action id -> {resolve, reject, timer}
    this.socket = null;
    this.retryTimer = null;
    this.stopped = false;
    this.nextId = 1;
  }

  // Listen for one pushed event type (or "*" for all): returns an unsubscribe function.
  on(type, handler) {
    const listener = (event) => handler(event.detail);
    this.addEventListener(`event:${type}`, listener);
    return () => this.removeEventListener(`event:${type}`, listener);
  }

  start() {
    this.stopped = false;
    this.open();
    window.addEventListener("online", () => this.retrySoon(0));
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    if (this.socket) this.socket.close(1000, "leaving");
    this.failPending("closed");
    this.setState(STATE.closed);
  }

  open() {
    clearTimeout(this.retryTimer);
    this.setState(this.everOpened || this.attempt > 0 ? STATE.reconnecting : STATE.connecting);
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    let socket;
    try {
      socket = new this.WebSocketImpl(`${scheme}//${location.host}${PROTOCOL.path(this.sessionId)}`);
    } catch {
      this.retrySoon();
      return;
    }
    this.socket = socket;
    socket.addEventListener("open", () => {
      socket.send(JSON.stringify({ type: PROTOCOL.join, id: this.newId(), last_seq: this.lastSeq }));
    });
    socket.addEventListener("message", (message) => this.receive(message.data));
    socket.addEventListener("close", (close) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.failPending("disconnected");
      if (this.stopped) return;
      const final = PROTOCOL.finalCloseCodes[close.code];
      if (final) {
        this.stopped = true;
        this.reason = final;
        this.setState(STATE.closed);
        return;
      }
      this.retrySoon();
    });
  }

  retrySoon(delay) {
    if (this.stopped) return;
    this.attempt += 1;
    const backoff = Math.min(BACKOFF_MS.max, BACKOFF_MS.first * 2 ** Math.min(this.attempt, 8));
    // Jitter spreads a crowd's reconnects after a server restart.
    const wait = delay ?? backoff / 2 + Math.random() * (backoff / 2);
    this.setState(STATE.reconnecting);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.open(), wait);
  }

  receive(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (frame.type === PROTOCOL.reply.ok || frame.type === PROTOCOL.reply.error) {
      const waiter = this.pending.get(frame.id);
      if (!waiter) return;
      this.pending.delete(frame.id);
      clearTimeout(waiter.timer);
      if (frame.type === PROTOCOL.reply.ok) waiter.resolve(frame);
      else waiter.reject(Object.assign(new Error(frame.message || frame.code), { code: frame.code }));
      return;
    }
    if (typeof frame.seq === "number") {
      if (this.lastSeq !== null && frame.seq <= this.lastSeq) return; // seen already
      this.lastSeq = frame.seq;
    }
    if (frame.type === PROTOCOL.events.resync) this.lastSeq = null;
    if (frame.type === PROTOCOL.events.joined) {
      this.attempt = 0;
      this.everOpened = true;
      this.setState(STATE.live);
    }
    this.dispatchEvent(new CustomEvent(`event:${frame.type}`, { detail: frame }));
    this.dispatchEvent(new CustomEvent("event:*", { detail: frame }));
  }

  // Send an action; resolves with the `ok` reply, rejects with the error's code.
  send(type, fields = {}, { timeoutMs = 10_000 } = {}) {
    if (!this.socket || this.state !== STATE.live) {
      return Promise.reject(Object.assign(new Error("Not connected."), { code: "live.not_connected" }));
    }
    const id = this.newId();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(Object.assign(new Error("No answer from the server."), { code: "live.timeout" }));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.socket.send(JSON.stringify({ ...fields, type, id }));
    });
  }

  newId() {
    return `c${this.nextId++}`;
  }

  failPending(code) {
    for (const [id, waiter] of this.pending) {
      clearTimeout(waiter.timer);
      waiter.reject(Object.assign(new Error("Disconnected."), { code: `live.${code}` }));
      this.pending.delete(id);
    }
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: state }));
  }
}

// The live socket of one session: join, send actions, receive numbered events, reconnect with
// backoff and resume from the last sequence number seen.
//
// Every name here follows chat/protocol.py (the one definition of the live protocol; the prose is
// docs/protocol.md). Nothing else in the pages spells a frame type.

export const PROTOCOL = {
  path: (sessionId) => `/api/sessions/${encodeURIComponent(sessionId)}/live`,
  // The first frame. The HttpOnly `dais_session` cookie sent with the upgrade authenticates it;
  // `last_seq` resumes after a reconnect. The reply is `ok` with a JoinResult.
  join: "room.join",
  reply: { ok: "ok", error: "error" }, // {type:"ok", id, result} / {type:"error", id, code, message, field}
  // Client actions: {id, type, ...fields}.
  actions: {
    chatSend: "chat.send", // {text}
    questionAsk: "question.ask", // {text, anonymous}
    questionVote: "question.vote", // {question_id}
    questionUnvote: "question.unvote", // {question_id}
    questionApprove: "question.approve", // {question_id}
    questionReject: "question.reject", // {question_id}
    questionAnswer: "question.answer", // {question_id}
    questionPin: "question.pin", // {question_id | null}
    questionEdit: "question.edit", // {question_id, text}
    pollCreate: "poll.create", // {question, options}
    pollOpen: "poll.open", // {poll_id}
    pollClose: "poll.close", // {poll_id}
    pollVote: "poll.vote", // {poll_id, option}
    reactionSend: "reaction.send", // {reaction}
    messageDelete: "message.delete", // {message_id}
    heldRelease: "held.release", // {message_id}
    heldDiscard: "held.discard", // {message_id}
    personMute: "person.mute", // {person_id, minutes?}
    personUnmute: "person.unmute", // {person_id}
    personRemove: "person.remove", // {person_id}
    roomSlowMode: "room.slow_mode", // {seconds}
    roomLock: "room.lock", // {locked}
    announcementPost: "announcement.post", // {text}
    mediaPublish: "media.publish", // {sdp} -> {peer_id, sdp, may_publish}
    mediaWatch: "media.watch", // {audio_only?} -> {peer_id, sdp, tracks}
    mediaQuality: "media.quality", // {} -> {videos: [{mid, layer, layers, reduced}]}
    mediaAnswer: "media.answer", // {peer_id, sdp}
    stageGoLive: "stage.go_live", // {person_id}
    stageTakeOff: "stage.take_off", // {person_id}
    stageMute: "stage.mute", // {person_id, kind: "audio"|"video", muted}
    sessionEnd: "session.end", // {}
    roomHistory: "room.history", // {part, cursor} -> {items, cursor, voted}
  },
  // Every action but these carries `key`, the page's idempotency key: the server applies a key
  // once per person and room, so the page keeps a keyed action until it is answered and sends it
  // again (same key, new id) after reconnecting or when the room was busy. These are not kept,
  // but sent on a live socket or not at all: signals, history, reactions (one late is no
  // reaction) and the chair's stage controls, which run beside the room's order and take no key
  // (docs/protocol.md's reference lists `key` on the actions that take one).
  unkeyed: new Set([
    "room.join", "media.publish", "media.watch", "media.quality", "media.answer", "room.history",
    "reaction.send",
    "stage.go_live", "stage.take_off", "stage.mute", "session.end",
  ]),
  // An idempotency key: 8-64 characters of [A-Za-z0-9_-].
  keyPattern: /^[A-Za-z0-9_-]{8,64}$/,
  // {type:"error", code:"room.busy", retry_after_ms}: not applied; send it again (same key) then.
  busy: "room.busy",
  // Pushed events. Room events carry `seq`; signals have `seq: null`.
  events: {
    messagePosted: "message.posted", // {message}
    messageHeld: "message.held", // {message} (moderators)
    messageDeleted: "message.deleted", // {message_id}
    announcementPosted: "announcement.posted", // {message}
    questionSubmitted: "question.submitted", // {question} (moderators)
    questionApproved: "question.approved", // {question}
    questionRejected: "question.rejected", // {question_id}
    questionVoted: "question.voted", // {question_id, votes}
    questionAnswered: "question.answered", // {question_id}
    questionPinned: "question.pinned", // {question_id | null}
    questionEdited: "question.edited", // {question}
    pollCreated: "poll.created", // {poll} (moderators, draft)
    pollOpened: "poll.opened", // {poll}
    pollClosed: "poll.closed", // {poll}
    personMuted: "person.muted", // {person_id, until}
    personUnmuted: "person.unmuted", // {person_id}
    personRemoved: "person.removed", // {person_id}
    roomChanged: "room.changed", // {room}
    reactionSent: "reaction.sent", // {reaction}
    watchingChanged: "watching.changed", // {count, people?}
    resyncRequired: "resync.required", // the join result that follows holds the whole state
    stageChanged: "stage.changed", // {stage}
    greenRoomChanged: "green_room.changed", // {stage}
    mediaOffered: "media.offered", // {peer_id, sdp, tracks}
    mediaLayers: "media.layers", // {peer_id, label, active}: the layers of a speaker's video to send
    // Not a frame: LiveSession dispatches it on every successful join with the JoinResult.
    joined: "live.joined",
  },
  // After a 1008 close reconnecting cannot help; these are the reasons people are told.
  refusals: {
    "auth.required": "Please register or use your invite link again to take part.",
    "auth.invalid_token": "Your sign-in has expired. Please register or use your invite link again.",
    "auth.revoked": "Your access to this event has been withdrawn.",
    "auth.forbidden": "You are not allowed into this session.",
    "session.not_found": "This session no longer exists.",
    "room.removed": "You have been removed from this session.",
    "room.locked": "This session is locked to new people.",
    // Only shown if the page has just reloaded for the same reason (see `reloadForRole`).
    "auth.role_changed": "Your role in this session has changed. Please reload the page.",
  },
  // After a 1008 close with this reason the server renders a different view: the page reloads.
  roleChanged: "auth.role_changed",
  policyClose: 1008,
};

// The states the connection indicator shows.
export const STATE = {
  connecting: "connecting",
  live: "live",
  reconnecting: "reconnecting",
  closed: "closed",
};

const BACKOFF_MS = { first: 400, max: 10_000 };
const JOIN_TIMEOUT_MS = 10_000;
// Keyed actions waiting for an answer: at most this many, each for at most this long.
export const OUTBOX = { max: 50, lifetimeMs: 10 * 60_000 };
// When a `room.busy` reply gives no hint.
const BUSY_DEFAULT_MS = 1000;

// A fresh idempotency key: 32 hex digits (crypto.getRandomValues works on plain http too).
export function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function failure(code, message) {
  return Object.assign(new Error(message), { code });
}

// Keyed actions (every action not in PROTOCOL.unkeyed) go through an ordered outbox: each is kept
// until the server answers it. A socket that drops leaves them pending; after the next join
// (fresh or resumed) they are sent again in order, with their keys and new request ids, and the
// server applies each key once. `room.busy` pauses the outbox for the reply's retry_after_ms.
// Only three things end a keyed action without an answer: stop(), a refusal (1008) and its
// lifetime (OUTBOX.lifetimeMs) running out while it waits.
export class LiveSession extends EventTarget {
  constructor(sessionId, { WebSocketImpl = WebSocket } = {}) {
    super();
    this.sessionId = sessionId;
    this.WebSocketImpl = WebSocketImpl;
    this.state = STATE.closed;
    this.lastSeq = null; // highest room-event seq applied
    this.attempt = 0;
    this.everJoined = false;
    this.pending = new Map(); // unkeyed action id -> {resolve, reject, timer}
    this.outbox = []; // keyed actions not yet answered, in the order they were made
    this.inflight = new Map(); // request id -> outbox entry sent on the current socket
    this.busyUntil = 0; // Date.now() before which the outbox waits (room.busy)
    this.busyTimer = null;
    this.socket = null;
    this.joinId = null;
    this.joinTimer = null;
    this.retryTimer = null;
    this.stopped = true;
    this.reason = "";
    this.you = null;
    this.nextId = 1;
    this.onOnline = () => { if (!this.stopped && this.state !== STATE.live) this.retrySoon(0); };
    this.onOffline = () => { if (this.socket) this.socket.close(4000, "offline"); };
  }

  // Listen for one pushed event type (or "*" for all): returns an unsubscribe function.
  on(type, handler) {
    const listener = (event) => handler(event.detail);
    this.addEventListener(`event:${type}`, listener);
    return () => this.removeEventListener(`event:${type}`, listener);
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    window.addEventListener("online", this.onOnline);
    window.addEventListener("offline", this.onOffline);
    this.open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.joinTimer);
    window.removeEventListener("online", this.onOnline);
    window.removeEventListener("offline", this.onOffline);
    const socket = this.socket;
    this.socket = null;
    if (socket) socket.close(1000, "leaving");
    this.failPending("closed");
    this.failOutbox(failure("live.closed", "Not sent: you left the session."));
    this.setState(STATE.closed);
  }

  open() {
    clearTimeout(this.retryTimer);
    if (this.stopped) return;
    this.setState(this.everJoined || this.attempt > 0 ? STATE.reconnecting : STATE.connecting);
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
      if (this.socket !== socket) return;
      this.joinId = this.newId();
      const frame = { id: this.joinId, type: PROTOCOL.join };
      if (this.lastSeq !== null) frame.last_seq = this.lastSeq;
      socket.send(JSON.stringify(frame));
      // A join that is never answered (a server stuck mid-restart) is retried.
      this.joinTimer = setTimeout(() => { if (this.socket === socket) socket.close(4001, "join timeout"); }, JOIN_TIMEOUT_MS);
    });
    socket.addEventListener("message", (message) => { if (this.socket === socket) this.receive(message.data); });
    socket.addEventListener("close", (close) => {
      if (this.socket !== socket) return;
      this.detach();
      this.dispatchEvent(new CustomEvent("disconnected", { detail: close.code }));
      if (this.stopped) return;
      if (close.code === PROTOCOL.policyClose) {
        // Refused or removed: reconnecting cannot help. The close reason is the error code, and
        // it is all there is when no error frame came first (a revocation or removal while live).
        this.stopped = true;
        if (close.reason === PROTOCOL.roleChanged && reloadForRole()) return;
        this.reason = PROTOCOL.refusals[close.reason] || this.reason || PROTOCOL.refusals["auth.forbidden"];
        this.failOutbox(failure(close.reason || "live.closed", `Not sent: ${this.reason}`));
        this.setState(STATE.closed);
        return;
      }
      this.retrySoon();
    });
  }

  // Forget the current socket: unkeyed actions on it fail, keyed ones wait for the next join.
  detach() {
    this.socket = null;
    this.joinId = null;
    clearTimeout(this.joinTimer);
    this.failPending("disconnected");
    for (const entry of this.inflight.values()) {
      clearTimeout(entry.timer);
      entry.id = null;
      if (entry.expired) this.settle(entry, failure("live.expired", EXPIRED));
    }
    this.inflight.clear();
  }

  retrySoon(delay) {
    if (this.stopped) return;
    if (this.socket) {
      const socket = this.socket;
      this.detach();
      socket.close(4002, "retry");
    }
    this.attempt += 1;
    const backoff = Math.min(BACKOFF_MS.max, BACKOFF_MS.first * 2 ** Math.min(this.attempt - 1, 8));
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
    if (!frame || typeof frame.type !== "string") return;
    if (frame.type === PROTOCOL.reply.ok || frame.type === PROTOCOL.reply.error) {
      if (frame.id !== null && frame.id === this.joinId) {
        this.joined(frame);
        return;
      }
      const entry = this.inflight.get(frame.id);
      if (entry) {
        this.inflight.delete(frame.id);
        clearTimeout(entry.timer);
        entry.id = null;
        if (frame.type === PROTOCOL.reply.error && frame.code === PROTOCOL.busy) {
          // Not applied: it waits (with everything after it) and goes again with the same key.
          if (entry.expired) this.settle(entry, failure("live.expired", EXPIRED));
          else this.busy(frame.retry_after_ms);
          return;
        }
        this.settle(entry, replyOutcome(frame));
        return;
      }
      const waiter = this.pending.get(frame.id);
      if (!waiter) return;
      this.pending.delete(frame.id);
      clearTimeout(waiter.timer);
      const outcome = replyOutcome(frame);
      if (outcome instanceof Error) waiter.reject(outcome);
      else waiter.resolve(outcome);
      return;
    }
    if (typeof frame.seq === "number") {
      // Room events come in seq order with gaps (events meant for others); never apply one twice.
      if (this.lastSeq !== null && frame.seq <= this.lastSeq) return;
      this.lastSeq = frame.seq;
    }
    if (frame.type === PROTOCOL.events.resyncRequired) this.lastSeq = null;
    this.emit(frame);
  }

  joined(frame) {
    clearTimeout(this.joinTimer);
    this.joinId = null;
    if (frame.type === PROTOCOL.reply.error) {
      // The socket closes with 1008 next; remember why for the indicator.
      this.reason = PROTOCOL.refusals[frame.code] || frame.message || "You cannot join this session.";
      return;
    }
    const result = frame.result || {};
    // A resume is followed by the missed events (seq <= result.seq): keep our own high-water mark
    // so they are applied. A fresh join (or resync) carries the state up to result.seq.
    if (!result.resumed) this.lastSeq = result.seq ?? null;
    this.you = result.you || this.you;
    this.attempt = 0;
    this.everJoined = true;
    this.reason = "";
    this.setState(STATE.live);
    this.emit({ type: PROTOCOL.events.joined, seq: null, result });
    // What was kept while the socket was down goes now, in order, with the same keys.
    this.flush();
  }

  emit(frame) {
    this.dispatchEvent(new CustomEvent(`event:${frame.type}`, { detail: frame }));
    this.dispatchEvent(new CustomEvent("event:*", { detail: frame }));
  }

  // Send an action; resolves with the `ok` reply's result, rejects with the error's code.
  // Keyed actions are kept in the outbox while disconnected or busy (see above); `key` reuses a
  // key, to send again something that may have been applied. `timeoutMs` is how long a sent action
  // may go unanswered: an unkeyed one then fails (live.timeout); for a keyed one the socket is
  // taken for dead and the action is sent again on the next.
  send(type, fields = {}, { timeoutMs = 15_000, key } = {}) {
    if (!PROTOCOL.unkeyed.has(type)) return this.keep(type, fields, { timeoutMs, key });
    if (!this.socket || this.state !== STATE.live || this.socket.readyState !== 1) {
      return Promise.reject(failure("live.not_connected", "Not connected: this is sent again when the connection is back."));
    }
    const id = this.newId();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(failure("live.timeout", "No answer from the server."));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.socket.send(JSON.stringify({ ...fields, id, type }));
    });
  }

  keep(type, fields, { timeoutMs, key }) {
    if (this.stopped) return Promise.reject(failure("live.closed", this.reason || "Not connected to the session."));
    if (this.outbox.length >= OUTBOX.max) {
      return Promise.reject(failure("live.outbox_full", "Not sent: too much is waiting for the connection. Please wait until it is back."));
    }
    if (key !== undefined && !PROTOCOL.keyPattern.test(key)) throw new TypeError(`not an idempotency key: ${key}`);
    return new Promise((resolve, reject) => {
      const entry = { type, fields, key: key ?? newKey(), timeoutMs, resolve, reject, id: null, timer: null, expired: false };
      entry.lifetime = setTimeout(() => {
        entry.expired = true;
        // Sent and not answered yet: its answer (or the socket closing) settles it.
        if (entry.id === null) this.settle(entry, failure("live.expired", EXPIRED));
      }, OUTBOX.lifetimeMs);
      this.outbox.push(entry);
      this.changedOutbox();
      this.flush();
    });
  }

  // Send every kept action that is not on the wire, in order, if the socket is live and the room
  // not busy.
  flush() {
    const socket = this.socket;
    if (!socket || this.state !== STATE.live || socket.readyState !== 1) return;
    if (Date.now() < this.busyUntil) return;
    for (const entry of this.outbox) {
      if (entry.id !== null) continue;
      entry.id = this.newId();
      this.inflight.set(entry.id, entry);
      // No answer in time: the socket is taken for dead (half-open) and the action goes again
      // on the next one. Resending is safe: the key is applied once.
      entry.timer = setTimeout(() => {
        if (this.socket === socket && this.inflight.get(entry.id) === entry) this.retrySoon();
      }, entry.timeoutMs);
      socket.send(JSON.stringify({ ...entry.fields, id: entry.id, type: entry.type, key: entry.key }));
    }
  }

  // The room's queue is full: nothing more goes until retry_after_ms (and some jitter, so that a
  // crowd's retries spread) have passed; then everything waiting goes again, in order.
  busy(retryAfterMs) {
    const wait = Math.max(0, Number(retryAfterMs) || BUSY_DEFAULT_MS);
    const until = Date.now() + wait + Math.random() * Math.min(1000, wait / 4 + 100);
    if (until <= this.busyUntil) return;
    this.busyUntil = until;
    clearTimeout(this.busyTimer);
    this.busyTimer = setTimeout(() => {
      this.busyUntil = 0;
      this.dispatchEvent(new CustomEvent("busy", { detail: { until: 0 } }));
      this.flush();
    }, until - Date.now());
    this.dispatchEvent(new CustomEvent("busy", { detail: { until } }));
  }

  // An outbox entry's end: resolved with a result, or rejected with an Error.
  settle(entry, outcome) {
    const index = this.outbox.indexOf(entry);
    if (index === -1) return;
    this.outbox.splice(index, 1);
    clearTimeout(entry.timer);
    clearTimeout(entry.lifetime);
    if (entry.id !== null) this.inflight.delete(entry.id);
    entry.id = null;
    if (outcome instanceof Error) entry.reject(outcome);
    else entry.resolve(outcome);
    this.changedOutbox();
  }

  failOutbox(error) {
    for (const entry of [...this.outbox]) this.settle(entry, error);
    clearTimeout(this.busyTimer);
    if (this.busyUntil) {
      this.busyUntil = 0;
      this.dispatchEvent(new CustomEvent("busy", { detail: { until: 0 } }));
    }
  }

  changedOutbox() {
    this.dispatchEvent(new CustomEvent("outbox", { detail: { size: this.outbox.length } }));
  }

  newId() {
    return `c${this.nextId++}`;
  }

  failPending(code) {
    for (const [id, waiter] of this.pending) {
      clearTimeout(waiter.timer);
      waiter.reject(failure(`live.${code}`, "The connection dropped before the server answered."));
      this.pending.delete(id);
    }
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: state }));
  }
}

const EXPIRED = `Not sent: the connection was not back within ${OUTBOX.lifetimeMs / 60_000} minutes.`;

function replyOutcome(frame) {
  if (frame.type === PROTOCOL.reply.ok) return frame.result || {};
  return Object.assign(failure(frame.code, frame.message || frame.code), { field: frame.field });
}

// The person's role in the session changed: the server renders another view (room, console,
// green room), so load the page again. Not twice within a few seconds: a server that keeps
// closing for this reason gets an explanation on screen instead of a reload loop.
const ROLE_RELOAD_KEY = "dais:role-reload";
const ROLE_RELOAD_QUIET_MS = 10_000;

function reloadForRole() {
  let last = 0;
  try { last = Number(sessionStorage.getItem(ROLE_RELOAD_KEY)) || 0; } catch { /* storage off */ }
  if (Date.now() - last < ROLE_RELOAD_QUIET_MS) return false;
  try { sessionStorage.setItem(ROLE_RELOAD_KEY, String(Date.now())); } catch { /* storage off */ }
  location.reload();
  return true;
}

// Error messages people can act on, by stable code.
export function explain(error) {
  const text = {
    rate_limited: "Too fast: please wait a moment and try again.",
    "person.muted": "A moderator has muted you in this room.",
    "question.already_voted": "You have already voted for this question.",
    "poll.already_voted": "You have already voted in this poll.",
    "question.anonymous_not_allowed": "This session does not take anonymous questions.",
    "auth.forbidden": "You cannot do that here.",
    "live.not_connected": "Not connected right now. Please try again when the indicator says Live.",
    "live.outbox_full": "Not sent: too much is waiting for the connection. Please wait until the indicator says Live.",
    "room.busy": "The room is very busy: please try again in a moment.",
  }[error && error.code];
  return text || (error && error.message) || "Something went wrong.";
}

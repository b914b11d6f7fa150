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
    mediaWatch: "media.watch", // {} -> {peer_id, sdp, tracks}
    mediaAnswer: "media.answer", // {peer_id, sdp}
    stageGoLive: "stage.go_live", // {person_id}
    stageTakeOff: "stage.take_off", // {person_id}
    stageMute: "stage.mute", // {person_id, kind: "audio"|"video", muted}
    sessionEnd: "session.end", // {}
  },
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

function failure(code, message) {
  return Object.assign(new Error(message), { code });
}

export class LiveSession extends EventTarget {
  constructor(sessionId, { WebSocketImpl = WebSocket } = {}) {
    super();
    this.sessionId = sessionId;
    this.WebSocketImpl = WebSocketImpl;
    this.state = STATE.closed;
    this.lastSeq = null; // highest room-event seq applied
    this.attempt = 0;
    this.everJoined = false;
    this.pending = new Map(); // action id -> {resolve, reject, timer}
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
      this.socket = null;
      this.joinId = null;
      clearTimeout(this.joinTimer);
      this.failPending("disconnected");
      this.dispatchEvent(new CustomEvent("disconnected", { detail: close.code }));
      if (this.stopped) return;
      if (close.code === PROTOCOL.policyClose) {
        // Refused or removed: reconnecting cannot help. The close reason is the error code, and
        // it is all there is when no error frame came first (a revocation or removal while live).
        this.stopped = true;
        if (close.reason === PROTOCOL.roleChanged && reloadForRole()) return;
        this.reason = PROTOCOL.refusals[close.reason] || this.reason || PROTOCOL.refusals["auth.forbidden"];
        this.setState(STATE.closed);
        return;
      }
      this.retrySoon();
    });
  }

  retrySoon(delay) {
    if (this.stopped) return;
    if (this.socket) {
      const socket = this.socket;
      this.socket = null;
      socket.close(4002, "retry");
      this.failPending("disconnected");
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
      const waiter = this.pending.get(frame.id);
      if (!waiter) return;
      this.pending.delete(frame.id);
      clearTimeout(waiter.timer);
      if (frame.type === PROTOCOL.reply.ok) waiter.resolve(frame.result || {});
      else waiter.reject(Object.assign(failure(frame.code, frame.message || frame.code), { field: frame.field }));
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
  }

  emit(frame) {
    this.dispatchEvent(new CustomEvent(`event:${frame.type}`, { detail: frame }));
    this.dispatchEvent(new CustomEvent("event:*", { detail: frame }));
  }

  // Send an action; resolves with the `ok` reply's result, rejects with the error's code.
  send(type, fields = {}, { timeoutMs = 15_000 } = {}) {
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
  }[error && error.code];
  return text || (error && error.message) || "Something went wrong.";
}

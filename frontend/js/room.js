// What a session's room holds right now, kept from the live socket's events. The attendee room,
// chair console and green room all render from this one state.

import { PROTOCOL } from "./live.js";

const E = PROTOCOL.events;

export class RoomState extends EventTarget {
  constructor(live) {
    super();
    this.reset();
    live.on("*", (frame) => this.apply(frame));
  }

  reset() {
    this.questions = new Map(); // id -> {id, text, author, votes, voted, status, mine}
    this.messages = []; // {id, author, author_id, text, at}
    this.polls = new Map(); // id -> {id, question, options, counts, open, my_vote}
    this.pinned = null;
    this.stage = { live: [], muted: {} };
    this.watching = null;
    this.room = { slow_mode_seconds: 0, locked: false };
    this.you = null;
  }

  apply(frame) {
    const changed = (part, detail = frame) => this.dispatchEvent(new CustomEvent(part, { detail }));
    switch (frame.type) {
      case E.resync:
        this.reset();
        changed("all");
        break;
      case E.joined: {
        this.reset();
        const state = frame.state || {};
        for (const q of state.questions || []) this.questions.set(q.id, q);
        this.messages = state.messages || [];
        for (const p of state.polls || []) this.polls.set(p.id, p);
        this.pinned = state.pinned || null;
        this.stage = state.stage || this.stage;
        this.room = state.room || this.room;
        this.watching = frame.watching ?? null;
        this.you = frame.you || null;
        changed("all");
        break;
      }
      case E.chatPosted:
        this.messages.push(frame.message);
        if (this.messages.length > 500) this.messages.shift();
        changed("chat");
        break;
      case E.chatDeleted:
        this.messages = this.messages.filter((m) => m.id !== frame.message_id);
        changed("chat");
        break;
      case E.questionAsked:
      case E.questionApproved:
      case E.questionEdited:
        this.questions.set(frame.question.id, { ...this.questions.get(frame.question.id), ...frame.question });
        changed("questions");
        break;
      case E.questionRejected:
      case E.questionAnswered: {
        const q = this.questions.get(frame.question_id);
        if (q) q.status = frame.type === E.questionRejected ? "rejected" : "answered";
        changed("questions");
        break;
      }
      case E.questionVoted: {
        const q = this.questions.get(frame.question_id);
        if (q) Object.assign(q, { votes: frame.votes }, "voted" in frame ? { voted: frame.voted } : {});
        changed("questions");
        break;
      }
      case E.questionPinned:
        this.pinned = frame.question || null;
        changed("pinned");
        break;
      case E.pollOpened:
      case E.pollClosed:
        this.polls.set(frame.poll.id, frame.poll);
        changed("polls");
        break;
      case E.pollResults: {
        const poll = this.polls.get(frame.poll_id);
        if (poll) poll.counts = frame.counts;
        changed("polls");
        break;
      }
      case E.watchingChanged:
        this.watching = frame.count;
        changed("watching");
        break;
      case E.stageChanged:
        this.stage = { live: frame.live || [], muted: frame.muted || {} };
        changed("stage");
        break;
      case E.roomChanged:
        this.room = { ...this.room, ...frame };
        changed("room");
        break;
      case E.reactionSent:
        changed("reaction");
        break;
      case E.announcementPosted:
        changed("announcement");
        break;
      case E.captionAdded:
        changed("caption");
        break;
      default:
        break;
    }
  }

  on(part, handler) {
    const listener = (event) => handler(event.detail);
    this.addEventListener(part, listener);
    if (part !== "all") this.addEventListener("all", listener);
  }

  // Approved (and answered) questions, most votes first.
  approved() {
    return [...this.questions.values()]
      .filter((q) => q.status === "approved" || q.status === "answered")
      .sort((a, b) => (a.status === "answered") - (b.status === "answered") || (b.votes || 0) - (a.votes || 0));
  }

  pending() {
    return [...this.questions.values()].filter((q) => q.status === "pending");
  }

  mine() {
    return [...this.questions.values()].filter((q) => q.mine);
  }
}

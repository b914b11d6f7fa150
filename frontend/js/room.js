// What a session's room holds right now, kept from the live socket's join result and events
// (shapes in chat/protocol.py). The attendee room, chair console and green room all render from
// this one state.

import { PROTOCOL } from "./live.js";

const E = PROTOCOL.events;
// Messages kept on screen as they arrive; older ones that fall off stay in `stash`, so "Show
// older messages" brings them back before asking the server. Loading older messages raises the
// limit: new arrivals never push out what the person just asked to see.
const MAX_MESSAGES = 300;
const MAX_STASHED = 5000;
// The parts of the room the join sends only the start of (JoinResult.more), fetched a page at a
// time with `room.history`.
export const HISTORY_PARTS = ["messages", "questions", "queue", "held"];

export class RoomState extends EventTarget {
  constructor(live, sessionId) {
    super();
    this.live = live;
    this.mineKey = `dais:mine:${sessionId}`;
    this.reset();
    live.on("*", (frame) => this.apply(frame));
  }

  reset() {
    this.questions = new Map(); // id -> QuestionView: approved (public) and, for moderators, pending
    this.queue = new Map(); // moderators: pending QuestionViews
    this.myQuestions = new Map(); // my own questions, any status
    this.voted = new Set();
    this.messages = []; // MessageView, chat and announcements, oldest first
    this.held = new Map(); // moderators: messages the word filter held
    this.polls = new Map(); // id -> PollView
    this.myPollVotes = new Map(); // poll id -> option index (this tab)
    this.room = { locked: false, slow_mode_seconds: 0, pinned_question_id: null };
    this.watching = null;
    this.people = null;
    this.you = null;
    this.stage = { live: [], presenters: [], ended: false };
    this.greenRoom = { live: [], presenters: [], ended: false };
    this.lastAnnouncement = null;
    this.more = {}; // part -> cursor of the next `room.history` page (JoinResult.more)
    this.stash = []; // messages trimmed from the top of `messages`, oldest first
    this.messageLimit = MAX_MESSAGES;
    this.gone = new Set(); // ids deleted, discarded or rejected since the join: not brought back by a page
    this.loading = new Map(); // part -> the page being fetched
    this.generation = (this.generation || 0) + 1; // a fresh join starts a new one: older pages are dropped
  }

  // Ids of questions this browser asked, kept for the tab's life so an approved (possibly
  // anonymous) question is still shown as "yours".
  rememberMine(question) {
    this.myQuestions.set(question.id, { ...this.myQuestions.get(question.id), ...question });
    try {
      const ids = new Set(JSON.parse(sessionStorage.getItem(this.mineKey) || "[]"));
      ids.add(question.id);
      sessionStorage.setItem(this.mineKey, JSON.stringify([...ids]));
    } catch { /* storage may be disabled */ }
  }

  mineIds() {
    try {
      return new Set(JSON.parse(sessionStorage.getItem(this.mineKey) || "[]"));
    } catch {
      return new Set();
    }
  }

  changed(part, detail) {
    this.dispatchEvent(new CustomEvent(part, { detail }));
  }

  apply(frame) {
    switch (frame.type) {
      case E.joined:
        this.join(frame.result);
        break;
      case E.messagePosted:
      case E.announcementPosted:
        this.held.delete(frame.message.id);
        if (!this.messages.some((m) => m.id === frame.message.id)) {
          this.messages.push(frame.message);
          this.trim();
        }
        if (frame.type === E.announcementPosted) {
          this.lastAnnouncement = frame.message;
          this.changed("announcement", frame.message);
        }
        this.changed("chat");
        break;
      case E.messageHeld:
        this.held.set(frame.message.id, frame.message);
        this.changed("chat");
        break;
      case E.messageDeleted:
        this.messages = this.messages.filter((m) => m.id !== frame.message_id);
        this.stash = this.stash.filter((m) => m.id !== frame.message_id);
        this.held.delete(frame.message_id);
        this.gone.add(frame.message_id);
        this.changed("chat");
        break;
      case E.questionSubmitted:
        this.queue.set(frame.question.id, frame.question);
        this.touchMine(frame.question);
        this.changed("questions");
        break;
      case E.questionApproved:
        this.queue.delete(frame.question.id);
        this.questions.set(frame.question.id, frame.question);
        this.touchMine(frame.question);
        this.changed("questions");
        break;
      case E.questionEdited:
        for (const map of [this.queue, this.questions]) {
          if (map.has(frame.question.id)) map.set(frame.question.id, { ...map.get(frame.question.id), ...frame.question });
        }
        this.touchMine(frame.question);
        this.changed("questions");
        break;
      case E.questionRejected: {
        this.queue.delete(frame.question_id);
        this.questions.delete(frame.question_id);
        this.gone.add(frame.question_id);
        const mine = this.myQuestions.get(frame.question_id);
        if (mine) mine.status = "rejected";
        if (this.room.pinned_question_id === frame.question_id) this.room.pinned_question_id = null;
        this.changed("questions");
        break;
      }
      case E.questionVoted:
      case E.questionAnswered:
        for (const map of [this.questions, this.myQuestions]) {
          const q = map.get(frame.question_id);
          if (!q) continue;
          if (frame.type === E.questionVoted) q.votes = frame.votes;
          else q.answered = true;
        }
        this.changed("questions");
        break;
      case E.questionPinned:
        this.room.pinned_question_id = frame.question_id || null;
        this.changed("questions");
        break;
      case E.pollCreated:
      case E.pollOpened:
      case E.pollClosed:
        this.polls.set(frame.poll.id, frame.poll);
        this.changed("polls");
        break;
      case E.personMuted:
      case E.personUnmuted:
        if (this.you && frame.person_id === this.you.person_id) {
          this.you.muted = frame.type === E.personMuted;
          this.changed("you");
        }
        this.changed("people", frame);
        break;
      case E.personRemoved:
        this.changed("people", frame);
        break;
      case E.roomChanged:
        this.room = { ...this.room, ...frame.room };
        this.changed("room");
        this.changed("questions");
        break;
      case E.reactionSent:
        this.changed("reaction", frame.reaction);
        break;
      case E.watchingChanged:
        this.watching = frame.count;
        this.people = frame.people ?? null;
        this.changed("watching");
        break;
      case E.stageChanged:
        this.stage = frame.stage;
        this.changed("stage");
        break;
      case E.greenRoomChanged:
        this.greenRoom = frame.stage;
        this.changed("stage");
        break;
      default:
        break;
    }
  }

  join(result) {
    this.you = result.you || this.you;
    this.room = result.room || this.room;
    this.watching = result.watching ?? this.watching;
    // The stage as it is now comes with every join, fresh or resumed (the green room for presenters).
    if (result.stage) this.stage = result.stage;
    if (result.green_room) this.greenRoom = result.green_room;
    if (result.resumed) {
      // The missed events follow; the state we hold stays.
      this.changed("all");
      return;
    }
    const stage = this.stage;
    const greenRoom = this.greenRoom;
    const pollVotes = this.myPollVotes;
    const you = this.you;
    const room = this.room;
    const watching = this.watching;
    this.reset();
    Object.assign(this, { stage, greenRoom, myPollVotes: pollVotes, you, room, watching });
    this.more = { ...(result.more || {}) };
    this.messages = result.messages || [];
    this.trim();
    for (const q of result.questions || []) this.questions.set(q.id, q);
    for (const q of result.queue || []) this.queue.set(q.id, q);
    for (const m of result.held || []) this.held.set(m.id, m);
    for (const p of result.polls || []) this.polls.set(p.id, p);
    this.voted = new Set(result.voted || []);
    const mine = this.mineIds();
    for (const q of result.my_questions || []) {
      this.myQuestions.set(q.id, q);
      mine.add(q.id);
    }
    for (const id of mine) {
      const q = this.questions.get(id);
      if (q) this.myQuestions.set(id, q);
    }
    this.changed("all");
  }

  trim() {
    if (this.messages.length <= this.messageLimit) return;
    this.stash.push(...this.messages.splice(0, this.messages.length - this.messageLimit));
    if (this.stash.length > MAX_STASHED) {
      // Past this, what is dropped cannot be fetched again without skipping it: the server's
      // cursor points further back. So the way back stops here.
      this.stash.splice(0, this.stash.length - MAX_STASHED);
      delete this.more.messages;
    }
  }

  // Whether "Show older messages" / "Show more …" has anything to show.
  hasMore(part) {
    return Boolean(this.more[part]) || (part === "messages" && this.stash.length > 0);
  }

  // The next page of a part (see HISTORY_PARTS), merged in: older messages before the ones
  // shown, further questions, queue and held messages into their maps. Resolves with the items
  // newly shown (none when a fresh join replaced the state meanwhile); rejects as `live.send` does.
  loadMore(part) {
    if (!this.loading.has(part)) {
      const loading = this.fetchMore(part).finally(() => {
        if (this.loading.get(part) === loading) this.loading.delete(part);
      });
      this.loading.set(part, loading);
    }
    return this.loading.get(part);
  }

  async fetchMore(part) {
    if (part === "messages" && this.stash.length) {
      const back = this.stash.splice(Math.max(0, this.stash.length - 50));
      this.messages = [...back, ...this.messages];
      this.messageLimit = Math.max(this.messageLimit, this.messages.length + MAX_MESSAGES);
      this.changed("chat");
      this.changed("more");
      return back;
    }
    const cursor = this.more[part];
    if (!cursor) return [];
    const generation = this.generation;
    const page = await this.live.send(PROTOCOL.actions.roomHistory, { part, cursor });
    if (generation !== this.generation) return [];
    if (page.cursor) this.more[part] = page.cursor;
    else delete this.more[part];
    const items = (page.items || []).filter((item) => !this.gone.has(item.id));
    let shown = [];
    if (part === "messages") {
      const have = new Set(this.messages.map((m) => m.id));
      shown = items.filter((m) => !have.has(m.id));
      this.messages = [...shown, ...this.messages];
      this.messageLimit = Math.max(this.messageLimit, this.messages.length + MAX_MESSAGES);
      this.changed("chat");
    } else if (part === "held") {
      const posted = new Set(this.messages.map((m) => m.id));
      shown = items.filter((m) => !this.held.has(m.id) && !posted.has(m.id));
      for (const m of shown) this.held.set(m.id, m);
      this.changed("chat");
    } else {
      // Questions the events kept up to date since the join stay as they are.
      const map = part === "queue" ? this.queue : this.questions;
      shown = items.filter((q) => !this.questions.has(q.id) && !this.queue.has(q.id));
      for (const q of shown) map.set(q.id, q);
      for (const id of page.voted || []) this.voted.add(id);
      const mine = this.mineIds();
      for (const q of shown) if (mine.has(q.id)) this.myQuestions.set(q.id, { ...this.myQuestions.get(q.id), ...q });
      this.changed("questions");
    }
    this.changed("more");
    return shown;
  }

  touchMine(question) {
    if (this.myQuestions.has(question.id)) {
      this.myQuestions.set(question.id, { ...this.myQuestions.get(question.id), ...question });
    }
  }

  on(part, handler) {
    const listener = (event) => handler(event.detail);
    this.addEventListener(part, listener);
    if (part !== "all") this.addEventListener("all", listener);
  }

  // Approved questions: unanswered first, then most votes.
  approved() {
    return [...this.questions.values()]
      .filter((q) => q.status === "approved")
      .sort((a, b) => Number(a.answered) - Number(b.answered) || b.votes - a.votes || Date.parse(a.at) - Date.parse(b.at));
  }

  pending() {
    return [...this.queue.values()].sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
  }

  mine() {
    return [...this.myQuestions.values()].sort((a, b) => Date.parse(b.at) - Date.parse(a.at));
  }

  pinned() {
    const id = this.room.pinned_question_id;
    return id ? this.questions.get(id) || null : null;
  }
}

// The signaling WebSocket (issue #5; docs/client.md): opened with the join's signaling token,
// kept alive with pings, and brought back after a network loss. A lost connection is first
// resumed with the resume token and the last sequence number seen (the server keeps the
// session for signaling.resume-window and replays what was missed, in order); when that is
// refused, a fresh connection is opened with a new token (the room asks the API for one), and
// the room gets a second "joined" to reconcile with.

import {log} from './ui.js';

const PATH = '/api/v1/signaling';
// Close codes after which there is nothing to come back to.
const FINAL = {4403: 'removed', 4410: 'ended', 4409: 'left', 4404: 'gone', 4004: 'too-many', 4008: 'admitted'};
const PING_MS = 15000;     // an application ping when nothing else was sent
const PONG_WAIT_MS = 8000; // no answer to it in this long: the connection is dead
const QUEUE_MAX = 500;     // messages kept while reconnecting

function wsUrl(query) {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${location.host}${PATH}?${new URLSearchParams(query)}`;
}

/**
 * Events (this is an EventTarget; each event's detail is the message or a small object):
 *  message  - every frame from the server (joined, resumed, offer, chat, ...)
 *  state    - {state: 'connecting' | 'open' | 'reconnecting' | 'closed'}
 *  final    - {reason: 'removed' | 'denied' | 'admitted' | 'ended' | 'expired' | 'left' | 'gone' |
 *              'too-many', code}
 */
export class Signaling extends EventTarget {
  /** getToken(): a promise of a fresh signaling token (a new join), for when resume fails. */
  constructor(token, getToken) {
    super();
    this.token = token;
    this.getToken = getToken;
    this.ws = null;
    this.state = 'connecting';
    this.lastSeq = 0;
    this.resumeToken = null;
    this.resumeWindowMs = 30000;
    this.lostAt = 0;
    this.attempt = 0;
    this.queue = [];
    this.closed = false;
    this.nextId = 1;
    this.timers = {};
    this.lastSent = Date.now();
    this.awaitingPong = 0;
    this.onOnline = () => {
      if (this.state === 'reconnecting') this.reconnectSoon(0);
    };
    this.onOffline = () => {
      // the socket may not notice for a while: treat it as lost now, resume when back
      if (this.ws && this.state === 'open') this.ws.close(4000, 'offline');
    };
    window.addEventListener('online', this.onOnline);
    window.addEventListener('offline', this.onOffline);
    this.open({token});
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent('state', {detail: {state}}));
  }

  open(query) {
    const resuming = 'resume' in query;
    log('sig: opening', resuming ? `resume from seq ${query.last_seq}` : 'with a token');
    const ws = new WebSocket(wsUrl(query));
    this.ws = ws;
    ws.onmessage = (e) => this.onFrame(ws, e.data);
    ws.onclose = (e) => this.onClose(ws, e.code, e.reason, resuming);
    ws.onerror = () => log('sig: socket error'); // onclose follows with the code
  }

  onFrame(ws, data) {
    if (ws !== this.ws) return;
    let m;
    try {
      m = JSON.parse(data);
    } catch {
      log('sig: a frame that is not JSON');
      return;
    }
    this.awaitingPong = 0;
    if (m.type === 'joined' || m.type === 'waiting') { // waiting: a lobby session (issue #17)
      this.resumeToken = m.resume_token;
      this.lastSeq = m.seq || 0;
      if (m.limits && m.limits.resume_window_s) this.resumeWindowMs = m.limits.resume_window_s * 1000;
      this.connected();
    } else if (m.type === 'resumed') {
      this.connected();
    } else if (typeof m.seq === 'number') {
      if (m.seq <= this.lastSeq) return; // already seen (a replay overlapping what arrived)
      this.lastSeq = m.seq;
    }
    this.dispatchEvent(new CustomEvent('message', {detail: m}));
  }

  connected() {
    this.attempt = 0;
    this.lostAt = 0;
    this.setState('open');
    const q = this.queue;
    this.queue = [];
    for (const m of q) this.send(m);
    this.keepAlive();
  }

  keepAlive() {
    clearInterval(this.timers.ping);
    this.timers.ping = setInterval(() => {
      if (this.state !== 'open') return;
      if (this.awaitingPong && Date.now() - this.awaitingPong > PONG_WAIT_MS) {
        log('sig: no answer to a ping: reconnecting');
        this.ws.close(4000, 'ping timeout');
        return;
      }
      if (!this.awaitingPong && Date.now() - this.lastSent > PING_MS) {
        this.awaitingPong = Date.now();
        this.send({type: 'ping'});
      }
    }, 2000);
  }

  onClose(ws, code, reason, resuming) {
    if (ws !== this.ws) return;
    clearInterval(this.timers.ping);
    this.ws = null;
    log('sig: closed', code, reason || '');
    if (this.closed) {
      this.setState('closed');
      return;
    }
    if (FINAL[code]) {
      const why = code === 4410 && reason === 'meeting_expired' ? 'expired'
        : code === 4403 && reason === 'denied' ? 'denied' : FINAL[code];
      this.finish(why, code);
      return;
    }
    if (!this.lostAt) this.lostAt = Date.now();
    this.setState('reconnecting');
    if (code === 4007 || (resuming && code === 1006 && this.attempt > 3)) this.resumeToken = null;
    if (code === 4401) this.token = null; // the signaling token expired: a new join gives one
    this.reconnectSoon();
  }

  reconnectSoon(delay) {
    clearTimeout(this.timers.retry);
    const d = delay ?? Math.min(8000, 250 * 2 ** this.attempt) * (0.75 + Math.random() / 2);
    this.attempt++;
    this.timers.retry = setTimeout(() => this.reconnect(), d);
  }

  async reconnect() {
    if (this.closed || this.ws) return;
    if (navigator.onLine === false) return; // the 'online' event brings us back here
    if (this.resumeToken && Date.now() - this.lostAt < this.resumeWindowMs - 1000) {
      this.open({resume: this.resumeToken, last_seq: String(this.lastSeq)});
      return;
    }
    // a new session: the server sends joined again, and what was queued for the old one is
    // moot except chat
    this.resumeToken = null;
    this.queue = this.queue.filter((m) => m.type === 'chat');
    try {
      if (!this.token || this.attempt > 1) this.token = await this.getToken();
    } catch (e) {
      if (e && e.final) {
        this.finish(e.final, e.status);
        return;
      }
      log('sig: no new token yet:', e && e.message);
      this.reconnectSoon();
      return;
    }
    if (this.closed || this.ws) return;
    this.open({token: this.token});
  }

  finish(reason, code) {
    this.closed = true;
    this.cleanup();
    this.setState('closed');
    this.dispatchEvent(new CustomEvent('final', {detail: {reason, code}}));
  }

  /** Sends a message {type, to, payload}; queued while reconnecting. Returns its id. */
  send(m) {
    if (m.id === undefined && m.type !== 'ping') m.id = this.nextId++;
    if (this.state === 'open' && this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(m));
      this.lastSent = Date.now();
    } else if (!this.closed && m.type !== 'ping') {
      this.queue.push(m);
      if (this.queue.length > QUEUE_MAX) this.queue.shift();
    }
    return m.id;
  }

  /** Drops the connection as a network loss would (for tests of recovery). */
  drop() {
    if (this.ws) this.ws.close(4000, 'dropped');
  }

  cleanup() {
    clearInterval(this.timers.ping);
    clearTimeout(this.timers.retry);
    window.removeEventListener('online', this.onOnline);
    window.removeEventListener('offline', this.onOffline);
  }

  /** Closes for good (1000: the server ends the session at once, no resume). */
  close() {
    if (this.closed) return;
    this.closed = true;
    this.cleanup();
    if (this.ws) this.ws.close(1000, 'bye');
    else this.setState('closed');
  }
}

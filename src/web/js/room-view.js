// The meeting's screen: the video grid (1 to 9 tiles and more, laid out by count), tiles with
// name, ADMIN badge, microphone and camera state and the connection badge, the participant
// list with the ADMIN's actions, the chat, the control bar and its side panels. It renders
// what the room (room.js) tells it and reports clicks back; it holds no meeting state.

import {openHelp} from './help.js';
import {NETWORK_WORDS, PATH_WORDS} from './netcheck.js';
import {$, h, icon, initials, toast} from './ui.js';

const PATH_LABEL = {relay: 'Relay', direct: 'Direct', connected: 'Connected', connecting: 'Connecting…', none: 'No connection', self: ''};
const PATH_TITLE = {relay: 'Media goes through the relay server', direct: 'Media goes directly between you',
                    connected: 'Media flows; the path is not known yet', connecting: 'Connecting'};
/** The reactions the server takes (signaling's fixed set), with the name each is read as. */
export const REACTIONS = [['\u{1F44D}', 'Thumbs up'], ['\u{1F44F}', 'Applause'], ['\u2764\uFE0F', 'Heart'],
                          ['\u{1F602}', 'Laughing'], ['\u{1F389}', 'Celebrate'], ['\u{1F62E}', 'Surprised']];
const REACTION_MS = 4000; // how long a reaction shows on a tile

const PATH_KIND = {'direct': 'direct', 'relay-udp': 'relay', 'relay-tcp': 'relay', 'relay-tls': 'relay',
                   'connecting': 'connecting', 'none': 'none'};

export class RoomView {
  /** actions: {mic(), cam(), leave(), end(), chat(text), remove(id), mute(id), relay(on)} */
  constructor(actions) {
    this.actions = actions;
    this.grid = $('grid');
    this.tiles = new Map();
    this.screens = new Map(); // participant id -> its screen share's tile
    this.unread = 0;
    this.bindControls();
  }

  bindControls() {
    const a = this.actions;
    const ctl = (id, ic, label, f) => {
      const b = $(id);
      b.replaceChildren(icon(ic), h('span', {class: 'ctl-label'}, label));
      b.onclick = f;
      return b;
    };
    ctl('btn-mic', 'mic', 'Mute', () => a.mic());
    ctl('btn-cam', 'cam', 'Stop video', () => a.cam());
    ctl('btn-share', 'screen', 'Share screen', () => a.share());
    ctl('btn-hand', 'hand', 'Raise hand', () => a.hand());
    ctl('btn-react', 'smile', 'React', () => this.toggleReactions());
    $('react-menu').replaceChildren(...REACTIONS.map(([emoji, name]) =>
      h('button', {type: 'button', class: 'react-btn', 'aria-label': `React: ${name}`, title: name,
        onclick: () => {
          this.toggleReactions(false);
          a.react(emoji);
        }}, emoji)));
    ctl('btn-people', 'people', 'People', () => this.toggle('panel-people'));
    ctl('btn-chat', 'chat', 'Chat', () => this.toggle('panel-chat'));
    ctl('btn-settings', 'gear', 'Settings', () => this.toggle('panel-settings'));
    ctl('btn-help', 'help', 'Help', () => openHelp());
    ctl('btn-end', 'end', 'End', () => a.end());
    ctl('btn-leave', 'leave', 'Leave', () => a.leave());
    $('call-copy').replaceChildren(icon('link'), h('span', {class: 'ctl-label'}, 'Copy link'));
    $('call-copy').onclick = () => a.copyLink();
    for (const b of document.querySelectorAll('.panel-close')) b.onclick = () => this.toggle(b.dataset.close, false);
    $('chat-form').onsubmit = (e) => {
      e.preventDefault();
      const input = $('chat-input');
      const text = input.value.trim();
      if (!text) return;
      if (a.chat(text)) input.value = '';
    };
    $('settings-relay').onchange = (e) => a.relay(e.target.checked);
    // Escape closes an open panel (the dialog handles its own)
    this.onKey = (e) => {
      if (e.key !== 'Escape' || document.querySelector('dialog[open]')) return;
      const open = [...document.querySelectorAll('.panel')].find((p) => !p.hidden);
      if (!$('react-menu').hidden) this.toggleReactions(false);
      else if (open) this.toggle(open.id, false);
    };
    document.addEventListener('keydown', this.onKey);
  }

  /** Opens or closes a side panel (one at a time), keeping the buttons' aria-expanded true. */
  toggle(id, show) {
    const panel = $(id);
    const open = show ?? panel.hidden;
    for (const p of document.querySelectorAll('.panel')) {
      const on = p.id === id ? open : false;
      p.hidden = !on;
      const btn = document.querySelector(`[aria-controls="${p.id}"]`);
      if (btn) btn.setAttribute('aria-expanded', String(on));
    }
    $('call').dataset.panel = open ? id : '';
    if (id === 'panel-chat' && open) {
      this.unread = 0;
      this.renderUnread();
      $('chat-input').focus();
    } else if (open) {
      const first = panel.querySelector('button:not(.panel-close), input');
      if (first) first.focus();
    } else {
      const btn = document.querySelector(`[aria-controls="${id}"]`);
      if (btn) btn.focus();
    }
  }

  /** Opens or closes the row of reactions above the control bar. */
  toggleReactions(show) {
    const menu = $('react-menu');
    const open = show ?? menu.hidden;
    menu.hidden = !open;
    $('btn-react').setAttribute('aria-expanded', String(open));
    if (open) menu.querySelector('button').focus();
    else if (document.activeElement && menu.contains(document.activeElement)) $('btn-react').focus();
  }

  /** A reaction shows on the sender's tile for a few seconds (and is said once, politely). */
  showReaction(id, emoji, name) {
    const t = this.tiles.get(id);
    if (!t) return;
    const label = (REACTIONS.find(([e]) => e === emoji) || [emoji, emoji])[1];
    t.reaction.textContent = emoji;
    t.reaction.setAttribute('aria-label', `${name} reacted: ${label}`);
    t.reaction.hidden = false;
    t.el.dataset.reaction = emoji;
    clearTimeout(t.reactionTimer);
    t.reactionTimer = setTimeout(() => {
      t.reaction.hidden = true;
      delete t.el.dataset.reaction;
    }, REACTION_MS);
  }

  setTitle(title, code) {
    $('call-title').textContent = title;
    $('call-title').title = code ? `Code ${code}` : '';
  }

  /** The signaling state in the header: "" when all is well. */
  setNet(text, kind = 'warn') {
    const el = $('net-status');
    el.textContent = text;
    el.dataset.kind = text ? kind : '';
  }

  // ------------------------------------------------------------ tiles

  tile(id, self) {
    let t = this.tiles.get(id);
    if (t) return t;
    const video = h('video', {autoplay: true, playsinline: true, 'aria-hidden': 'true'});
    if (self) video.muted = true;
    const name = h('span', {class: 'tile-name'});
    const admin = h('span', {class: 'badge badge-admin', hidden: true}, 'ADMIN');
    const mic = h('span', {class: 'tile-mic', role: 'img', 'aria-label': 'Microphone off', hidden: true}, icon('micOff'));
    const path = h('span', {class: 'badge badge-path', hidden: self});
    const avatar = h('div', {class: 'avatar', 'aria-hidden': 'true'});
    const note = h('p', {class: 'tile-note', hidden: true});
    const hand = h('span', {class: 'badge badge-hand', role: 'img', 'aria-label': 'Hand raised', hidden: true}, icon('hand'));
    const reaction = h('span', {class: 'tile-reaction', role: 'img', hidden: true});
    const el = h('figure', {class: 'tile', dataset: {pid: id, video: 'off', audio: 'off'}},
      video, avatar, note, reaction, h('figcaption', {}, hand, name, admin, mic, path));
    if (self) el.dataset.self = 'true';
    t = {el, video, name, admin, mic, path, avatar, note, self, hand, reaction};
    this.tiles.set(id, t);
    if (self) this.grid.prepend(el);
    else this.grid.append(el);
    this.layout();
    return t;
  }

  /** Shows or updates a participant's tile (member: {id, name, role, audio, video}). */
  showMember(m, self = false) {
    const t = this.tile(m.id, self);
    const label = self ? `${m.name} (you)` : m.name;
    t.name.textContent = label;
    t.avatar.textContent = initials(m.name);
    t.admin.hidden = m.role !== 'ADMIN';
    t.hand.hidden = !m.hand;
    t.el.dataset.hand = m.hand ? 'up' : '';
    t.mic.hidden = !!m.audio;
    t.el.dataset.audio = m.audio ? 'on' : 'off';
    t.el.dataset.video = m.video ? 'on' : 'off';
    t.el.setAttribute('aria-label', `${label}${m.role === 'ADMIN' ? ', ADMIN' : ''}${m.hand ? ', hand raised' : ''}${m.audio ? '' : ', muted'}${m.video ? '' : ', camera off'}`);
  }

  /** Plays a stream in a tile (the local preview, or what a peer sends). */
  setStream(id, stream) {
    const t = this.tiles.get(id);
    if (!t || t.video.srcObject === stream) return;
    t.video.srcObject = stream;
    const p = t.video.play();
    if (p) p.catch(() => { /* autoplay refused: starts on the next click */ });
  }

  /** The connection badge: "Relay · udp", "Direct", "Connected" (path not known), connecting,
   * or "No connection" with why (the explanation, on the tile and in the call's alert). */
  setPath(id, path, state, why = '') {
    const t = this.tiles.get(id);
    if (!t || t.self) return;
    let kind = path.kind;
    if (state === 'failed' || state === 'disconnected') kind = 'connecting';
    if (why) kind = 'none';
    const text = kind === 'relay' && path.protocol ? `Relay · ${path.protocol}` : PATH_LABEL[kind] || kind;
    t.path.textContent = text;
    t.path.dataset.kind = kind;
    t.path.title = why || PATH_TITLE[kind] || PATH_TITLE.connecting;
    t.el.dataset.path = kind;
    t.note.textContent = why;
    t.note.hidden = !why;
    this.noPath(id, why);
  }

  /** The call's alert: the explanation of the first connection without a path, if any. */
  noPath(id, why) {
    this.whys = this.whys || new Map();
    if (why) this.whys.set(id, why);
    else this.whys.delete(id);
    const first = [...this.whys.values()][0] || '';
    const el = $('path-alert');
    el.textContent = first;
    el.hidden = !first;
  }

  removeTile(id) {
    const t = this.tiles.get(id);
    if (!t) return;
    this.noPath(id, '');
    t.video.srcObject = null;
    t.el.remove();
    this.tiles.delete(id);
    this.layout();
  }

  clearTiles() {
    for (const id of [...this.screens.keys()]) this.removeScreen(id);
    for (const id of [...this.tiles.keys()]) this.removeTile(id);
  }

  /** Columns and rows follow the number of tiles (CSS: .grid[data-count]); a screen share
   * takes the stage, the cameras a column beside it (.grid[data-layout=share]). */
  layout() {
    const n = this.tiles.size;
    this.grid.dataset.count = n > 9 ? 'many' : String(Math.max(1, n));
    this.grid.dataset.layout = this.screens.size ? 'share' : '';
    const rows = Math.max(1, n);
    for (const t of this.screens.values()) t.el.style.gridRow = `1 / span ${rows}`;
  }

  /** A screen share, shown large: ours (a muted preview) or a participant's. */
  showScreen(id, stream, name, self = false) {
    let t = this.screens.get(id);
    if (!t) {
      const video = h('video', {autoplay: true, playsinline: true, muted: true});
      video.muted = true;
      const label = self ? 'Your screen' : `${name}'s screen`;
      const el = h('figure', {class: 'tile tile-screen', dataset: {screen: id}, 'aria-label': label},
        video, h('figcaption', {}, h('span', {class: 'tile-name'}, label)));
      t = {el, video};
      this.screens.set(id, t);
      this.grid.prepend(el);
    }
    if (t.video.srcObject !== stream) {
      t.video.srcObject = stream;
      const p = t.video.play();
      if (p) p.catch(() => { /* autoplay refused: starts on the next click */ });
    }
    this.layout();
  }

  removeScreen(id) {
    const t = this.screens.get(id);
    if (!t) return;
    t.video.srcObject = null;
    t.el.remove();
    this.screens.delete(id);
    this.layout();
  }

  // ------------------------------------------------------------ people

  /** The lobby, for ADMINs: who waits, with Admit and Deny (lobby: Map id -> {id, name}). */
  renderLobby(lobby, iAmAdmin) {
    const waiting = iAmAdmin ? [...lobby.values()] : [];
    $('lobby-list-box').hidden = waiting.length === 0;
    $('lobby-count').textContent = `(${waiting.length})`;
    $('lobby-list').replaceChildren(...waiting.map((m) => h('li', {class: 'person', dataset: {pid: m.id, state: 'waiting'}},
      h('span', {class: 'person-name'}, m.name),
      h('span', {class: 'person-actions'},
        h('button', {type: 'button', class: 'btn btn-small btn-primary', 'aria-label': `Admit ${m.name}`,
          onclick: () => this.actions.admit(m.id)}, 'Admit'),
        h('button', {type: 'button', class: 'btn btn-small danger', 'aria-label': `Deny ${m.name}`,
          onclick: () => this.actions.deny(m.id)}, 'Deny')))));
    const b = $('btn-people');
    let badge = b.querySelector('.count');
    if (!badge) {
      badge = h('span', {class: 'count'});
      b.append(badge);
    }
    badge.textContent = waiting.length ? String(waiting.length) : '';
    badge.hidden = !waiting.length;
    b.setAttribute('aria-label', waiting.length ? `People, ${waiting.length} waiting to join` : 'People');
  }

  /** Raised hands in the order they went up (the host's queue), with Lower for ADMINs. */
  renderHands(members, meId, iAmAdmin) {
    const up = [...members.values()].filter((m) => m.hand).sort((a, b) => a.hand - b.hand);
    $('hands-box').hidden = up.length === 0;
    $('hands').replaceChildren(...up.map((m, i) => h('li', {class: 'person', dataset: {pid: m.id, hand: String(i + 1)}},
      h('span', {class: 'hand-pos', 'aria-hidden': 'true'}, `${i + 1}.`),
      h('span', {class: 'person-name'}, m.id === meId ? `${m.name} (you)` : m.name),
      h('span', {class: 'person-actions'}, iAmAdmin || m.id === meId
        ? h('button', {type: 'button', class: 'btn btn-small', 'aria-label': m.id === meId ? 'Lower your hand' : `Lower ${m.name}'s hand`,
          onclick: () => this.actions.lowerHand(m.id)}, 'Lower')
        : null))));
    const b = $('btn-people');
    b.dataset.hands = String(up.length);
  }

  renderPeople(members, meId, iAmAdmin) {
    this.renderHands(members, meId, iAmAdmin);
    const list = $('people');
    const present = [...members.values()].sort((a, b) => (b.id === meId) - (a.id === meId) || a.name.localeCompare(b.name));
    $('people-count').textContent = `(${present.filter((m) => m.online).length})`;
    list.replaceChildren(...present.map((m) => {
      const me = m.id === meId;
      const actions = [];
      if (iAmAdmin && !me) {
        if (m.audio)
          actions.push(h('button', {type: 'button', class: 'btn btn-small', 'aria-label': `Ask ${m.name} to mute`,
            onclick: () => this.actions.mute(m.id)}, 'Mute'));
        if (!m.host)
          actions.push(h('button', {type: 'button', class: 'btn btn-small danger', 'aria-label': `Remove ${m.name} from the meeting`,
            onclick: () => this.actions.remove(m.id)}, 'Remove'));
      }
      const state = [m.audio ? null : 'muted', m.video ? null : 'camera off', m.online ? null : 'away'].filter(Boolean).join(', ');
      // the path this participant's media takes (its own report), and its network check
      const path = m.online && m.path ? h('span', {class: 'badge badge-path', dataset: {kind: PATH_KIND[m.path] || 'connecting', path: m.path},
        title: 'How this participant\'s media travels'}, PATH_WORDS[m.path] || m.path) : null;
      const net = m.network ? h('span', {class: 'person-net', dataset: {network: m.network}}, NETWORK_WORDS[m.network] || m.network) : null;
      return h('li', {class: 'person', dataset: {pid: m.id, path: m.path || '', network: m.network || ''}},
        h('span', {class: 'person-name'}, me ? `${m.name} (you)` : m.name),
        m.role === 'ADMIN' ? h('span', {class: 'badge badge-admin'}, 'ADMIN') : null,
        path,
        h('span', {class: 'person-state'}, state),
        net,
        h('span', {class: 'person-actions'}, actions));
    }));
  }

  // ------------------------------------------------------------ chat

  addChat(m, mine, history = false) {
    const log = $('chat-log');
    const text = (m.payload && m.payload.text) || '';
    const at = m.ts ? new Date(m.ts).toLocaleTimeString([], {hour: '2-digit', minute: '2-digit'}) : '';
    log.append(h('li', {class: mine ? 'chat-msg chat-mine' : 'chat-msg', dataset: {id: m.chat_id || ''}},
      h('span', {class: 'chat-from'}, mine ? 'You' : m.name || 'Someone'),
      h('time', {class: 'chat-time'}, at),
      h('p', {class: 'chat-text'}, text)));
    log.scrollTop = log.scrollHeight;
    if (!mine && !history && $('panel-chat').hidden) {
      this.unread++;
      this.renderUnread();
      toast(`${m.name || 'Someone'}: ${text.length > 60 ? text.slice(0, 57) + '…' : text}`);
    }
  }

  renderUnread() {
    const b = $('btn-chat');
    let badge = b.querySelector('.count');
    if (!badge) {
      badge = h('span', {class: 'count'});
      b.append(badge);
    }
    badge.textContent = this.unread ? String(this.unread) : '';
    badge.hidden = !this.unread;
    b.setAttribute('aria-label', this.unread ? `Chat, ${this.unread} unread` : 'Chat');
  }

  clearChat() {
    $('chat-log').replaceChildren();
    this.unread = 0;
    this.renderUnread();
  }

  // ------------------------------------------------------------ controls

  setControls({audio, video, hasAudio, hasVideo, admin, relayOnly, hand, sharing, canShare}) {
    const sb = $('btn-share');
    sb.hidden = !canShare && !sharing;
    sb.replaceChildren(icon('screen'), h('span', {class: 'ctl-label'}, sharing ? 'Stop sharing' : 'Share screen'));
    sb.setAttribute('aria-pressed', String(!!sharing));
    sb.setAttribute('aria-label', sharing ? 'Stop sharing your screen' : 'Share screen with everyone');
    const hb = $('btn-hand');
    hb.replaceChildren(icon('hand'), h('span', {class: 'ctl-label'}, hand ? 'Lower hand' : 'Raise hand'));
    hb.setAttribute('aria-pressed', String(!!hand));
    hb.setAttribute('aria-label', hand ? 'Lower hand' : 'Raise hand');
    $('btn-react').setAttribute('aria-label', 'React with an emoji');
    const mic = $('btn-mic'), cam = $('btn-cam');
    mic.replaceChildren(icon(audio ? 'mic' : 'micOff'), h('span', {class: 'ctl-label'}, audio ? 'Mute' : 'Unmute'));
    mic.setAttribute('aria-pressed', String(!audio));
    mic.setAttribute('aria-label', audio ? 'Mute your microphone' : 'Unmute your microphone');
    mic.disabled = !hasAudio;
    mic.title = hasAudio ? '' : 'No microphone';
    cam.replaceChildren(icon(video ? 'cam' : 'camOff'), h('span', {class: 'ctl-label'}, video ? 'Stop video' : 'Start video'));
    cam.setAttribute('aria-pressed', String(!video));
    cam.setAttribute('aria-label', video ? 'Stop video (your camera goes off)' : 'Start video (your camera comes on)');
    cam.disabled = !hasVideo;
    cam.title = hasVideo ? '' : 'No camera';
    $('btn-end').hidden = !admin;
    $('btn-end').setAttribute('aria-label', 'End the meeting for everyone');
    $('btn-leave').setAttribute('aria-label', 'Leave the meeting');
    $('settings-relay').checked = !!relayOnly;
    this.renderUnread();
  }

  destroy() {
    document.removeEventListener('keydown', this.onKey);
    for (const p of document.querySelectorAll('.panel')) p.hidden = true;
    $('react-menu').hidden = true;
    for (const t of this.tiles.values()) clearTimeout(t.reactionTimer);
    this.clearTiles();
    this.clearChat();
    $('path-alert').hidden = true;
    $('people').replaceChildren();
  }
}

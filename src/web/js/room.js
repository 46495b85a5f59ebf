// A meeting, from its link to the end: the lobby (status check, preview, name, relay-only),
// the join (REST), signaling (signaling.js), one peer connection per remote participant
// (peer.js), what everyone sees (room-view.js), the ADMIN's commands, TURN credentials
// renewed before they expire, and the messages for an ended or expired meeting, a removal,
// a refused camera.
//
// Who starts a peer connection: for each pair of participants the one with the smaller id
// creates it and offers; the other creates its side when the offer arrives. Either side may
// renegotiate later (perfect negotiation, peer.js). A participant that had to start over
// (a new signaling session after a long loss, a reload) tells the others with an
// "ice-restart" of reason "reset", and each pair builds a new connection.

import {api, ApiError, meetingLink, session} from './api.js';
import {openMedia, mediaErrorText, stopMedia} from './media.js';
import {checkNetwork, explainCheck, explainNoPath, PROBE_MS, pathWord, worstPath} from './netcheck.js';
import {iceServersFor, Peer} from './peer.js';
import {RoomView} from './room-view.js';
import {Signaling} from './signaling.js';
import {$, confirmDialog, copyText, formMessage, h, initials, log, showView, toast} from './ui.js';

const RELAY_KEY = 'meetlite.relayOnly';
const RENEW_FRACTION = 0.75; // of a TURN credential's life, when a fresh one is fetched
const RENEW_MIN_MS = 20000;

const MESSAGES = {
  ended: ['The meeting has ended', 'An ADMIN ended this meeting for everyone.'],
  expired: ['The meeting is over', 'This meeting\'s time ran out.'],
  removed: ['You were removed from the meeting', 'An ADMIN removed you. You cannot join this meeting again.'],
  left: ['You left the meeting', 'You are no longer in this meeting.'],
  gone: ['Meeting not found', 'No meeting has this code. Check the link or ask for a new one.'],
  'too-many': ['Already open elsewhere', 'This meeting is open in too many of your tabs or devices. Close one and try again.'],
  full: ['The meeting is full', 'No more participants can join this meeting.'],
  denied: ['You were not let in', 'An ADMIN of the meeting did not let you in.'],
  'signed-out': ['You were disconnected', 'Your sign-in expired while the connection was lost. Sign in again and rejoin with the meeting link.'],
};

/** Shows a room message (ended, removed...) in place of the lobby or the call. */
function showMessage(key, extra) {
  const [title, text] = MESSAGES[key] || [key, extra || ''];
  $('lobby').hidden = true;
  $('call').hidden = true;
  $('waiting').hidden = true;
  const box = $('room-message');
  box.hidden = false;
  box.dataset.reason = key;
  $('room-message-title').textContent = title;
  $('room-message-text').textContent = extra && MESSAGES[key] ? `${text} ${extra}` : text;
  showView('view-room');
  $('room-message-title').focus();
}

function finalOf(e) {
  if (!(e instanceof ApiError)) return null;
  return {removed: 'removed', meeting_ended: 'ended', meeting_expired: 'expired',
          meeting_not_found: 'gone', meeting_full: 'full', denied: 'denied'}[e.code] || null;
}

export class Room {
  constructor(code, {onExit}) {
    this.code = code;
    this.onExit = onExit;
    this.members = new Map(); // id -> {id, name, role, host, audio, video, online}
    this.lobby = new Map();   // ADMINs: who waits to be let in, id -> {id, name}
    this.passcode = '';       // typed in the lobby when the meeting asks for one
    this.screen = null;       // our screen share while it runs: {stream, track}
    this.screenShare = 'anyone'; // who may share a screen in this meeting ('anyone', 'admins')
    this.peers = new Map();   // id -> Peer
    this.me = null;           // {id, role, name}
    this.stream = new MediaStream();
    this.audioOn = true;
    this.videoOn = true;
    this.relayOnly = localStorage.getItem(RELAY_KEY) === '1';
    this.iceServers = [];
    this.sig = null;
    this.view = null;
    this.ended = false;
    this.renewals = 0;
    this.sessions = 0;
    this.netcheck = null;   // the lobby's network check: {verdict, ways, host, ms}
    this.sentPath = null;   // the path word last told the others
    this.checking = null;   // the check's promise while it runs
    this.timers = {};
    this.onPageHide = () => this.sig && this.sig.close();
    this.onBeforeUnload = (e) => {
      if (this.sig && !this.ended) {
        e.preventDefault();
        e.returnValue = '';
      }
    };
  }

  // ------------------------------------------------------------ lobby

  async enter() {
    showView('view-room');
    $('room-message').hidden = true;
    $('call').hidden = true;
    $('lobby').hidden = true;
    $('waiting').hidden = true;
    let meeting;
    try {
      meeting = await api('GET', `/meetings/${encodeURIComponent(this.code)}`);
    } catch (e) {
      const f = finalOf(e);
      if (f) showMessage(f);
      else if (e.status !== 401) showMessage('Cannot open the meeting', e.message);
      return;
    }
    if (this.closedByNavigation) return;
    this.meeting = meeting;
    if (meeting.status === 'ENDED') return showMessage('ended');
    if (meeting.status === 'EXPIRED') return showMessage('expired');
    $('room-title').textContent = meeting.title;
    const left = Math.max(0, Math.round((Date.parse(meeting.expires_at) - Date.now()) / 60000));
    $('lobby-meta').textContent = `Code ${meeting.code} · hosted by ${meeting.host.display_name} · ${left} min left`;
    const s = session.get();
    $('lobby-name').value = (s && s.user && s.user.display_name) || '';
    $('lobby-relay').checked = this.relayOnly;
    // the host never types it; others see the field when the meeting has one
    const mine = s && s.user && meeting.host && s.user.id === meeting.host.id;
    $('lobby-passcode-box').hidden = !meeting.passcode || mine;
    $('lobby-passcode').value = '';
    formMessage($('lobby-msg'), '');
    $('lobby').hidden = false;
    document.title = `${meeting.title} · meetlite`;
    $('lobby-form').onsubmit = (e) => {
      e.preventDefault();
      this.join();
    };
    $('lobby-cam').onchange = () => this.previewState();
    $('lobby-mic').onchange = () => this.previewState();
    $('lobby-join').disabled = true;
    $('preview-avatar').textContent = initials($('lobby-name').value);
    this.checking = this.checkNetwork();
    await this.startPreview();
    $('lobby-join').disabled = false;
    $('lobby-name').focus();
  }

  async startPreview() {
    const {stream, error} = await openMedia();
    if (this.closedByNavigation) {
      stopMedia(stream);
      return;
    }
    this.stream = stream;
    this.mediaError = error;
    const errBox = $('media-error');
    errBox.hidden = !error;
    errBox.textContent = error ? mediaErrorText(error) : '';
    const hasA = stream.getAudioTracks().length > 0, hasV = stream.getVideoTracks().length > 0;
    $('lobby-mic').disabled = !hasA;
    $('lobby-cam').disabled = !hasV;
    if (!hasA) $('lobby-mic').checked = false;
    if (!hasV) $('lobby-cam').checked = false;
    $('preview').srcObject = hasV ? stream : null;
    this.previewState();
  }

  /** The network check (netcheck.js) with a probe credential, shown in the lobby as it
   * goes; never throws. Resolves to the result, or null when no check could run. */
  async checkNetwork() {
    const box = $('netcheck');
    const show = ({kind, title, text}, ways) => {
      box.dataset.kind = kind;
      $('netcheck-title').textContent = title;
      $('netcheck-text').textContent = text;
      $('netcheck-ways').replaceChildren(...(ways || []).map((w) => h('li', {dataset: {way: w.key, ok: String(w.ok)}},
        `${w.label}: ${w.ok ? `reached (${w.ms} ms)` : 'blocked'}`)));
    };
    box.hidden = false;
    box.dataset.verdict = '';
    show({kind: 'info', title: 'Checking your network…', text: 'Testing which ways reach the meeting\'s relay. This takes a few seconds.'});
    let result = null, why = '';
    try {
      const probe = await api('POST', `/meetings/${encodeURIComponent(this.code)}/network-check`);
      if (this.closedByNavigation) return null;
      result = await checkNetwork(probe.iceServers);
    } catch (e) {
      why = e.message || 'failed';
      log('room: network check:', why);
    }
    if (this.closedByNavigation) return null;
    this.netcheck = result || {verdict: 'unchecked', ways: [], host: '', ms: 0};
    log(`room: network check ${this.netcheck.verdict} in ${this.netcheck.ms} ms: ` +
        this.netcheck.ways.map((w) => `${w.label} ${w.ok ? 'ok' : 'blocked'}`).join(', '));
    box.dataset.verdict = this.netcheck.verdict;
    show(explainCheck(this.netcheck, why), this.netcheck.ways);
    return this.netcheck;
  }

  previewState() {
    const cam = $('lobby-cam').checked && this.stream.getVideoTracks().length > 0;
    $('preview-tile').dataset.video = cam ? 'on' : 'off';
    for (const t of this.stream.getVideoTracks()) t.enabled = cam;
    for (const t of this.stream.getAudioTracks()) t.enabled = $('lobby-mic').checked;
  }

  // ------------------------------------------------------------ joining

  async join() {
    const name = $('lobby-name').value.trim();
    if (!name) {
      formMessage($('lobby-msg'), 'Enter the name the others will see.');
      $('lobby-name').focus();
      return;
    }
    $('lobby-join').disabled = true;
    formMessage($('lobby-msg'), 'Joining…', 'info');
    this.relayOnly = $('lobby-relay').checked;
    localStorage.setItem(RELAY_KEY, this.relayOnly ? '1' : '0');
    this.audioOn = $('lobby-mic').checked && this.stream.getAudioTracks().length > 0;
    this.videoOn = $('lobby-cam').checked && this.stream.getVideoTracks().length > 0;
    this.name = name;
    this.passcode = $('lobby-passcode-box').hidden ? '' : $('lobby-passcode').value;
    // the check's verdict goes with the join: wait for it (it ends within PROBE_MS)
    if (this.checking) {
      formMessage($('lobby-msg'), 'Finishing the network check…', 'info');
      await Promise.race([this.checking, new Promise((r) => setTimeout(r, PROBE_MS + 2000))]);
      formMessage($('lobby-msg'), 'Joining…', 'info');
    }
    let j;
    try {
      j = await this.rejoin();
    } catch (e) {
      $('lobby-join').disabled = false;
      const f = finalOf(e);
      if (f) return showMessage(f);
      if (e.code === 'passcode_required' || e.code === 'invalid_passcode') {
        $('lobby-passcode-box').hidden = false;
        formMessage($('lobby-msg'), e.code === 'invalid_passcode' ? 'That passcode is not this meeting\'s.' : 'This meeting asks for a passcode.');
        $('lobby-passcode').focus();
        return;
      }
      formMessage($('lobby-msg'), e.message || 'Could not join.');
      return;
    }
    if (this.closedByNavigation) return;
    this.me = {id: j.participant_id, role: j.role, name: j.display_name};
    if (j.state === 'waiting') return this.wait(j);
    this.startCall(j.signaling_token);
  }

  /** The waiting room: no call and no TURN credential yet; a signaling session that hears
   * only "admitted" or "denied". Admitted: join again (the credential comes with it). */
  wait(j) {
    $('lobby').hidden = true;
    $('waiting').hidden = false;
    this.waiting = true;
    $('waiting-text').textContent = this.meeting.waiting_room
      ? 'An ADMIN of the meeting lets you in in a moment.'
      : 'The meeting starts when the host arrives.';
    $('waiting-title').focus();
    $('waiting-cancel').onclick = async () => {
      this.stopWaiting();
      try {
        await api('POST', `/meetings/${encodeURIComponent(this.code)}/leave`);
      } catch (e) {
        log('room: leave the waiting room:', e.message);
      }
      stopMedia(this.stream);
      this.onExit();
    };
    log(`room: waiting to be let in as ${j.participant_id}`);
    this.sig = new Signaling(j.signaling_token, async () => {
      try {
        const again = await this.rejoin();
        if (again.state !== 'waiting') this.admitted(again);
        return again.signaling_token;
      } catch (e) {
        const f = finalOf(e) || (e.status === 401 ? 'signed-out' : null);
        if (f) e.final = f;
        throw e;
      }
    });
    this.sig.addEventListener('message', (e) => {
      if (e.detail.type === 'admitted') this.onAdmitted();
      else if (e.detail.type === 'denied') this.finishWaiting('denied');
    });
    this.sig.addEventListener('final', (e) => {
      if (e.detail.reason === 'admitted') this.onAdmitted();
      else this.finishWaiting(e.detail.reason);
    });
  }

  stopWaiting() {
    this.waiting = false;
    if (this.sig) this.sig.close();
    this.sig = null;
    $('waiting').hidden = true;
  }

  finishWaiting(reason) {
    if (!this.waiting) return;
    this.stopWaiting();
    stopMedia(this.stream);
    showMessage(reason);
  }

  /** Let in: the join again carries the TURN credential and a token for the call's session. */
  async onAdmitted() {
    if (!this.waiting) return;
    this.stopWaiting();
    log('room: admitted');
    let j;
    try {
      j = await this.rejoin();
    } catch (e) {
      return showMessage(finalOf(e) || 'Cannot join the meeting', finalOf(e) ? undefined : e.message);
    }
    if (j.state === 'waiting') return this.wait(j); // held again (the setting changed)
    this.admitted(j);
  }

  admitted(j) {
    if (this.closedByNavigation || this.view) return;
    this.stopWaiting();
    this.me = {id: j.participant_id, role: j.role, name: j.display_name};
    toast('You were let in');
    this.startCall(j.signaling_token);
  }

  /** POST /join: the same participant again, with a fresh TURN credential and signaling
   * token (used to join, to renew the credential and after a lost session). */
  async rejoin() {
    const body = {display_name: this.name};
    if (this.netcheck) body.network = this.netcheck.verdict;
    if (this.passcode) body.passcode = this.passcode;
    const j = await api('POST', `/meetings/${encodeURIComponent(this.code)}/join`, body);
    this.applyCredential(j.iceServers, j.turn, j.meeting_expires_at, j.relay);
    return j;
  }

  applyCredential(iceServers, turn, meetingEnd, relay) {
    if (iceServers) {
      this.iceServers = iceServers;
      this.relay = relay || null;
      this.onFallback = false;
    }
    if (meetingEnd) this.meetingEnd = meetingEnd;
    // a credential that lasts as long as the meeting needs no renewal
    if (turn && turn.expires_at && this.meetingEnd && turn.expires_at >= this.meetingEnd) {
      clearTimeout(this.timers.renew);
      this.credentialExpiresAt = turn.expires_at;
      log('room: the TURN credential lasts until the meeting ends');
    } else if (turn && turn.ttl) {
      const lifeMs = Math.max(0, (turn.expires_at * 1000) - Date.now());
      const ms = Math.max(RENEW_MIN_MS, Math.min(lifeMs, turn.ttl * 1000) * RENEW_FRACTION);
      clearTimeout(this.timers.renew);
      this.timers.renew = setTimeout(() => this.renew(), ms);
      this.credentialExpiresAt = turn.expires_at;
      log(`room: TURN credential for ${Math.round(lifeMs / 1000)} s, renewed in ${Math.round(ms / 1000)} s`);
    }
  }

  /** A fresh TURN credential before the current one expires: every peer connection takes it
   * and restarts ICE, so that its allocation moves to the new credential. */
  async renew() {
    if (this.ended) return;
    try {
      await this.rejoin();
    } catch (e) {
      const f = finalOf(e);
      if (f) return this.finish(f);
      log('room: renewal failed:', e.message);
      if (e.status === 401) return; // signed out: the current credential serves until it ends
      this.timers.renew = setTimeout(() => this.renew(), 10000);
      return;
    }
    this.renewals++;
    for (const p of this.peers.values()) {
      p.configure(this.rtcConfig());
      p.restart('renew');
    }
  }

  rtcConfig() {
    return {iceServers: iceServersFor(this.iceServers, this.relayOnly), iceTransportPolicy: this.relayOnly ? 'relay' : 'all'};
  }

  startCall(token) {
    $('lobby').hidden = true;
    $('call').hidden = false;
    document.body.classList.add('in-call');
    this.view = new RoomView({
      mic: () => this.toggleAudio(),
      cam: () => this.toggleVideo(),
      leave: () => this.leave(),
      end: () => this.endMeeting(),
      chat: (text) => this.sendChat(text),
      remove: (id) => this.removeParticipant(id),
      mute: (id) => this.askMute(id),
      relay: (on) => this.setRelayOnly(on),
      admit: (id) => this.decide(id, 'admit'),
      hand: () => this.toggleHand(),
      share: () => this.toggleShare(),
      lowerHand: (id) => this.lowerHand(id),
      react: (emoji) => this.sendReaction(emoji),
      deny: (id) => this.decide(id, 'deny'),
      copyLink: () => copyText(meetingLink(this.meeting.code)),
    });
    this.view.setTitle(this.meeting.title, this.meeting.code);
    this.view.showMember({...this.me, audio: this.audioOn, video: this.videoOn}, true);
    this.view.setStream(this.me.id, this.stream);
    this.renderControls();
    this.view.setNet('Connecting…', 'info');
    window.addEventListener('pagehide', this.onPageHide);
    window.addEventListener('beforeunload', this.onBeforeUnload);
    this.sig = new Signaling(token, async () => {
      try {
        return (await this.rejoin()).signaling_token;
      } catch (e) {
        const f = finalOf(e) || (e.status === 401 ? 'signed-out' : null);
        if (f) e.final = f;
        throw e;
      }
    });
    this.sig.addEventListener('message', (e) => this.onSignal(e.detail));
    this.sig.addEventListener('state', (e) => this.onSigState(e.detail.state));
    this.sig.addEventListener('final', (e) => this.finish(e.detail.reason));
    $('btn-mic').focus();
  }

  onSigState(state) {
    if (!this.view) return;
    if (state === 'open') this.view.setNet('');
    else if (state === 'reconnecting') this.view.setNet('Connection lost: reconnecting…');
  }

  // ------------------------------------------------------------ signaling

  onSignal(m) {
    switch (m.type) {
    case 'joined': return this.onJoined(m);
    case 'resumed': return this.onResumed(m);
    case 'participant-joined':
    case 'participant-updated': return this.onMember(m.participant, m.type === 'participant-joined');
    case 'participant-left': return this.onLeft(m.participant_id, m.reason);
    case 'removed': return this.onLeft(m.participant_id, 'removed');
    case 'lobby-waiting': return this.onLobby(m.participant);
    case 'lobby-left': return this.onLobbyLeft(m.participant_id, m.reason);
    case 'meeting-ended': return this.finish(m.reason === 'expired' ? 'expired' : 'ended');
    case 'offer':
    case 'answer':
    case 'candidate': return this.onPeerSignal(m);
    case 'ice-restart': return this.onRestartRequest(m);
    case 'ice-servers': return this.onIceServers(m);
    case 'chat': return this.view.addChat(m, m.from === this.me.id);
    case 'reaction': return this.onReaction(m);
    case 'meeting-updated': return this.onMeetingUpdated(m);
    case 'mute-request': return this.onMuteRequest(m);
    case 'ack': return this.onAck(m);
    case 'error': return this.onError(m);
    default: return undefined; // pong, and types of later versions
    }
  }

  onJoined(m) {
    this.sessions++;
    const again = this.sessions > 1;
    log(`room: joined as ${m.participant_id} (${m.role}), ${m.roster.length} present${again ? ', a new session' : ''}`);
    this.me.role = m.role;
    if (m.screen_share) this.screenShare = m.screen_share;
    const mine = m.roster.find((p) => p.id === this.me.id);
    this.me.hand = mine ? mine.hand : null;
    if (m.iceServers && m.iceServers.length) this.iceServers = m.iceServers;
    this.relay = m.relay || null;
    this.onFallback = false;
    this.members.clear();
    this.lobby.clear();
    for (const p of m.roster) {
      if (p.state === 'waiting') this.lobby.set(p.id, {id: p.id, name: p.name});
      else this.members.set(p.id, {...p});
    }
    if (again) {
      // the others may still hold connections to our previous session: start over with each
      for (const [id, p] of this.peers) {
        p.close();
        this.peers.delete(id);
        this.view.removeTile(id);
      }
    }
    this.view.clearChat();
    for (const c of m.chat || []) this.view.addChat(c, c.from === this.me.id, true);
    // our media state, which the others see on our tile
    this.sig.send({type: 'media', payload: {audio: this.audioOn, video: this.videoOn}});
    for (const p of this.members.values()) {
      if (p.id === this.me.id || !p.online) continue;
      this.view.showMember(p);
      if (again) this.sig.send({type: 'ice-restart', to: p.id, payload: {reason: 'reset'}});
      if (this.initiates(p.id)) this.peer(p.id);
    }
    this.refresh();
  }

  /** ADMINs: one arrives in the lobby. */
  onLobby(p) {
    if (!p || !p.id) return;
    this.lobby.set(p.id, {id: p.id, name: p.name});
    toast(`${p.name} is waiting to join`);
    this.refresh();
  }

  onLobbyLeft(id, reason) {
    const p = this.lobby.get(id);
    if (!p) return;
    this.lobby.delete(id);
    if (reason === 'left') toast(`${p.name} left the waiting room`);
    this.refresh();
  }

  /** Admit or deny one in the lobby (REST; the lobby-left event updates the list). */
  async decide(id, what) {
    const p = this.lobby.get(id);
    try {
      await api('POST', `/meetings/${encodeURIComponent(this.code)}/participants/${encodeURIComponent(id)}/${what}`);
      if (p) toast(what === 'admit' ? `${p.name} was let in` : `${p.name} was turned away`);
    } catch (e) {
      if (e.code === 'not_waiting' || e.code === 'participant_not_found') this.onLobbyLeft(id, 'gone');
      else toast(e.message, 'error');
    }
  }

  onResumed(m) {
    log(`room: session resumed, ${m.replayed} messages replayed`);
    // media paths may have died with the network: restart what is not connected
    for (const p of this.peers.values()) {
      const st = p.pc.iceConnectionState;
      if (st !== 'connected' && st !== 'completed') p.restart('resumed');
    }
  }

  onMember(p, joined) {
    if (!p || !p.id) return;
    const prev = this.members.get(p.id);
    const m = {...prev, ...p, online: joined || (p.online ?? (prev ? prev.online : true))};
    this.members.set(p.id, m);
    if (p.hand && !(prev && prev.hand) && p.id !== this.me.id && this.me.role === 'ADMIN') toast(`${p.name} raised a hand`);
    if (p.id !== this.me.id && (p.screen || null) !== ((prev && prev.screen) || null)) this.onScreenChange(p.id, m);
    if (p.id === this.me.id) {
      this.me.role = p.role;
      this.me.hand = p.hand;
      if (this.screen && this.screenShare === 'admins' && p.role !== 'ADMIN') this.stopShare('no longer allowed');
      this.view.showMember({...this.me, audio: p.audio, video: p.video}, true);
      this.renderControls();
    } else if (m.online) {
      this.view.showMember(m);
      if (joined) {
        toast(`${p.name} joined`);
        // the newcomer's roster (from the database) lacks our share: say it again
        if (this.screen) this.sig.send({type: 'screen', payload: {sharing: true, stream: this.screen.stream.id}});
        if (this.initiates(p.id) && !this.peers.has(p.id)) this.peer(p.id);
        this.reportPath(true); // the newcomer's roster (from the database) lacks our path
      }
    }
    this.refresh();
  }

  onLeft(id, reason) {
    if (id === this.me.id) {
      if (reason === 'removed') this.finish('removed');
      return;
    }
    const m = this.members.get(id);
    // a participant whose connection went away is still in the meeting (and may come back)
    if (m && reason === 'disconnected') m.online = false;
    else this.members.delete(id);
    const p = this.peers.get(id);
    if (p) p.close();
    this.peers.delete(id);
    this.view.removeTile(id);
    this.view.removeScreen(id);
    this.reportPath();
    if (m) toast(reason === 'removed' ? `${m.name} was removed` : reason === 'disconnected' ? `${m.name} lost the connection` : `${m.name} left`);
    this.refresh();
  }

  /** True when this side creates the connection to id and offers first. */
  initiates(id) {
    return this.me.id < id;
  }

  /** The peer connection to id, made on first need. */
  peer(id) {
    let p = this.peers.get(id);
    if (p) return p;
    p = new Peer({
      id,
      polite: this.me.id > id,
      config: this.rtcConfig(),
      stream: this.stream,
      send: (type, payload) => this.sig.send({type, to: id, payload}),
      onTrack: (stream) => this.view.setStream(id, stream),
      onChange: () => this.onPeerChange(id, p),
      isScreen: (sid) => (this.members.get(id) || {}).screen === sid,
      onScreen: (stream) => this.view && this.view.showScreen(id, stream, (this.members.get(id) || {}).name || 'Someone'),
      onFailed: () => this.onIceFailed(),
    });
    this.peers.set(id, p);
    if (this.screen) p.addScreen(this.screen.track, this.screen.stream);
    const m = this.members.get(id);
    if (m) this.view.showMember(m);
    this.view.setPath(id, p.path, 'new');
    return p;
  }

  /** Our relay died or drains (issue #16): the control plane names the meeting's new relay.
   * Every connection takes the new iceServers and restarts ICE, so that its allocation moves;
   * the browsers keep the old path (if any) until the new one takes over. */
  onIceServers(m) {
    if (!Array.isArray(m.iceServers) || !m.iceServers.length) return;
    this.iceServers = m.iceServers;
    this.relay = m.relay || null;
    this.onFallback = false;
    this.relayMoves = (this.relayMoves || 0) + 1;
    this.relayMovedAt = Date.now();
    const why = m.reason === 'draining' ? 'drains' : 'is down';
    log(`room: our relay ${why}; moving to ${this.relay ? this.relay.node : 'another relay'}`);
    for (const p of this.peers.values()) {
      p.configure(this.rtcConfig());
      p.restart(`relay ${m.reason === 'draining' ? 'draining' : 'down'}`);
    }
  }

  /** A connection's ICE failed: with a fleet, the fallback relay the join named is tried once
   * (for every connection: they share the relay) before the primary's failure is final. */
  onIceFailed() {
    const fb = this.relay && this.relay.fallback;
    if (this.onFallback || !fb || !Array.isArray(fb.iceServers) || !fb.iceServers.length) return;
    this.onFallback = true;
    this.iceServers = fb.iceServers;
    log(`room: ICE failed over relay ${this.relay.node}; trying the fallback relay ${fb.node}`);
    for (const p of this.peers.values()) p.configure(this.rtcConfig());
  }

  /** A connection's state or path changed: its tile, and our path as the others see it. */
  onPeerChange(id, p) {
    if (!this.view || p.closed) return;
    const m = this.members.get(id) || {};
    const why = p.noPath ? explainNoPath(m.name || 'this participant', this.netcheck && this.netcheck.verdict, m.network, this.relayOnly) : '';
    this.view.setPath(id, p.path, p.pc.iceConnectionState, why);
    this.reportPath();
  }

  /** Tells the others our path (a "path" message) when it changed, or again (force): the most
   * constrained of our connections' paths (netcheck.js worstPath); nothing while alone. */
  reportPath(force = false) {
    if (!this.sig || this.ended) return;
    const words = [...this.peers.values()].filter((p) => !p.closed).map((p) => pathWord(p.path, p.noPath));
    const word = worstPath(words) || this.sentPath;
    if (!word || (word === this.sentPath && !force)) return;
    this.sentPath = word;
    this.sig.send({type: 'path', payload: {path: word}});
  }

  onPeerSignal(m) {
    if (!this.members.has(m.from)) return; // gone already
    let p = this.peers.get(m.from);
    if (p && m.type === 'offer' && p.isForeign(m.payload.sdp)) {
      log(`room: ${m.from.slice(0, 8)} started over: a new connection`);
      p.close();
      this.peers.delete(m.from);
      p = null;
    }
    if (!p && m.type !== 'offer') return; // for a connection that is gone
    this.peer(m.from).handle(m.type, m.payload);
  }

  onRestartRequest(m) {
    const reason = m.payload && m.payload.reason;
    if (reason === 'reset') {
      const p = this.peers.get(m.from);
      if (p) p.close();
      this.peers.delete(m.from);
      if (this.members.has(m.from) && this.initiates(m.from)) this.peer(m.from);
      return;
    }
    const p = this.peers.get(m.from);
    if (p) p.restartRequested();
    else if (this.members.has(m.from) && this.initiates(m.from)) this.peer(m.from);
  }

  onMuteRequest(m) {
    const kind = (m.payload && m.payload.kind) || 'audio';
    const who = (this.members.get(m.from) || {}).name || 'An ADMIN';
    if ((kind === 'audio' || kind === 'all') && this.audioOn) this.toggleAudio();
    if ((kind === 'video' || kind === 'all') && this.videoOn) this.toggleVideo();
    toast(`${who} muted you`);
  }

  onAck(m) {
    // An ack only confirms the command. A removal is shown once, by the 'removed' event that
    // every member gets, the ADMIN who removed included (onLeft).
    log(`room: ${m.of} done${m.participant_id ? ' (' + m.participant_id + ')' : ''}`);
  }

  onError(m) {
    log(`room: the server refused message ${m.id}: ${m.code} ${m.message}`);
    if (['not_admin', 'host_protected', 'participant_not_found', 'invalid_field'].includes(m.code)) toast(m.message, 'error');
    else if (m.code === 'rate_limited') toast('Too many reactions at once: wait a moment.', 'error');
  }

  // ------------------------------------------------------------ controls

  renderControls() {
    if (!this.view) return;
    this.view.setControls({
      audio: this.audioOn,
      video: this.videoOn,
      hasAudio: this.stream.getAudioTracks().length > 0,
      hasVideo: this.stream.getVideoTracks().length > 0,
      admin: this.me.role === 'ADMIN',
      relayOnly: this.relayOnly,
      hand: !!this.me.hand,
      sharing: !!this.screen,
      canShare: this.canShare(),
    });
  }

  refresh() {
    if (!this.view) return;
    this.view.renderPeople(this.members, this.me.id, this.me.role === 'ADMIN');
    this.view.renderLobby(this.lobby, this.me.role === 'ADMIN');
    this.renderControls();
  }

  sendMedia() {
    this.sig.send({type: 'media', payload: {audio: this.audioOn, video: this.videoOn}});
    this.view.showMember({...this.me, audio: this.audioOn, video: this.videoOn}, true);
    this.renderControls();
  }

  toggleAudio() {
    if (!this.stream.getAudioTracks().length) return;
    this.audioOn = !this.audioOn;
    for (const t of this.stream.getAudioTracks()) t.enabled = this.audioOn;
    this.sendMedia();
  }

  toggleVideo() {
    if (!this.stream.getVideoTracks().length) return;
    this.videoOn = !this.videoOn;
    for (const t of this.stream.getVideoTracks()) t.enabled = this.videoOn;
    this.sendMedia();
  }

  // ------------------------------------------------------------ screen sharing

  canShare() {
    return !!(navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia) &&
      (this.screenShare !== 'admins' || this.me.role === 'ADMIN');
  }

  toggleShare() {
    if (this.screen) this.stopShare();
    else this.startShare();
  }

  /** Shares a screen or a window: its track goes to every connection (each renegotiates), the
   * others are told its stream id first, so that they show it apart from the camera. */
  async startShare() {
    if (!this.sig || this.ended || this.screen) return;
    if (!this.canShare()) {
      toast(this.screenShare === 'admins' ? 'Only ADMINs may share a screen in this meeting.' : 'This browser cannot share a screen.', 'error');
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({video: true, audio: false});
    } catch (e) {
      log('room: screen share not started:', e.name, e.message);
      if (e.name !== 'NotAllowedError' && e.name !== 'AbortError') toast('The screen could not be shared.', 'error');
      return;
    }
    const track = stream.getVideoTracks()[0];
    if (!track || this.ended) {
      stopMedia(stream);
      return;
    }
    if ('contentHint' in track) track.contentHint = 'detail'; // text stays sharp
    this.screen = {stream, track};
    track.onended = () => this.stopShare('ended by the browser'); // its own "Stop sharing" bar
    this.sig.send({type: 'screen', payload: {sharing: true, stream: stream.id}});
    for (const p of this.peers.values()) p.addScreen(track, stream);
    this.view.showScreen(this.me.id, stream, this.me.name, true);
    log(`room: sharing the screen (${track.label})`);
    this.renderControls();
  }

  stopShare(why = 'stopped') {
    if (!this.screen) return;
    const {track} = this.screen;
    this.screen = null;
    track.onended = null;
    track.stop();
    for (const p of this.peers.values()) p.removeScreen();
    if (this.sig && !this.ended) this.sig.send({type: 'screen', payload: {sharing: false}});
    if (this.view) this.view.removeScreen(this.me.id);
    log(`room: screen share ${why}`);
    this.renderControls();
  }

  /** Another's share started or stopped (its roster entry's screen). */
  onScreenChange(id, m) {
    if (!this.view) return;
    if (!m.screen) {
      this.view.removeScreen(id);
      return;
    }
    const p = this.peers.get(id);
    const s = p && p.takeScreen(m.screen); // its track may have come before the news
    if (s) {
      this.view.showScreen(id, s, m.name);
      this.view.setStream(id, p.remoteStream);
    }
    toast(`${m.name} is sharing a screen`);
  }

  onMeetingUpdated(m) {
    if (!m.screen_share) return;
    this.screenShare = m.screen_share;
    if (this.screen && !this.canShare()) {
      this.stopShare('no longer allowed');
      toast('Only ADMINs may share a screen now.');
    }
    this.renderControls();
  }

  toggleHand() {
    if (!this.sig || this.ended) return;
    this.sig.send({type: 'hand', payload: {raised: !this.me.hand}});
  }

  lowerHand(id) {
    if (!this.sig || this.ended) return;
    if (id === this.me.id) this.sig.send({type: 'hand', payload: {raised: false}});
    else this.sig.send({type: 'lower-hand', to: id});
  }

  sendReaction(emoji) {
    if (!this.sig || this.ended) return;
    this.sig.send({type: 'reaction', payload: {emoji}});
  }

  onReaction(m) {
    const who = m.from === this.me.id ? this.me : this.members.get(m.from);
    if (!who || !m.payload) return;
    this.view.showReaction(m.from, m.payload.emoji, m.from === this.me.id ? 'You' : who.name);
  }

  sendChat(text) {
    if (!this.sig || this.ended) return false;
    this.sig.send({type: 'chat', payload: {text}});
    return true;
  }

  setRelayOnly(on) {
    this.relayOnly = on;
    localStorage.setItem(RELAY_KEY, on ? '1' : '0');
    for (const p of this.peers.values()) {
      p.configure(this.rtcConfig());
      p.restart('policy');
    }
    toast(on ? 'Relay only: media now goes through the relay' : 'Media may now go directly');
  }

  async askMute(id) {
    this.sig.send({type: 'mute-request', to: id, payload: {kind: 'audio'}});
    toast(`Asked ${(this.members.get(id) || {}).name || 'the participant'} to mute`);
  }

  async removeParticipant(id) {
    const m = this.members.get(id);
    if (!m) return;
    const ok = await confirmDialog({title: `Remove ${m.name}?`, text: `${m.name} leaves the meeting at once and cannot join it again.`,
                                    confirm: 'Remove', danger: true});
    if (ok && this.members.has(id)) this.sig.send({type: 'remove', to: id});
  }

  async endMeeting() {
    const ok = await confirmDialog({title: 'End the meeting for everyone?', text: 'Everyone leaves, and the meeting link stops working.',
                                    confirm: 'End meeting', danger: true});
    if (ok && !this.ended) this.sig.send({type: 'end'});
  }

  async leave() {
    const ok = await confirmDialog({title: 'Leave the meeting?', text: 'You can join again with the link while the meeting lasts.',
                                    confirm: 'Leave', danger: true});
    if (!ok || this.ended) return;
    this.teardown();
    try {
      await api('POST', `/meetings/${encodeURIComponent(this.code)}/leave`);
    } catch (e) {
      log('room: leave:', e.message);
    }
    toast('You left the meeting');
    this.onExit();
  }

  // ------------------------------------------------------------ the end

  /** The meeting is over for us: ended, expired, removed, or our session cannot come back. */
  finish(reason) {
    if (this.ended) return;
    log(`room: finished (${reason})`);
    this.teardown();
    showMessage(reason);
  }

  teardown() {
    if (this.screen) {
      this.screen.track.onended = null;
      this.screen.track.stop();
      this.screen = null;
    }
    this.ended = true;
    for (const t of Object.values(this.timers)) clearTimeout(t);
    window.removeEventListener('pagehide', this.onPageHide);
    window.removeEventListener('beforeunload', this.onBeforeUnload);
    if (this.sig) this.sig.close();
    for (const p of this.peers.values()) p.close();
    this.peers.clear();
    stopMedia(this.stream);
    if (this.view) this.view.destroy();
    this.view = null;
    $('preview').srcObject = null;
    $('call').hidden = true;
    document.body.classList.remove('in-call');
    document.title = 'meetlite';
  }

  /** True while the call runs (signaling open or coming back). */
  /** The Help panel's context (api.md, POST /assistant/ask): lobby or call, the network
   * check's verdict, the role in the meeting. */
  helpContext() {
    const c = {page: this.inCall() ? 'room' : 'lobby'};
    if (this.netcheck) c.network = this.netcheck.verdict;
    if (this.me && (this.me.role === 'ADMIN' || this.me.role === 'PARTICIPANT')) c.role = this.me.role;
    return c;
  }

  inCall() {
    return !!this.sig && !this.ended;
  }

  /** The app navigates away (back button, a link): leave the call without asking. */
  close() {
    this.closedByNavigation = true;
    if (this.waiting) this.stopWaiting();
    if (!this.ended) this.teardown();
  }

  /** For tests and support: the state of the call, per peer. */
  async debugState() {
    const peers = {};
    for (const [id, p] of this.peers) {
      await p.refreshPath();
      const m = this.members.get(id) || {};
      peers[id] = {name: m.name, connection: p.pc.connectionState, ice: p.pc.iceConnectionState,
                   path: p.path, restarts: p.restarts, ufrag: p.ufrag(), settled: p.settled, polite: p.polite,
                   noPath: p.noPath};
    }
    return {me: this.me, signaling: this.sig && this.sig.state, lastSeq: this.sig && this.sig.lastSeq,
            sessions: this.sessions, renewals: this.renewals, credentialExpiresAt: this.credentialExpiresAt,
            relay: this.relay, relayMoves: this.relayMoves || 0, onFallback: !!this.onFallback,
            relayOnly: this.relayOnly, members: [...this.members.values()], peers, ended: this.ended,
            netcheck: this.netcheck, sentPath: this.sentPath, waiting: !!this.waiting,
            sharing: this.screen ? this.screen.stream.id : null, screenShare: this.screenShare,
            lobby: [...this.lobby.values()]};
  }
}

// One RTCPeerConnection per remote participant (a mesh), negotiated with the "perfect
// negotiation" pattern: either side may (re)negotiate at any time; on a collision of offers
// the polite side rolls its own back and takes the other's, the impolite side ignores the
// other's. Who is polite follows the participant ids: the greater id is polite. Bundle is
// max-bundle: one transport, so one TURN allocation per peer connection.
//
// Recovery: ICE that fails (or stays disconnected for a few seconds) is restarted. The
// impolite side restarts at once; the polite side asks it to ("ice-restart" over signaling)
// and restarts by itself if nothing happens, so that both rarely restart at the same time.
// A restart whose new ICE generation neither carries the media nor fails within
// RESTART_STALL_MS is made again: the browsers go on over the previous generation meanwhile,
// whose TURN allocations may be on a credential about to expire.

import {log} from './ui.js';

const DISCONNECTED_GRACE_MS = 3000;
const POLITE_FALLBACK_MS = 4000;
const STATS_MS = 2000;
const SETTLE_MS = 500; // path readings while a new ICE generation settles (Firefox tells nothing)
const RESTART_STALL_MS = 20000;
// Without a connected path this long (from the connection's start, or from losing its path),
// the person is told why instead of "Connecting…" (issue #14: within 15 s). ICE over a relay
// that answers connects in well under a second; a blocked way fails only by timeouts.
export const NO_PATH_MS = 12000;
const STALLS_MAX = 2; // restarts in a row for stalled generations; then the old one is kept
const LIVE = new Set(['connected', 'completed']);

function fingerprint(sdp) {
  const m = /^a=fingerprint:(.+)$/m.exec(sdp || '');
  return m ? m[1].trim().toLowerCase() : '';
}

/** scheme, host and port of a STUN/TURN URI (RFC 7064, 7065), transport for turn: URIs. */
function iceUri(uri) {
  const m = /^(stuns?|turns?):(\[[^\]]+\]|[^:?]+)(?::(\d+))?(?:\?transport=(\w+))?$/i.exec(String(uri).trim());
  if (!m) return null;
  const scheme = m[1].toLowerCase();
  const secure = scheme.endsWith('s');
  return {scheme, host: m[2].toLowerCase(), port: m[3] || (secure ? '5349' : '3478'),
          transport: (m[4] || (secure ? 'tcp' : 'udp')).toLowerCase()};
}

/**
 * The iceServers a connection is given, from those the server handed out: a stun: URI is left
 * out when a turn: URI over UDP names the same host and port (Chromium and Firefox both use a
 * UDP TURN server for server-reflexive candidates as well), and every stun: URI when relay-only
 * (it cannot give a relay candidate). Each URI costs a request per connection, and Firefox logs
 * a page error ("Using five or more STUN/TURN servers slows down discovery") from five URIs on,
 * which a dual-stack deployment reaches. Returns new objects; the argument is not changed.
 */
export function iceServersFor(servers, relayOnly) {
  const turnUdp = new Set();
  for (const s of servers || [])
    for (const u of [].concat(s.urls || [])) {
      const x = iceUri(u);
      if (x && x.scheme === 'turn' && x.transport === 'udp') turnUdp.add(`${x.host}:${x.port}`);
    }
  const out = [];
  for (const s of servers || []) {
    const urls = [].concat(s.urls || []).filter((u) => {
      const x = iceUri(u);
      if (!x || !x.scheme.startsWith('stun')) return true; // turn:, turns: and what we do not know
      return !relayOnly && !(x.scheme === 'stun' && turnUdp.has(`${x.host}:${x.port}`));
    });
    if (urls.length) out.push({...s, urls});
  }
  return out;
}

/**
 * The candidate pair that carries the media in a getStats() report, with its candidates:
 * {pair, local, remote}, or null when the report names none. In order:
 * - the transport's selectedCandidatePairId (Chromium, Firefox 153 ESR), when the report has
 *   that pair and its local candidate;
 * - else the succeeded pair marked `selected` (older Firefox) or nominated, the one that
 *   received last: Chromium keeps the pairs of earlier ICE generations in the report, some
 *   of them succeeded and nominated too.
 * A succeeded pair that is neither is only a check that passed: Firefox lists such pairs of
 * a new ICE generation while the media still takes the previous one.
 */
function selectedPair(stats) {
  const byId = new Map();
  stats.forEach((s) => byId.set(s.id, s));
  const withCandidates = (pair) => {
    const local = pair && pair.type === 'candidate-pair' ? byId.get(pair.localCandidateId) : null;
    return local ? {pair, local, remote: byId.get(pair.remoteCandidateId) || null} : null;
  };
  let found = null;
  stats.forEach((s) => {
    if (!found && s.type === 'transport' && s.selectedCandidatePairId) found = withCandidates(byId.get(s.selectedCandidatePairId));
  });
  if (found) return found;
  const rank = (p) => [p.selected ? 1 : 0, p.lastPacketReceivedTimestamp || 0, p.bytesReceived || 0];
  const better = (a, b) => {
    const x = rank(a), y = rank(b);
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i] > y[i];
    return false;
  };
  stats.forEach((s) => {
    if (s.type !== 'candidate-pair' || s.state !== 'succeeded' || !(s.selected || s.nominated)) return;
    const c = withCandidates(s);
    if (c && (!found || better(s, found.pair))) found = c;
  });
  return found;
}

/**
 * The path of the media from a getStats() report: {kind, protocol, localType, remoteType,
 * ufrag (the local candidate's: its ICE generation), rtt, source, framesDecoded,
 * bytesReceived, audioBytesReceived}. kind is 'relay' (a relay candidate on either end),
 * 'direct', 'connecting', or 'connected' (media flows, the path is not known).
 * ctx: {live: ICE is connected or completed, relayOnly: iceTransportPolicy 'relay', prev:
 * the last path read for this connection or null}. source says where the path comes from:
 * 'pair' (the report's selected pair), 'held' (prev's, kept), 'policy' (relay-only: every
 * candidate is a relay one) or 'none'. A live connection whose report names no pair keeps
 * prev's path: Firefox reports only the newest ICE generation, so from an ICE restart until
 * that generation is selected (a second; never, when the restart stalls) its report has no
 * selected pair while the media still goes over the previous generation's, which prev
 * describes. The kind is never 'connecting' while live.
 */
export function pathFromStats(stats, {live = false, relayOnly = false, prev = null} = {}) {
  let video = null, audio = null;
  const locals = [];
  stats.forEach((s) => {
    if (s.type === 'inbound-rtp' && (s.kind || s.mediaType) === 'video') video = s;
    if (s.type === 'inbound-rtp' && (s.kind || s.mediaType) === 'audio') audio = s;
    if (s.type === 'local-candidate') locals.push(s);
  });
  const counters = {
    framesDecoded: video ? video.framesDecoded || 0 : 0,
    bytesReceived: video ? video.bytesReceived || 0 : 0,
    audioBytesReceived: audio ? audio.bytesReceived || 0 : 0,
  };
  const sel = selectedPair(stats);
  if (sel) {
    const {pair, local, remote} = sel;
    const relay = local.candidateType === 'relay' || (remote && remote.candidateType === 'relay');
    return {kind: relay ? 'relay' : 'direct', protocol: local.relayProtocol || local.protocol || '',
            localType: local.candidateType || null, remoteType: remote ? remote.candidateType || null : null,
            ufrag: local.usernameFragment || null, rtt: pair.currentRoundTripTime, source: 'pair', ...counters};
  }
  if (live && prev && (prev.kind === 'relay' || prev.kind === 'direct'))
    return {kind: prev.kind, protocol: prev.protocol, localType: prev.localType, remoteType: prev.remoteType,
            ufrag: prev.ufrag, rtt: prev.rtt, source: 'held', ...counters};
  const path = {kind: 'connecting', protocol: '', localType: null, remoteType: null, ufrag: null, rtt: null,
                source: 'none', ...counters};
  if (live && relayOnly) { // the media is relayed; over which protocol is known when the candidates agree
    const protocols = new Set(locals.map((c) => c.relayProtocol || c.protocol || ''));
    return {...path, kind: 'relay', localType: 'relay', protocol: protocols.size === 1 ? [...protocols][0] : '',
            source: 'policy'};
  }
  if (live) path.kind = 'connected';
  return path;
}

/** The path of pc's media now (see pathFromStats); prev: the last reading, or null. */
export async function pathOf(pc, prev = null) {
  const stats = await pc.getStats();
  return pathFromStats(stats, {live: LIVE.has(pc.iceConnectionState),
                               relayOnly: pc.getConfiguration().iceTransportPolicy === 'relay', prev});
}

export class Peer {
  /**
   * id: the remote participant; polite: this side yields on collisions; config: the
   * RTCConfiguration; stream: the local media (may have no track); send(type, payload):
   * signaling to this participant; onTrack(stream); onChange(): state or path changed;
   * isScreen(streamId): the remote's announced screen share; onScreen(stream): its track came;
   * onFailed(): ICE failed, before its restart (the room may move to another relay).
   */
  constructor({id, polite, config, stream, send, onTrack, onChange, onFailed, isScreen = () => false, onScreen = () => {}}) {
    this.id = id;
    this.polite = polite;
    this.send = send;
    this.onTrack = onTrack;
    this.onChange = onChange;
    this.onFailed = onFailed; // before the restart of a failed ICE (the room may change relay)
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.answerPending = false;
    this.closed = false;
    this.restarts = 0;
    this.stalls = 0;           // restarts in a row whose generation did not take over
    this.generation = null;    // local ufrag of the ICE generation negotiated last
    this.settled = true;       // that generation carries the media (or there is none yet)
    this.path = {kind: 'connecting'};
    this.noPath = false; // no connected path after NO_PATH_MS (the room explains it)
    this.statsAsked = this.statsApplied = 0;
    this.queue = Promise.resolve();
    this.remoteStream = new MediaStream();
    this.streams = new Map();   // the remote's MediaStreams by id (its camera's, its screen's)
    this.screenSender = null;   // our screen share's sender on this connection
    this.timers = {};
    const pc = new RTCPeerConnection({...config, bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require'});
    this.pc = pc;
    const kinds = new Set();
    for (const t of stream.getTracks()) {
      pc.addTrack(t, stream);
      kinds.add(t.kind);
    }
    // receive what we do not send (a refused camera still sees and hears the others)
    for (const k of ['audio', 'video']) if (!kinds.has(k)) pc.addTransceiver(k, {direction: 'recvonly'});

    pc.onnegotiationneeded = () => this.negotiate();
    pc.onicecandidate = ({candidate}) => {
      if (candidate && candidate.candidate) this.send('candidate', candidate.toJSON());
    };
    pc.ontrack = ({track, streams}) => {
      const s = streams && streams[0];
      if (s) this.streams.set(s.id, s);
      if (s && isScreen(s.id)) { // a screen share: a tile of its own, not the camera's
        onScreen(s);
        return;
      }
      this.remoteStream.addTrack(track);
      track.onunmute = () => this.onChange();
      this.onTrack(this.remoteStream);
    };
    pc.oniceconnectionstatechange = () => this.onIceState();
    pc.onconnectionstatechange = () => {
      log(`peer ${id.slice(0, 8)}: connection ${pc.connectionState}`);
      this.onChange();
      if (pc.connectionState === 'connected') this.refreshPath(); // the badge now, not at the next reading
    };
    pc.onsignalingstatechange = () => {
      if (pc.signalingState === 'stable') this.negotiated();
    };
    pc.onicecandidateerror = (e) => log(`peer ${id.slice(0, 8)}: candidate error ${e.errorCode} ${e.url || ''} ${e.errorText || ''}`);
    this.timers.stats = setInterval(() => this.refreshPath(), STATS_MS);
    this.armNoPath();
  }

  /** Sends our screen share on this connection (renegotiated by negotiationneeded). */
  addScreen(track, stream) {
    if (this.closed || this.screenSender) return;
    this.screenSender = this.pc.addTrack(track, stream);
  }

  removeScreen() {
    if (!this.screenSender) return;
    try {
      if (!this.closed) this.pc.removeTrack(this.screenSender);
    } catch (e) {
      log(`peer ${this.id.slice(0, 8)}: removing the screen track: ${e.message}`);
    }
    this.screenSender = null;
  }

  /** A remote stream announced as a screen share after its track came: out of the camera's. */
  takeScreen(streamId) {
    const s = this.streams.get(streamId);
    if (!s) return null;
    for (const t of s.getTracks()) if (this.remoteStream.getTracks().includes(t)) this.remoteStream.removeTrack(t);
    return s;
  }

  /** Starts the wait for a connected path, unless it runs already. */
  armNoPath() {
    if (this.timers.noPath) return;
    this.timers.noPath = setTimeout(() => {
      this.timers.noPath = null;
      if (this.closed || LIVE.has(this.pc.iceConnectionState)) return;
      this.noPath = true;
      log(`peer ${this.id.slice(0, 8)}: no path after ${NO_PATH_MS} ms (ice ${this.pc.iceConnectionState})`);
      this.onChange();
    }, NO_PATH_MS);
  }

  async negotiate() {
    if (this.closed) return;
    try {
      this.makingOffer = true;
      await this.pc.setLocalDescription();
      if (this.pc.localDescription.type === 'offer') this.send('offer', {sdp: this.pc.localDescription.sdp});
    } catch (e) {
      log(`peer ${this.id.slice(0, 8)}: offer failed: ${e.message}`);
    } finally {
      this.makingOffer = false;
    }
  }

  /** True when an offer comes from another RTCPeerConnection than the one we talk to (the
   * other side started over: a reload, a lost session); ours must start over too. */
  isForeign(sdp) {
    const cur = this.pc.remoteDescription;
    return !!cur && !!cur.sdp && fingerprint(cur.sdp) !== fingerprint(sdp);
  }

  /** Handles offer, answer or candidate from this participant, one at a time, in order. */
  handle(type, payload) {
    this.queue = this.queue.then(() => this.handleNow(type, payload)).catch((e) => {
      log(`peer ${this.id.slice(0, 8)}: ${type} failed: ${e.message}`);
    });
    return this.queue;
  }

  async handleNow(type, payload) {
    if (this.closed) return;
    const pc = this.pc;
    if (type === 'offer' || type === 'answer') {
      const readyForOffer = !this.makingOffer && (pc.signalingState === 'stable' || this.answerPending);
      const collision = type === 'offer' && !readyForOffer;
      this.ignoreOffer = !this.polite && collision;
      if (this.ignoreOffer) {
        log(`peer ${this.id.slice(0, 8)}: offer collision, ours wins`);
        return;
      }
      if (type === 'answer' && pc.signalingState !== 'have-local-offer') return; // stale
      this.answerPending = type === 'answer';
      await pc.setRemoteDescription({type, sdp: payload.sdp}); // rolls ours back if needed
      this.answerPending = false;
      if (type === 'offer') {
        await pc.setLocalDescription();
        this.send('answer', {sdp: pc.localDescription.sdp});
      }
    } else if (type === 'candidate') {
      try {
        await pc.addIceCandidate(payload);
      } catch (e) {
        if (!this.ignoreOffer) log(`peer ${this.id.slice(0, 8)}: candidate refused: ${e.message}`);
      }
    }
  }

  onIceState() {
    const s = this.pc.iceConnectionState;
    log(`peer ${this.id.slice(0, 8)}: ice ${s}`);
    clearTimeout(this.timers.grace);
    if (s === 'failed') {
      if (this.onFailed) this.onFailed();
      this.restart('failed');
    } else if (s === 'disconnected')
      this.timers.grace = setTimeout(() => {
        if (this.pc.iceConnectionState === 'disconnected') this.restart('disconnected');
      }, DISCONNECTED_GRACE_MS);
    else if (s === 'connected' || s === 'completed') {
      clearTimeout(this.timers.fallback);
      clearTimeout(this.timers.noPath);
      this.timers.noPath = null;
      this.noPath = false;
      this.refreshPath();
    }
    if (s === 'failed' || s === 'disconnected') this.armNoPath();
    this.onChange();
  }

  /**
   * An offer/answer exchange completed. New local ICE credentials start a new ICE generation
   * (a restart, ours or the other side's): its path is read every SETTLE_MS until it carries
   * the media, and the restart is made again if it has not after RESTART_STALL_MS. Chromium
   * also says when its selected pair changes (RTCIceTransport selectedcandidatepairchange);
   * Firefox 153 has no such event and keeps its ICE state "connected" through a restart.
   */
  negotiated() {
    if (this.closed) return;
    this.watchTransport();
    const d = this.pc.currentLocalDescription;
    const m = d && /^a=ice-ufrag:(.+)$/m.exec(d.sdp);
    const ufrag = m ? m[1].trim() : null;
    if (!ufrag || ufrag === this.generation) return;
    const first = this.generation === null;
    this.generation = ufrag;
    if (first) return;
    this.settled = false;
    clearInterval(this.timers.settle);
    clearTimeout(this.timers.stall);
    this.timers.settle = setInterval(() => this.refreshPath(), SETTLE_MS);
    this.timers.stall = setTimeout(() => this.stalled(), RESTART_STALL_MS);
    this.refreshPath();
  }

  /** The newest generation carries the media: stop the quick readings and the stall timer. */
  settle() {
    this.settled = true;
    this.stalls = 0;
    clearInterval(this.timers.settle);
    clearTimeout(this.timers.stall);
  }

  /** RESTART_STALL_MS after a new generation: still not carrying the media. */
  stalled() {
    clearInterval(this.timers.settle);
    if (this.closed || this.settled || !LIVE.has(this.pc.iceConnectionState)) return; // failures restart by themselves
    if (++this.stalls > STALLS_MAX) {
      log(`peer ${this.id.slice(0, 8)}: ICE restart did not complete; staying on the previous path`);
      return;
    }
    this.restart('stalled');
  }

  /** Re-reads the path when Chromium's ICE transport changes its selected pair. */
  watchTransport() {
    if (this.iceTransport) return;
    const t = this.pc.getTransceivers().map((x) => x.sender.transport).find(Boolean);
    const ice = t && t.iceTransport;
    if (!ice || !('onselectedcandidatepairchange' in ice)) return;
    this.iceTransport = ice;
    ice.onselectedcandidatepairchange = () => this.refreshPath();
  }

  /** Restarts ICE (new candidates, new allocations with the current iceServers). */
  restart(reason) {
    if (this.closed) return;
    this.restarts++;
    log(`peer ${this.id.slice(0, 8)}: ICE restart (${reason}, ${this.polite ? 'asking the other side' : 'ours'})`);
    if (!this.polite) {
      this.pc.restartIce();
      return;
    }
    this.send('ice-restart', {reason});
    clearTimeout(this.timers.fallback);
    this.timers.fallback = setTimeout(() => {
      const st = this.pc.iceConnectionState;
      if (!this.closed && st !== 'connected' && st !== 'completed') this.pc.restartIce();
    }, POLITE_FALLBACK_MS);
  }

  /** The other side asked for an ICE restart. */
  restartRequested() {
    if (this.closed) return;
    clearTimeout(this.timers.fallback);
    this.restarts++;
    this.pc.restartIce();
  }

  /** New iceServers or transport policy; takes effect at the next gathering (a restart). */
  configure(config) {
    if (this.closed) return;
    const cur = this.pc.getConfiguration();
    this.pc.setConfiguration({...cur, ...config});
  }

  async refreshPath() {
    if (this.closed) return;
    const seq = ++this.statsAsked;
    try {
      const p = await pathOf(this.pc, this.path);
      if (seq < this.statsApplied || this.closed) return; // a later reading arrived first
      this.statsApplied = seq;
      const changed = p.kind !== this.path.kind || p.protocol !== this.path.protocol;
      this.path = p;
      // the newest generation carries the media (a report without ufrags: a selected pair)
      if (!this.settled && p.source === 'pair' && (!p.ufrag || p.ufrag === this.generation)) this.settle();
      if (changed) this.onChange();
    } catch (e) {
      log(`peer ${this.id.slice(0, 8)}: stats failed: ${e.message}`);
    }
  }

  /** The ICE username fragment in use (changes with each restart). */
  ufrag() {
    const d = this.pc.localDescription;
    const m = d && /^a=ice-ufrag:(.+)$/m.exec(d.sdp);
    return m ? m[1].trim() : null;
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    for (const t of Object.values(this.timers)) {
      clearTimeout(t);
      clearInterval(t);
    }
    this.pc.onnegotiationneeded = this.pc.onicecandidate = this.pc.ontrack = null;
    this.pc.oniceconnectionstatechange = this.pc.onconnectionstatechange = this.pc.onsignalingstatechange = null;
    if (this.iceTransport) this.iceTransport.onselectedcandidatepairchange = null;
    this.pc.close();
  }
}

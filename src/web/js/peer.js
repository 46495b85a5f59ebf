// One RTCPeerConnection per remote participant (a mesh), negotiated with the "perfect
// negotiation" pattern: either side may (re)negotiate at any time; on a collision of offers
// the polite side rolls its own back and takes the other's, the impolite side ignores the
// other's. Who is polite follows the participant ids: the greater id is polite. Bundle is
// max-bundle: one transport, so one TURN allocation per peer connection.
//
// Recovery: ICE that fails (or stays disconnected for a few seconds) is restarted. The
// impolite side restarts at once; the polite side asks it to ("ice-restart" over signaling)
// and restarts by itself if nothing happens, so that both rarely restart at the same time.

import {log} from './ui.js';

const DISCONNECTED_GRACE_MS = 3000;
const POLITE_FALLBACK_MS = 4000;
const STATS_MS = 2000;

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

/** What the selected candidate pair says about the path: {kind, protocol, localType}. */
export async function pathOf(pc) {
  const stats = await pc.getStats();
  const byId = new Map();
  stats.forEach((s) => byId.set(s.id, s));
  let pair = null;
  stats.forEach((s) => {
    if (s.type === 'transport' && s.selectedCandidatePairId) pair = byId.get(s.selectedCandidatePairId) || pair;
  });
  if (!pair) // Firefox marks the pair itself
    stats.forEach((s) => {
      if (s.type === 'candidate-pair' && s.selected && s.state === 'succeeded') pair = s;
    });
  let inbound = {framesDecoded: 0, bytesReceived: 0, packetsLost: 0}, audioIn = null;
  stats.forEach((s) => {
    if (s.type === 'inbound-rtp' && (s.kind || s.mediaType) === 'video') inbound = s;
    if (s.type === 'inbound-rtp' && (s.kind || s.mediaType) === 'audio') audioIn = s;
  });
  const local = pair ? byId.get(pair.localCandidateId) : null;
  const remote = pair ? byId.get(pair.remoteCandidateId) : null;
  let kind = 'connecting';
  if (local) kind = local.candidateType === 'relay' || (remote && remote.candidateType === 'relay') ? 'relay' : 'direct';
  return {
    kind,
    localType: local ? local.candidateType : null,
    remoteType: remote ? remote.candidateType : null,
    protocol: local ? (local.relayProtocol || local.protocol || '') : '',
    rtt: pair && pair.currentRoundTripTime,
    framesDecoded: inbound.framesDecoded || 0,
    bytesReceived: inbound.bytesReceived || 0,
    audioBytesReceived: audioIn ? audioIn.bytesReceived || 0 : 0,
  };
}

export class Peer {
  /**
   * id: the remote participant; polite: this side yields on collisions; config: the
   * RTCConfiguration; stream: the local media (may have no track); send(type, payload):
   * signaling to this participant; onTrack(stream); onChange(): state or path changed.
   */
  constructor({id, polite, config, stream, send, onTrack, onChange}) {
    this.id = id;
    this.polite = polite;
    this.send = send;
    this.onTrack = onTrack;
    this.onChange = onChange;
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.answerPending = false;
    this.closed = false;
    this.restarts = 0;
    this.path = {kind: 'connecting'};
    this.statsAsked = this.statsApplied = 0;
    this.queue = Promise.resolve();
    this.remoteStream = new MediaStream();
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
    pc.ontrack = ({track}) => {
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
    pc.onicecandidateerror = (e) => log(`peer ${id.slice(0, 8)}: candidate error ${e.errorCode} ${e.url || ''} ${e.errorText || ''}`);
    this.timers.stats = setInterval(() => this.refreshPath(), STATS_MS);
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
    if (s === 'failed') this.restart('failed');
    else if (s === 'disconnected')
      this.timers.grace = setTimeout(() => {
        if (this.pc.iceConnectionState === 'disconnected') this.restart('disconnected');
      }, DISCONNECTED_GRACE_MS);
    else if (s === 'connected' || s === 'completed') clearTimeout(this.timers.fallback);
    this.onChange();
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
      const p = await pathOf(this.pc);
      if (seq < this.statsApplied || this.closed) return; // a later reading arrived first
      this.statsApplied = seq;
      const changed = p.kind !== this.path.kind || p.protocol !== this.path.protocol;
      this.path = p;
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
    this.pc.oniceconnectionstatechange = this.pc.onconnectionstatechange = null;
    this.pc.close();
  }
}

// The network check in the lobby (issue #14): which ways reach the meeting's relay, tested in
// a few seconds before joining, and said in plain words. For each TURN URI the server hands
// out (POST .../network-check: a short-lived probe credential), one RTCPeerConnection with
// that URI alone and iceTransportPolicy "relay" gathers candidates for a data channel; a relay
// candidate means the way works (the TURN server answered an Allocate over it). All URIs are
// tried at once, each for at most PROBE_MS after its offer. The probes' allocations end when their
// connections close.
//
// Ways: UDP (turn: over UDP on any port but 443), UDP 443, TCP (turn: over TCP), TLS (turns:).
// The verdict is the best way that worked, in the order a browser prefers them: udp (UDP on
// either port), tcp, tls; "none" when no way worked, "unchecked" when no check could run.

// How long a way has to answer, counted from the offer (gathering starts there): a relay on an
// open path answers in well under a second; a blocked way never does. Not shorter: a busy
// device sets its offer and sends its first Allocate late.
export const PROBE_MS = 5000;

const WAY_ORDER = ['udp', 'udp443', 'tcp', 'tls'];

/** The way a TURN URI takes: {key, label, host, port}, or null for stun: and what we do not
 * know (RFC 7065 syntax; default ports 3478 and 5349). */
export function wayOf(uri) {
  const m = /^(turns?):(\[[^\]]+\]|[^:?]+)(?::(\d+))?(?:\?transport=(\w+))?$/i.exec(String(uri).trim());
  if (!m) return null;
  const secure = m[1].toLowerCase() === 'turns';
  const port = m[3] || (secure ? '5349' : '3478');
  const transport = (m[4] || (secure ? 'tcp' : 'udp')).toLowerCase();
  const host = m[2];
  if (secure) return {key: 'tls', label: `TLS ${port}`, host, port};
  if (transport === 'tcp') return {key: 'tcp', label: `TCP ${port}`, host, port};
  if (transport !== 'udp') return null;
  return {key: port === '443' ? 'udp443' : 'udp', label: `UDP ${port}`, host, port};
}

/** Tries one TURN URI: {ok, ms, error}. Resolves within timeoutMs. */
export function probe(server, uri, timeoutMs = PROBE_MS) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let pc = null, timer = null, error = '';
    const done = (ok, why) => {
      if (!pc) return;
      clearTimeout(timer);
      pc.onicecandidate = pc.onicecandidateerror = null;
      pc.close();
      pc = null;
      resolve({ok, ms: Math.round(performance.now() - t0), error: ok ? '' : error || why});
    };
    try {
      pc = new RTCPeerConnection({iceServers: [{urls: [uri], username: server.username, credential: server.credential}],
                                  iceTransportPolicy: 'relay'});
    } catch (e) {
      resolve({ok: false, ms: 0, error: e.message});
      return;
    }
    pc.onicecandidate = ({candidate}) => {
      if (candidate && / typ relay /.test(` ${candidate.candidate} `)) done(true);
      else if (!candidate) done(false, 'no relay candidate');
    };
    pc.onicecandidateerror = (e) => {
      error = `${e.errorCode || ''} ${e.errorText || ''}`.trim();
    };
    pc.createDataChannel('network-check');
    pc.createOffer().then((o) => pc && pc.setLocalDescription(o)).then(() => {
      if (pc) timer = setTimeout(() => done(false, 'no answer'), timeoutMs);
    }).catch((e) => done(false, e.message));
  });
}

/**
 * Runs the check over iceServers (as the server answers them). Returns {verdict, ways: [{key,
 * label, ok, ms, error, uris}], host, ms}: one entry per way, ok when any of its URIs worked.
 */
export async function checkNetwork(iceServers, timeoutMs = PROBE_MS) {
  const t0 = performance.now();
  const tries = [];
  for (const s of iceServers || [])
    for (const uri of [].concat(s.urls || [])) {
      const way = wayOf(uri);
      if (way && s.username && s.credential) tries.push({uri, way, run: probe(s, uri, timeoutMs)});
    }
  const byKey = new Map();
  for (const t of tries) {
    const r = await t.run;
    const w = byKey.get(t.way.key) || {key: t.way.key, label: t.way.label, ok: false, ms: null, error: '', uris: [], host: t.way.host, port: t.way.port};
    w.uris.push(t.uri);
    if (r.ok && (!w.ok || r.ms < w.ms)) Object.assign(w, {ok: true, ms: r.ms, label: t.way.label, port: t.way.port});
    if (!r.ok && !w.error) w.error = r.error;
    byKey.set(t.way.key, w);
  }
  const ways = WAY_ORDER.filter((k) => byKey.has(k)).map((k) => byKey.get(k));
  const ok = (k) => ways.some((w) => w.key === k && w.ok);
  let verdict = 'none';
  if (!ways.length) verdict = 'unchecked';
  else if (ok('udp') || ok('udp443')) verdict = 'udp';
  else if (ok('tcp')) verdict = 'tcp';
  else if (ok('tls')) verdict = 'tls';
  return {verdict, ways, host: ways.length ? ways[0].host : '', ms: Math.round(performance.now() - t0)};
}

/** What the check means for the person, in plain words: {title, text, kind ('ok', 'warn',
 * 'error', 'info')}. why: a reason the check did not run. */
export function explainCheck(result, why = '') {
  if (!result || result.verdict === 'unchecked')
    return {kind: 'info', title: 'Network not checked',
            text: `The connection to the meeting's relay could not be tested${why ? ` (${why})` : ''}. You can still join.`};
  const way = (k) => result.ways.find((w) => w.key === k);
  // "blocks UDP" only when a UDP way was tried (a deployment may hand out none)
  const udpTried = result.ways.some((w) => w.key === 'udp' || w.key === 'udp443');
  switch (result.verdict) {
  case 'udp':
    return {kind: 'ok', title: 'Your network is fine for calls',
            text: 'The meeting\'s relay answers over UDP: your call can take the fastest way.'};
  case 'tcp':
    return {kind: 'warn', title: udpTried ? 'Your network blocks UDP' : 'Your call goes over TCP',
            text: `${udpTried ? 'UDP does not get through; y' : 'Y'}our call will go through the relay over TCP ` +
                  `(port ${way('tcp').port}). It works, with a little more delay than usual.`};
  case 'tls': {
    const blocked = [udpTried ? 'UDP' : null, way('tcp') ? 'plain TCP' : null].filter(Boolean).join(' and ');
    return {kind: 'warn', title: udpTried ? 'Your network blocks UDP' : 'Your network is restrictive',
            text: `${blocked ? `Your network blocks ${blocked}; y` : 'Y'}our call will go through the encrypted relay ` +
                  `on port ${way('tls').port}. It works, with a little more delay than usual.`};
  }
  default: {
    const tried = result.ways.map((w) => w.label).join(', ');
    return {kind: 'error', title: 'No way to the relay',
            text: `Your network let none of the relay's ways through (${tried} to ${result.host}). ` +
                  'Calls with people on other networks will not connect. Try another network (a phone\'s hotspot), ' +
                  'turn off a VPN or proxy, or ask the network\'s administrator to allow ' +
                  `${result.ways.some((w) => w.key === 'tls') ? `encrypted connections (TLS) to ${result.host} port ${way('tls').port}` : `UDP and TCP to ${result.host}`}. ` +
                  'You can still join: people on your own network may reach you directly.'};
  }
  }
}

/** Why a connection to name has no path after the wait, in plain words. mine: our network
 * check's verdict; theirs: the other's (from the roster); relayOnly: our policy. */
export function explainNoPath(name, mine, theirs, relayOnly) {
  const head = `No connection to ${name}.`;
  if (mine === 'none')
    return `${head} Your network lets nothing through to the meeting's relay (see the check before joining). ` +
           'Try another network (a phone\'s hotspot), or turn off a VPN or proxy, then join again.';
  if (theirs === 'none')
    return `${head} ${name}'s network lets nothing through to the meeting's relay; ${name} could try another network.`;
  return `${head} Neither a direct nor a relayed path got through${relayOnly ? ' (you send through the relay only)' : ''}: ` +
         'a firewall on one of the two networks blocks it. The connection keeps trying.';
}

/** A participant's path as signaling carries it ("path" messages, roster entries). */
export const PATH_WORDS = {
  'direct': 'Direct',
  'relay-udp': 'Relay · UDP',
  'relay-tcp': 'Relay · TCP',
  'relay-tls': 'Relay · TLS',
  'connecting': 'Connecting…',
  'none': 'No connection',
};

/** A network check's verdict as the roster says it. */
export const NETWORK_WORDS = {
  udp: 'network: UDP works',
  tcp: 'network: UDP blocked, TCP',
  tls: 'network: only TLS',
  none: 'network: no way to the relay',
  unchecked: 'network: not checked',
};

const WORST = ['direct', 'relay-udp', 'relay-tcp', 'relay-tls', 'connecting', 'none'];

/** The path word of one connection: path (peer.js pathFromStats), noPath (no connection
 * after the wait). null when nothing is known to say. */
export function pathWord(path, noPath) {
  if (noPath) return 'none';
  if (!path) return null;
  if (path.kind === 'direct') return 'direct';
  if (path.kind === 'relay') return `relay-${['udp', 'tcp', 'tls'].includes(path.protocol) ? path.protocol : 'udp'}`;
  if (path.kind === 'connecting') return 'connecting';
  return null; // connected, the path not known yet: keep what was said
}

/** The summary of several connections' path words: the most constrained one. */
export function worstPath(words) {
  let w = null;
  for (const x of words) if (x && (w === null || WORST.indexOf(x) > WORST.indexOf(w))) w = x;
  return w;
}

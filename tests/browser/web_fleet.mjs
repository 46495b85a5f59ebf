// Failover of a fleet (issue #16, item 3): two people in one headless Chromium, relay-only,
// placed by the control plane on their meeting's relay (one of three registered relays, each
// with a relay port range of its own so that the selected candidate pair tells which relay
// carries the media). The relay is killed with SIGKILL; the control plane pushes new
// iceServers over signaling and the client restarts ICE. Checks: both on the same relay before,
// the media back over another live relay after, and how long it took (reported, bound 10 s).
// Usage: node web_fleet.mjs '<json>' with {base, chromium, loopbackOnly, outdir, relays: {name:
// {pid, ports: [lo, hi]}}}. Prints the report (checks, recoveryMs) as one JSON line.
import {cfg, check, finish, hostMeeting, joinFromLobby, launch, person, report, shot, signUp, sleep, state} from './lib.mjs';

const BOUND_MS = 10000;
const browser = await launch();
const [ann, ben] = [await person(browser, 'ann'), await person(browser, 'ben')];
const everyone = [ann, ben];

/** Each connection's ICE state, decoded video frames and the selected pair's local candidate
 * (type and port: a relay candidate's port is its relay's). */
function media(page) {
  return page.evaluate(async () => {
    const out = [];
    for (const [id, p] of window.meetlite.room().peers) {
      const st = await p.pc.getStats();
      const byId = new Map();
      let pairId = null, frames = 0;
      st.forEach((s) => {
        byId.set(s.id, s);
        if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
        if (s.type === 'inbound-rtp' && (s.kind || s.mediaType) === 'video') frames = s.framesDecoded || 0;
      });
      const pair = pairId ? byId.get(pairId) : null;
      const local = pair ? byId.get(pair.localCandidateId) : null;
      out.push({id, ice: p.pc.iceConnectionState, frames, type: local ? local.candidateType : null,
                port: local ? local.port : null});
    }
    return out;
  });
}

function relayOfPort(port) {
  for (const [name, r] of Object.entries(cfg.relays))
    if (port >= r.ports[0] && port <= r.ports[1]) return name;
  return null;
}

async function decodingOn(p, node, ms) {
  const end = Date.now() + ms;
  let m = [];
  while (Date.now() < end) {
    m = await media(p.page);
    if (m.length === 1 && m.every((x) => x.ice === 'connected' || x.ice === 'completed') &&
        m.every((x) => x.type === 'relay' && x.frames > 10 && (!node || relayOfPort(x.port) === node)))
      return m;
    await sleep(200);
  }
  return null;
}

try {
  const {link} = await hostMeeting(ann.page, 'Ann Admin', 'ann@example.org', 'Exam review');
  check('Ann joins', await joinFromLobby(ann.page));
  await ben.page.goto(link);
  await signUp(ben.page, 'Ben Baker', 'ben@example.org');
  check('Ben joins by the link', await joinFromLobby(ben.page));

  const sa = await state(ann.page), sb = await state(ben.page);
  const node = sa.relay && sa.relay.node;
  check('both are placed on one relay of the fleet, with a fallback named',
        node && cfg.relays[node] && sb.relay && sb.relay.node === node && sa.relay.fallback &&
        sa.relay.fallback.node !== node, {ann: sa.relay, ben: sb.relay});
  const before = await Promise.all(everyone.map((p) => decodingOn(p, node, 40000)));
  check('both decode video over a relay candidate of that relay', before.every(Boolean),
        await Promise.all(everyone.map((p) => media(p.page))));
  await shot(ann.page, 'fleet-01-call.png');

  // ------------------------------------------------------------ the relay dies
  const t0 = Date.now();
  process.kill(cfg.relays[node].pid, 'SIGKILL');
  await sleep(300);
  const frozen = await Promise.all(everyone.map((p) => media(p.page)));
  // when each client is told (its log has the push), when its selected pair moves to another
  // relay, and when it has decoded 5 more frames (the video moves again)
  const back = await Promise.all(everyone.map(async (p, i) => {
    const end = t0 + 30000;
    let switched = null;
    while (Date.now() < end) {
      const m = await media(p.page);
      const f0 = frozen[i][0] ? frozen[i][0].frames : 0;
      const moved = m.length === 1 && (m[0].ice === 'connected' || m[0].ice === 'completed') && m[0].type === 'relay' &&
        relayOfPort(m[0].port) && relayOfPort(m[0].port) !== node;
      if (moved && switched === null) switched = Date.now() - t0;
      if (moved && m[0].frames > f0 + 5)
        return {ms: Date.now() - t0, switchedMs: switched, relay: relayOfPort(m[0].port)};
      await sleep(100);
    }
    return null;
  }));
  const told = await Promise.all(everyone.map((p) => p.page.evaluate(() => window.meetlite.room().relayMovedAt || null)));
  report.toldMs = told.map((x) => (x ? x - t0 : null));
  report.switchedMs = back.map((b) => (b ? b.switchedMs : null));
  report.recoveryMs = back.map((b) => (b ? b.ms : null));
  report.killed = node;
  const worst = Math.max(...back.map((b) => (b ? b.ms : Infinity)));
  check(`the media comes back over another relay within ${BOUND_MS / 1000} s of the kill (${report.recoveryMs.join(', ')} ms)`,
        back.every(Boolean) && worst <= BOUND_MS, {back, now: await Promise.all(everyone.map((p) => media(p.page)))});
  check('both are on the same new relay', back.every(Boolean) && back[0].relay === back[1].relay, back);
  const after = await Promise.all(everyone.map((p) => state(p.page)));
  check('each client was told its new relay over signaling (ice-servers), no reload',
        after.every((s) => s.relayMoves >= 1 && s.relay && s.relay.node !== node && s.sessions === 1),
        after.map((s) => ({relay: s.relay, moves: s.relayMoves, sessions: s.sessions})));
  await shot(ann.page, 'fleet-02-after.png');
  check('no page error', Object.values(report.consoleErrors).every((l) => l.every((e) => !e.startsWith('pageerror'))),
        report.consoleErrors);
} catch (e) {
  check(`the run finished without an exception (${e.message})`, false, e.stack);
}
for (const p of everyone) report['log_' + p.name] = await p.page.evaluate(() => window.meetlite.log()).catch(() => '');
await finish(browser);

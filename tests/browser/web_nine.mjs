// A nine-person meeting, relay-only, in one headless Chromium (nine contexts): every participant
// holds a peer connection to each of the eight others, and each connection allocates through
// every TURN URI the join hands out (udp, tcp and tls, on IPv4 and IPv6). The per-participant
// quota (turn.max-allocations-per-user, derived from the meeting size and the URIs) must let all
// of them through: no candidate error, no 486. The fake camera is cut to 160x120 at 5 frames a
// second, and the microphone left closed, so that 72 encoders and 72 decoders fit on two cores
// shared with other work.
// Usage: node web_nine.mjs '<json>' with {base, chromium, loopbackOnly, outdir, spki, code,
// people: [{name, session}], admin: {url, token}}. Prints the report as one JSON line.
import {cfg, check, finish, joinFromLobby, launch, person, report, shot, signedInPage, sleep, state, until} from './lib.mjs';

const browser = await launch(cfg.spki ? [`--ignore-certificate-errors-spki-list=${cfg.spki}`] : []);
const people = [];
report.pids = {};
report.allocations = {};

/* The relay candidates a page's open peer connections report (those in a candidate pair),
 * counted by "protocol/family". */
function relayCandidates() {
  return window.openPeerStats().then((all) => {
    const seen = {};
    for (const stats of all)
      stats.forEach((s) => {
        if (s.type !== 'local-candidate' || s.candidateType !== 'relay') return;
        const fam = (s.url || '').includes('[') ? 'ipv6' : 'ipv4';
        const k = `${s.relayProtocol}/${fam}`;
        seen[k] = (seen[k] || 0) + 1;
      });
    return seen;
  });
}

/* The participant's allocations on the relay: how many, and by "transport/family" of the
 * address the browser reached the relay at (the family of the TURN URI it used). */
async function allocations(pid) {
  const r = await fetch(`${cfg.admin.url}/v1/turn/allocations?participant=${pid}&limit=1000`,
                        {headers: {Authorization: `Bearer ${cfg.admin.token}`}});
  if (!r.ok) return {total: -1, kinds: {}};
  const body = await r.json();
  const kinds = {};
  for (const a of body.allocations || []) {
    const k = `${a.transport}/${(a.client || '').startsWith('[') ? 'ipv6' : 'ipv4'}`;
    kinds[k] = (kinds[k] || 0) + 1;
  }
  return {total: body.total, kinds};
}

try {
  // ------------------------------------------------------------ nine joins, one after the other
  for (const who of cfg.people) {
    const p = await person(browser, who.name, {viewport: {width: 640, height: 480}});
    p.page.setDefaultTimeout(120000); // a loaded machine: Chromium's nine pages compete for two cores
    // signed in, a small fake camera, every ICE candidate error kept
    await p.ctx.addInitScript(signedInPage, {base: cfg.base, session: who.session, smallCamera: true});
    await p.page.goto(`${cfg.base}/m/${cfg.code}`);
    // joinFromLobby waits 30 s for the signaling session; on a loaded machine give it longer
    const joined = await joinFromLobby(p.page) || await until(p.page, async () => {
      const s = await window.meetlite.state();
      return s && s.signaling === 'open' && s.sessions >= 1;
    }, undefined, 90000);
    if (!check(`${who.name} joins relay-only`, joined)) break;
    report.pids[who.name] = (await state(p.page)).me.id;
    people.push(p);
  }

  // ------------------------------------------------------------ everyone reaches everyone
  const want = cfg.people.length - 1;
  const connected = (s) => s && Object.keys(s.peers).length === want &&
    Object.values(s.peers).every((x) => x.connection === 'connected' && x.path.kind === 'relay' &&
                                 x.path.localType === 'relay' && x.path.framesDecoded > 0);
  const deadline = Date.now() + 240000;
  const last = {};
  for (const p of people) {
    while (Date.now() < deadline) {
      last[p.name] = await state(p.page);
      if (connected(last[p.name])) break;
      await sleep(1000);
    }
  }
  for (const p of people) {
    const s = last[p.name];
    const peers = s ? Object.values(s.peers) : [];
    check(`${p.name} is connected to all ${want} others over relay candidates, decoding their video`,
          connected(s), peers.map((x) => ({name: x.name, connection: x.connection, path: x.path})));
  }
  await shot(people[0].page, 'nine-call.png');

  // ------------------------------------------------------------ what each browser allocated
  let most = 0;
  for (const p of people) {
    const kinds = await p.page.evaluate(relayCandidates);
    const errors = await p.page.evaluate(() => window.candidateErrors);
    // A late joiner's TCP and TLS allocations can still be on their way (a TCP connect and a
    // TLS handshake per peer connection, nine browsers on two cores): wait for each kind, up
    // to 30 s, before reading what it holds.
    const kindsAll = ['udp/ipv4', 'tcp/ipv4', 'tls/ipv4', 'udp/ipv6', 'tcp/ipv6', 'tls/ipv6'];
    let held = await allocations(report.pids[p.name]);
    for (let i = 0; i < 30 && !kindsAll.every((k) => held.kinds[k] > 0); i++) {
      await sleep(1000);
      held = await allocations(report.pids[p.name]);
    }
    const n = held.total;
    report.allocations[p.name] = {live: n, held: held.kinds, candidates: kinds};
    most = Math.max(most, n);
    // What the browser allocated is read on the relay: Chromium's getStats lists a local
    // candidate only while it is in a candidate pair, and prunes pairs once a path is chosen,
    // so the last to join may no longer report a kind it did allocate.
    check(`${p.name} gathered relay candidates over udp, tcp and tls, on IPv4 and IPv6 (its allocations on the relay)`,
          kindsAll.every((k) => held.kinds[k] > 0),
          {held: held.kinds, reported: kinds});
    check(`${p.name}'s browser reports relay candidates in its candidate pairs`,
          Object.values(kinds).some((c) => c > 0), kinds);
    check(`${p.name} holds ${n} allocations (more than the former fixed quota of 20)`, n > 20,
          {live: n, candidates: kinds});
    check(`${p.name}'s browser saw no ICE candidate error (no refused Allocate)`,
          errors.filter((e) => e.code >= 300 && e.code < 700).length === 0, errors.slice(0, 10));
  }
  report.mostAllocations = most;
} catch (e) {
  check('the run completes', false, String(e && e.stack || e));
} finally {
  await finish(browser);
}

// Two participants in headless Chromium hold a meeting through nginx (tests/integration/
// web_nginx.py): the page, the API and the signaling WebSocket over HTTPS that nginx
// terminates, and the media relay-only over TURN/TLS that nginx's stream module passes to
// meetlited on the same port. The only TURN URI handed out is turns: on nginx's port.
// Usage: node web_nginx.mjs '<json>' with {base, chromium, loopbackOnly, outdir, spki, code,
// people: [{name, session}]}. Prints the report as one JSON line.
import {cfg, check, finish, joinFromLobby, launch, person, report, shot, signedInPage, sleep, state} from './lib.mjs';

// The test's certificate (nginx's and meetlited's TURN one) pinned by its key: the page, wss:
// and turns: are all checked against it, nothing else is trusted blindly.
const browser = await launch([`--ignore-certificate-errors-spki-list=${cfg.spki}`]);
const people = [];
report.pids = {};
report.paths = {};

/* The selected candidate pair of each open peer connection: local type, relay protocol, URL. */
function selectedPairs() {
  return window.openPeerStats().then((all) => all.map((stats) => {
    let pair = null;
    stats.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
    });
    if (!pair) return null;
    const l = stats.get(pair.localCandidateId);
    const r = stats.get(pair.remoteCandidateId);
    return {local: l && l.candidateType, relayProtocol: l && l.relayProtocol, url: l && l.url,
            remote: r && r.candidateType, bytesReceived: pair.bytesReceived};
  }));
}

try {
  for (const who of cfg.people) {
    const p = await person(browser, who.name, {viewport: {width: 800, height: 600}});
    p.page.setDefaultTimeout(90000);
    await p.ctx.addInitScript(signedInPage, {base: cfg.base, session: who.session});
    const resp = await p.page.goto(`${cfg.base}/m/${cfg.code}`);
    check(`${who.name} loads the page from nginx over HTTPS`, resp && resp.ok() &&
          p.page.url().startsWith('https://'), resp && resp.status());
    if (!check(`${who.name} joins relay-only (signaling through nginx's wss:)`, await joinFromLobby(p.page))) break;
    report.pids[who.name] = (await state(p.page)).me.id;
    people.push(p);
  }

  const connected = (s) => s && Object.keys(s.peers).length === 1 &&
    Object.values(s.peers).every((x) => x.connection === 'connected' && x.path.kind === 'relay' &&
                                 x.path.localType === 'relay' && x.path.framesDecoded > 0);
  const deadline = Date.now() + 120000;
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
    check(`${p.name} sees the other's video over a relay candidate`, connected(s),
          s && Object.values(s.peers).map((x) => ({connection: x.connection, path: x.path})));
    const pairs = await p.page.evaluate(selectedPairs);
    report.paths[p.name] = pairs;
    check(`${p.name}'s selected pair is a TURN/TLS relay candidate from nginx's port`,
          pairs.length === 1 && pairs[0] && pairs[0].local === 'relay' && pairs[0].relayProtocol === 'tls' &&
          (pairs[0].url || '').startsWith(cfg.turnsUri), pairs);
    const errors = await p.page.evaluate(() => window.candidateErrors);
    check(`${p.name}'s browser saw no ICE candidate error`, errors.length === 0, errors.slice(0, 5));
  }
  if (people.length) await shot(people[0].page, 'nginx-call.png');
} catch (e) {
  check('the run completes', false, String(e && e.stack || e));
} finally {
  await finish(browser);
}

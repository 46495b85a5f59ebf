// The network check before joining and the paths in the roster (issue #14, item 4), in
// headless Chromium against two meetlited nodes on one PostgreSQL:
// - "good": TURN over UDP, TCP and TLS on loopback. Ann and Ben each see in the lobby that
//   every way reaches the relay; they join relay-only and each sees in the participant list
//   the other's path (Relay · UDP) and network check, as reported over signaling; the path
//   follows a change during the call (both leave relay-only: Direct).
// - "blocked": the iceServers handed out name closed ports. Cat's lobby says there is no way
//   to the relay, in a few seconds; Cat and Dan join relay-only and each gets the
//   explanation instead of "Connecting…" within 15 s, and sees the other's path as none.
// Usage: node web_netcheck.mjs '<json>' with {base, blocked, chromium, loopbackOnly, outdir,
// spki}. Prints the report as one JSON line on stdout.
import {cfg, check, finish, joinFromLobby, launch, person, report, shot, signUp, state, until} from './lib.mjs';

const browser = await launch([`--ignore-certificate-errors-spki-list=${cfg.spki}`]);
const [ann, ben, cat, dan] = [await person(browser, 'ann'), await person(browser, 'ben'),
  await person(browser, 'cat'), await person(browser, 'dan')];
report.pids = {};

/** Signs up at base and creates a meeting: its link. */
async function host(p, base, name, email, title) {
  await p.page.goto(`${base}/`);
  await signUp(p.page, name, email);
  await p.page.waitForSelector('#view-dashboard:not([hidden])');
  await p.page.fill('#create-title-input', title);
  await p.page.click('#form-create button[type=submit]');
  await p.page.waitForSelector('#created:not([hidden])');
  const link = await p.page.inputValue('#created-link');
  await p.page.click('#created-join');
  return link;
}

async function guest(p, link, name, email) {
  await p.page.goto(link);
  await signUp(p.page, name, email);
}

/** Waits for the lobby's check to end: {verdict, kind, title, text, ways: {key: ok}, ms}. */
async function lobbyCheck(p) {
  const t0 = Date.now();
  await p.page.waitForSelector('#netcheck:not([hidden])');
  await p.page.waitForFunction(() => document.querySelector('#netcheck').dataset.verdict, null, {timeout: 20000});
  const r = await p.page.evaluate(() => {
    const box = document.querySelector('#netcheck');
    const ways = {};
    for (const li of box.querySelectorAll('li')) ways[li.dataset.way] = li.dataset.ok === 'true';
    return {verdict: box.dataset.verdict, kind: box.dataset.kind, title: document.querySelector('#netcheck-title').textContent,
            text: document.querySelector('#netcheck-text').textContent, ways};
  });
  r.ms = Date.now() - t0;
  return r;
}

/** The participant list's entry of pid: {path, network, badge, net}. */
function person_(page, pid) {
  return page.evaluate((id) => {
    const li = document.querySelector(`#people li[data-pid="${id}"]`);
    if (!li) return null;
    const b = li.querySelector('.badge-path');
    const n = li.querySelector('.person-net');
    return {path: li.dataset.path, network: li.dataset.network, badge: b ? b.textContent : null, net: n ? n.textContent : null};
  }, pid);
}

function rosterShows(page, pid, path, network) {
  return until(page, ([id, want, net]) => {
    const li = document.querySelector(`#people li[data-pid="${id}"]`);
    return li && li.dataset.path === want && (!net || li.dataset.network === net);
  }, [pid, path, network], 30000);
}

try {
  // ------------------------------------------------------------ every way open
  const link = await host(ann, cfg.base, 'Ann Host', 'ann@example.org', 'Open network');
  const a = await lobbyCheck(ann);
  check('the lobby check finds UDP, TCP and TLS to the relay on loopback',
        a.verdict === 'udp' && a.ways.udp && a.ways.tcp && a.ways.tls && a.kind === 'ok', a);
  check('the check ends within a few seconds when every way answers', a.ms < 6000, a);
  await shot(ann.page, 'netcheck-01-open.png');
  check('Ann joins relay-only', await joinFromLobby(ann.page));
  await guest(ben, link, 'Ben Guest', 'ben@example.org');
  const b = await lobbyCheck(ben);
  check('Ben\'s lobby check says his network is fine', b.verdict === 'udp' && /fine/.test(b.title), b);
  check('Ben joins relay-only', await joinFromLobby(ben.page));
  report.pids.ann = (await state(ann.page)).me.id;
  report.pids.ben = (await state(ben.page)).me.id;
  report.good = link.split('/m/')[1];

  await ann.page.click('#btn-people');
  await ben.page.click('#btn-people');
  // Ben's own reading decides, as Ann's below: relay-only with UDP and TCP relay URIs, Chromium
  // may settle on either (seen once in a full run on 2026-12-07: relay over TCP)
  await until(ben.page, async () => /^relay-(udp|tcp)$/.test((await window.meetlite.state()).sentPath || ''));
  const benSaid = (await state(ben.page)).sentPath;
  check('Ann (the host) sees Ben\'s path in the participant list as his client reads it (relay), network UDP',
        /^relay-(udp|tcp)$/.test(benSaid) && await rosterShows(ann.page, report.pids.ben, benSaid, 'udp'),
        {benSaid, entry: await person_(ann.page, report.pids.ben)});
  const e = await person_(ann.page, report.pids.ben);
  check('the list says it in words', e && e.badge === (benSaid === 'relay-tcp' ? 'Relay · TCP' : 'Relay · UDP') &&
        /UDP works/.test(e.net), e);
  // Ann's own reading decides (relay-only over UDP and TCP URIs: Chromium may settle on either)
  const annSaid = (await state(ann.page)).sentPath;
  check('Ben sees Ann\'s path too, as her client reads it (a relay path: relay-only)',
        /^relay-(udp|tcp)$/.test(annSaid) && await rosterShows(ben.page, report.pids.ann, annSaid, 'udp'),
        {annSaid, entry: await person_(ben.page, report.pids.ann)});
  await shot(ann.page, 'netcheck-02-roster.png');

  // the path as it is while the call runs: both leave relay-only, the media goes direct
  for (const p of [ann, ben]) {
    await p.page.click('#btn-settings');
    await p.page.uncheck('#settings-relay');
  }
  check('Ann\'s path follows the call: Ben\'s list shows her Direct once both leave relay-only',
        await rosterShows(ben.page, report.pids.ann, 'direct'), await person_(ben.page, report.pids.ann));
  check('no explanation shows on a working call',
        await ann.page.isHidden('#path-alert') && await ben.page.isHidden('#path-alert'));

  // the words for the ways this loopback run cannot block one by one (the network tier does)
  const words = await ann.page.evaluate(async () => {
    const m = await import('/js/netcheck.js');
    const W = (key, ok, port) => ({key, label: key, ok, ms: 1, port, host: 'relay.example'});
    return {
      udp443: m.wayOf('turn:relay.example:443?transport=udp'), turns: m.wayOf('turns:relay.example'),
      stun: m.wayOf('stun:relay.example:3478'),
      tcp: m.explainCheck({verdict: 'tcp', ways: [W('udp', false, '3478'), W('tcp', true, '3478'), W('tls', true, '443')]}),
      tls: m.explainCheck({verdict: 'tls', ways: [W('udp', false, '3478'), W('udp443', false, '443'), W('tcp', false, '3478'), W('tls', true, '443')]}),
      worst: m.worstPath(['direct', 'relay-tls', null, 'relay-udp']),
      remoteRelay: m.pathWord({kind: 'relay', protocol: 'udp', localType: 'srflx', remoteType: 'relay'}),
    };
  });
  check('the check knows UDP 443 and turns: from the URIs, and skips stun:',
        words.udp443.key === 'udp443' && words.turns.key === 'tls' && words.turns.port === '5349' && words.stun === null, words);
  check('UDP blocked, TCP open: "Your network blocks UDP", the relay over TCP',
        words.tcp.title === 'Your network blocks UDP' && /relay over TCP \(port 3478\)/.test(words.tcp.text), words.tcp);
  check('only TLS: "Your network blocks UDP and plain TCP; your call will go through the encrypted relay on port 443"',
        words.tls.text.startsWith('Your network blocks UDP and plain TCP; your call will go through the encrypted relay on port 443'), words.tls);
  check('a participant\'s path is its most constrained connection\'s', words.worst === 'relay-tls' && words.remoteRelay === 'relay-udp', words);

  // ------------------------------------------------------------ no way to the relay
  const link2 = await host(cat, cfg.blocked, 'Cat Host', 'cat@example.org', 'Blocked network');
  const c = await lobbyCheck(cat);
  check('the lobby check finds no way when the relay\'s ports are closed',
        c.verdict === 'none' && c.kind === 'error' && /No way to the relay/.test(c.title) &&
        !c.ways.udp && !c.ways.tcp && !c.ways.tls, c);
  check('the explanation says what to try', /another network/.test(c.text) && /TLS/.test(c.text), c);
  // bounded by the probes' own timer (5 s after each offer: about 5 s on an idle machine, 10 s
  // seen at load 93), not by the TURN client's retransmissions or TCP's timeouts (tens of s)
  check('the blocked check ends on the probes\' timer, not on network timeouts', c.ms < 20000, c);
  await shot(cat.page, 'netcheck-03-blocked.png');
  check('Cat can still join', await joinFromLobby(cat.page));
  await guest(dan, link2, 'Dan Guest', 'dan@example.org');
  await lobbyCheck(dan);
  check('Dan joins relay-only', await joinFromLobby(dan.page));
  const joined = Date.now();
  report.pids.cat = (await state(cat.page)).me.id;
  report.pids.dan = (await state(dan.page)).me.id;
  report.blocked = link2.split('/m/')[1];
  for (const [p, other] of [[cat, 'Dan'], [dan, 'Cat']]) {
    const ok = await until(p.page, () => !document.querySelector('#path-alert').hidden, null, 15000);
    const ms = Date.now() - joined;
    const txt = await p.page.textContent('#path-alert');
    check(`${p.name} is told why there is no connection to ${other} within 15 s (${ms} ms), not "Connecting…"`,
          ok && ms <= 15000 && txt.includes(`No connection to ${other}`) && /another network/.test(txt), {ms, txt});
    const badge = await p.page.textContent('#grid .tile:not([data-self]) .badge-path');
    check(`${p.name}'s tile of ${other} says "No connection"`, badge === 'No connection', badge);
  }
  await cat.page.click('#btn-people');
  check('Cat\'s list shows Dan with no path and no way to the relay',
        await rosterShows(cat.page, report.pids.dan, 'none', 'none'), await person_(cat.page, report.pids.dan));
  await shot(cat.page, 'netcheck-04-no-path.png');

  for (const p of [ann, ben, cat, dan]) {
    // the failed probes and allocations of the blocked case are expected: nothing else
    const errs = report.consoleErrors[p.name].filter((x) => !/ICE|TURN|stun|turn/i.test(x));
    check(`no console error for ${p.name}`, errs.length === 0, errs);
  }
  for (const p of [ann, ben, cat, dan]) report['log_' + p.name] = await p.page.evaluate(() => window.meetlite.log());
} catch (err) {
  check('the run completes', false, String(err && err.stack || err));
  for (const p of [ann, ben, cat, dan]) report['log_' + p.name] = await p.page.evaluate(() => window.meetlite.log()).catch(() => '');
}
await finish(browser);

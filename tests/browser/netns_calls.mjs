// The network tier's browser side (tests/netns/netns_calls.py): two headless Chromium, each
// started inside its own student namespace (the wrapper runs `ip netns exec NS chromium`),
// behind its own NAT router, hold a meeting through the served client in each firewall
// profile. Per profile: the routers get the profile's ruleset (nft -f, through the wrapper
// script given), two new contexts sign up, Ann creates a meeting, both pass the lobby's
// network check and join (relay-only off: the browsers pick their path), each decodes the
// other's video, and the selected candidate pair (getStats, via window.meetlite.state()) is
// of the expected kind. The negative profile (no way to the relay) expects the lobby's
// verdict "none" and the no-path explanation within 15 s.
// Usage: node netns_calls.mjs '<json>' with {base, browsers: {a, b} (wrapper executables),
// spki, outdir, profiles: [{name, apply: [argv...], count: [argv...], expect: {kind, protocols?,
// verdict?}}]}.
import {execFileSync} from 'node:child_process';
import {chromium} from 'playwright-core';
import {cfg, check, finish, joinFromLobby, report, shot, signUp, state, until} from './lib.mjs';

const args = (extra) => [`--ignore-certificate-errors-spki-list=${cfg.spki}`, '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream', '--disable-gpu', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-quic', ...extra];
const launchIn = (exe) => chromium.launch({executablePath: exe, headless: true, args: args([])});
const [bA, bB] = await Promise.all([launchIn(cfg.browsers.a), launchIn(cfg.browsers.b)]);
report.profiles = {};
report.consoleErrors = {};

async function person(browser, name) {
  const ctx = await browser.newContext({viewport: {width: 1000, height: 700}});
  const page = await ctx.newPage();
  page.setDefaultTimeout(30000);
  const errors = report.consoleErrors[name] = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  return {name, ctx, page};
}

async function lobbyVerdict(page) {
  await page.waitForFunction(() => document.querySelector('#netcheck').dataset.verdict, null, {timeout: 20000});
  return page.evaluate(() => ({verdict: document.querySelector('#netcheck').dataset.verdict,
                               title: document.querySelector('#netcheck-title').textContent,
                               text: document.querySelector('#netcheck-text').textContent}));
}

/** The one peer's state once it decodes video over a path of the expected kind (or the last
 * state read after ms). */
async function settled(page, expect, ms = 30000) {
  await until(page, (want) => {
    const room = window.meetlite.room();
    if (!room) return false;
    const peers = [...room.peers.values()];
    if (peers.length !== 1) return false;
    peers[0].refreshPath();
    const p = peers[0].path;
    return p.framesDecoded > 10 && p.kind === want.kind && (!want.protocols || want.protocols.includes(p.protocol));
  }, expect, ms);
  const s = await state(page);
  return Object.values(s.peers)[0] || null;
}

for (const prof of cfg.profiles) {
  const t0 = Date.now();
  const r = report.profiles[prof.name] = {};
  for (const argv of prof.apply) execFileSync(argv[0], argv.slice(1), {stdio: ['ignore', 'ignore', 'inherit']});
  let ann = null, ben = null;
  try {
    ann = await person(bA, `ann-${prof.name}`);
    ben = await person(bB, `ben-${prof.name}`);
    const base = prof.base || cfg.base;
    await ann.page.goto(`${base}/`);
    await signUp(ann.page, 'Ann', `ann-${prof.name}@example.org`);
    await ann.page.waitForSelector('#view-dashboard:not([hidden])');
    await ann.page.fill('#create-title-input', `Profile ${prof.name}`);
    await ann.page.click('#form-create button[type=submit]');
    await ann.page.waitForSelector('#created:not([hidden])');
    const link = await ann.page.inputValue('#created-link');
    await ann.page.click('#created-join');
    await ben.page.goto(base + new URL(link).pathname + new URL(link).search + new URL(link).hash);
    await signUp(ben.page, 'Ben', `ben-${prof.name}@example.org`);
    const [va, vb] = await Promise.all([lobbyVerdict(ann.page), lobbyVerdict(ben.page)]);
    r.verdicts = [va.verdict, vb.verdict];
    if (prof.expect.verdict)
      check(`${prof.name}: the lobby's network check says ${prof.expect.verdict} for both`,
            va.verdict === prof.expect.verdict && vb.verdict === prof.expect.verdict, {va, vb});
    const joined = await Promise.all([joinFromLobby(ann.page, {relayOnly: false}), joinFromLobby(ben.page, {relayOnly: false})]);
    check(`${prof.name}: both join the meeting from their own NATed networks`, joined[0] && joined[1], joined);
    const since = Date.now();
    if (prof.expect.kind === 'none') {
      for (const p of [ann, ben]) {
        const ok = await until(p.page, () => !document.querySelector('#path-alert').hidden, null, 15000);
        const txt = await p.page.textContent('#path-alert');
        r[`alert_${p.name}`] = {ms: Date.now() - since, txt};
        check(`${prof.name}: ${p.name} is told why there is no connection within 15 s (${Date.now() - since} ms)`,
              ok && Date.now() - since <= 15500 && /No connection to/.test(txt), {txt});
      }
      check(`${prof.name}: the lobby said "No way to the relay"`, /No way to the relay/.test(va.title), va);
    } else {
      for (const p of [ann, ben]) {
        const peer = await settled(p.page, prof.expect);
        r[p === ann ? 'ann' : 'ben'] = peer && peer.path;
        const path = peer && peer.path;
        check(`${prof.name}: ${p.name} sees the other's video over ${prof.expect.kind}` +
              `${prof.expect.protocols ? ' (' + prof.expect.protocols.join(' or ') + ')' : ''}`,
              path && path.framesDecoded > 10 && path.kind === prof.expect.kind &&
              (!prof.expect.protocols || prof.expect.protocols.includes(path.protocol)), peer);
      }
    }
    await shot(ann.page, `netns-${prof.name}.png`);
  } catch (err) {
    check(`${prof.name}: the run completes`, false, String(err && err.stack || err));
  }
  // what the routers' counters dropped under this profile (the Python side reads them)
  r.counters = prof.count.map((argv) => execFileSync(argv[0], argv.slice(1), {encoding: 'utf8'}));
  r.log_ann = ann ? await ann.page.evaluate(() => window.meetlite.log()).catch(() => '') : '';
  r.log_ben = ben ? await ben.page.evaluate(() => window.meetlite.log()).catch(() => '') : '';
  r.ms = Date.now() - t0;
  for (const p of [ann, ben]) if (p) await p.ctx.close().catch(() => {});
}
for (const [name, errs] of Object.entries(report.consoleErrors))
  check(`no page error for ${name}`, errs.length === 0, errs);
await bA.close();
await finish(bB);

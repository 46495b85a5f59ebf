// Relay-only WebRTC calls between two participants of one headless browser (two contexts)
// through meetlited: Chromium (playwright-core) or Firefox (puppeteer-core over WebDriver
// BiDi), see browsers.mjs. The participant's page is relay_page.html.
// Usage: node relay_call.mjs '<json>' where the JSON holds
//   {browser: "chromium"|"firefox", executable, scenarios: [{name, iceServers}], outdir,
//    loopbackOnly, spki (Chromium), profile, acceptInsecureCerts (Firefox), pidFile}
// Prints one JSON object per scenario on stdout: both sides' connection state, the selected
// candidate pair (type, relayProtocol), frames decoded, bytes received, the remote video size,
// data-channel round trips and ICE candidate errors. Screenshots go to outdir. Exits 0 when it
// ran (the caller asserts).
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import {fileURLToPath} from 'node:url';
import {launchBrowser} from './browsers.mjs';

const cfg = JSON.parse(process.argv[2]);
const here = path.dirname(fileURLToPath(import.meta.url));
const PAGE = fs.readFileSync(path.join(here, 'relay_page.html'), 'utf8');
/** p, or a rejection after ms (the timer is cleared: it must not keep node running). */
function within(p, ms) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timeout ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A secure-context page (http://127.0.0.1 is one) with the participant's code.
const server = http.createServer((req, res) => {
  res.writeHead(200, {'content-type': 'text/html; charset=utf-8'});
  res.end(PAGE);
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const url = `http://127.0.0.1:${server.address().port}/`;

const browser = await launchBrowser({...cfg, executable: cfg.executable || cfg.chromium});
if (cfg.outdir) fs.mkdirSync(cfg.outdir, {recursive: true});

// Each side's camera, with different aspect ratios (4:3 and 16:9) so that each side can tell the
// peer's video from its own. Chromium's fake camera is shared between contexts: the cameras are
// opened one after the other, cropped to the ratio. Firefox's fake camera makes any exact size
// (it has no aspectRatio constraint).
const camera = (aspect) => (browser.kind === 'firefox'
  ? {width: {exact: 320}, height: {exact: Math.round(320 / aspect)}, frameRate: 15}
  : {width: 320, aspectRatio: {exact: aspect}, resizeMode: 'crop-and-scale', frameRate: 15});

/** Polls fn in the page every 100 ms until it is truthy or stop() is; false after ms. */
async function waitFor(page, fn, ms, stop = async () => false) {
  const end = Date.now() + ms;
  for (;;) {
    if (await page.evaluate(fn)) return true;
    if (Date.now() > end || await stop()) return false;
    await sleep(100);
  }
}

for (const sc of cfg.scenarios) {
  const result = {name: sc.name};
  const t0 = Date.now();
  const pa = await browser.participant(), pb = await browser.participant();
  try {
    const a = pa.page, b = pb.page;
    await Promise.all([a.goto(url), b.goto(url)]);
    await a.evaluate(([s, v]) => window.start(s, v), [sc.iceServers, camera(4 / 3)]);
    await b.evaluate(([s, v]) => window.start(s, v), [sc.iceServers, camera(16 / 9)]);
    const offer = await within(a.evaluate(() => window.offer()), 15000);
    const answer = await within(b.evaluate((o) => window.answer(o), offer), 15000);
    await a.evaluate((ans) => window.accept(ans), answer);
    // Both sides have gathered: without a relay candidate on a side a relay-only call cannot
    // connect, so a failure is known at once instead of at the end of the wait.
    const gathered = await Promise.all([a, b].map((p) => p.evaluate(() => window.relays)));
    result.gathered = gathered;
    const hopeless = async () => gathered.includes(0) ||
      (await Promise.all([a, b].map((p) => p.evaluate(() => window.pc.connectionState)))).includes('failed');
    const connected = [];
    for (const p of [a, b]) connected.push(await waitFor(p, () => window.pc.connectionState === 'connected', 20000, hopeless));
    result.connected = connected;
    if (connected.every(Boolean)) {
      result.decoding = await Promise.all([a, b].map((p) => waitFor(p, async () => (await window.report()).framesDecoded > 10, 20000)));
      // a data-channel round trip started by each side
      result.echo = [await a.evaluate(() => window.echo(10000)), await b.evaluate(() => window.echo(10000))];
    }
    result.a = await a.evaluate(() => window.report());
    result.b = await b.evaluate(() => window.report());
    if (cfg.outdir) {
      await a.screenshot({path: path.join(cfg.outdir, `relay-${sc.name}-a.png`)});
      await b.screenshot({path: path.join(cfg.outdir, `relay-${sc.name}-b.png`)});
    }
  } catch (e) {
    result.error = String(e && e.message || e);
  } finally {
    await pa.close();
    await pb.close();
  }
  result.ms = Date.now() - t0;
  result.ms = Date.now() - t0;
  process.stdout.write(JSON.stringify(result) + '\n');
}
await browser.close();
server.close();

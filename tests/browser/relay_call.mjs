// Relay-only WebRTC calls between two headless Chromium participants through meetlited.
// Usage: node relay_call.mjs '<json>' where the JSON holds
//   {scenarios: [{name, iceServers}], spki: "<base64 sha256 of the TLS key>", outdir: "<dir>"}
// Prints one JSON object per scenario on stdout: both sides' connection state, the selected
// candidate pair (type, relayProtocol), frames decoded, bytes received, the remote video size and
// ICE candidate errors. Screenshots go to outdir. Exits 0 when it ran (the caller asserts).
import { chromium } from 'playwright-core';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';

const cfg = JSON.parse(process.argv[2]);
const deadline = (ms) => new Promise((_, reject) => setTimeout(() => reject(new Error(`timeout ${ms} ms`)), ms));

// A secure-context page (http://127.0.0.1 is one) with the participant's code.
const PAGE = `<!doctype html><meta charset="utf-8"><title>relay call</title><body><script>
window.errors = [];
window.start = async (iceServers, aspect) => {
  const stream = await navigator.mediaDevices.getUserMedia({audio: false,
    video: {width: 320, aspectRatio: {exact: aspect}, resizeMode: 'crop-and-scale', frameRate: 15}});
  const pc = new RTCPeerConnection({iceServers, iceTransportPolicy: 'relay', bundlePolicy: 'max-bundle'});
  window.pc = pc;
  pc.onicecandidateerror = (e) => window.errors.push({url: e.url, code: e.errorCode, text: e.errorText});
  for (const t of stream.getTracks()) pc.addTrack(t, stream);
  pc.ontrack = (e) => {
    const v = document.createElement('video');
    v.muted = true; v.autoplay = true; v.playsInline = true; v.srcObject = e.streams[0];
    document.body.appendChild(v); window.remote = v;
  };
};
window.gathered = () => new Promise((resolve) => {
  if (window.pc.iceGatheringState === 'complete') return resolve();
  window.pc.addEventListener('icegatheringstatechange', () => {
    if (window.pc.iceGatheringState === 'complete') resolve();
  });
});
window.offer = async () => {
  await window.pc.setLocalDescription(await window.pc.createOffer());
  await window.gathered();
  return window.pc.localDescription.toJSON();
};
window.answer = async (offer) => {
  await window.pc.setRemoteDescription(offer);
  await window.pc.setLocalDescription(await window.pc.createAnswer());
  await window.gathered();
  return window.pc.localDescription.toJSON();
};
window.accept = (answer) => window.pc.setRemoteDescription(answer);
window.report = async () => {
  const stats = await window.pc.getStats();
  const byId = new Map(); stats.forEach((s) => byId.set(s.id, s));
  let pair = null, local = null, inbound = null;
  stats.forEach((s) => {
    if (s.type === 'transport' && s.selectedCandidatePairId) pair = byId.get(s.selectedCandidatePairId);
    if (s.type === 'inbound-rtp' && s.kind === 'video') inbound = s;
  });
  if (pair) local = byId.get(pair.localCandidateId);
  const v = window.remote;
  return {connection: window.pc.connectionState, ice: window.pc.iceConnectionState,
          localType: local && local.candidateType, relayProtocol: local && local.relayProtocol,
          localUrl: local && local.url, framesDecoded: inbound ? inbound.framesDecoded : 0,
          bytesReceived: inbound ? inbound.bytesReceived : 0,
          remoteSize: v ? [v.videoWidth, v.videoHeight] : null, errors: window.errors};
};
</script>`;

const server = http.createServer((req, res) => {
  res.writeHead(200, {'content-type': 'text/html; charset=utf-8'});
  res.end(PAGE);
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const url = `http://127.0.0.1:${server.address().port}/`;

const args = ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', '--disable-gpu',
  '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-quic'];
if (cfg.spki) args.push(`--ignore-certificate-errors-spki-list=${cfg.spki}`);
// On a host whose only interface is loopback Chromium finds no network at all.
if (cfg.loopbackOnly) args.push('--allow-loopback-in-peer-connection');
const browser = await chromium.launch({executablePath: cfg.chromium || '/usr/bin/chromium', headless: true, args});
if (cfg.outdir) fs.mkdirSync(cfg.outdir, {recursive: true});

async function waitFor(page, fn, ms) {
  const end = Date.now() + ms;
  for (;;) {
    const r = await page.evaluate(fn);
    if (r) return true;
    if (Date.now() > end) return false;
    await new Promise((res) => setTimeout(res, 100));
  }
}

for (const sc of cfg.scenarios) {
  const result = {name: sc.name};
  const ctxA = await browser.newContext(), ctxB = await browser.newContext();
  try {
    const a = await ctxA.newPage(), b = await ctxB.newPage();
    await Promise.all([a.goto(url), b.goto(url)]);
    // The fake camera is shared between contexts: open them one after the other, with
    // different aspect ratios so that each side can tell the peer's video from its own.
    await a.evaluate(([s, ar]) => window.start(s, ar), [sc.iceServers, 4 / 3]);
    await b.evaluate(([s, ar]) => window.start(s, ar), [sc.iceServers, 16 / 9]);
    const offer = await Promise.race([a.evaluate(() => window.offer()), deadline(15000)]);
    const answer = await Promise.race([b.evaluate((o) => window.answer(o), offer), deadline(15000)]);
    await a.evaluate((ans) => window.accept(ans), answer);
    const connected = await Promise.all([a, b].map((p) => waitFor(p, () => window.pc.connectionState === 'connected', 20000)));
    const decoding = await Promise.all([a, b].map((p) => waitFor(p, async () => (await window.report()).framesDecoded > 10, 20000)));
    result.a = await a.evaluate(() => window.report());
    result.b = await b.evaluate(() => window.report());
    result.connected = connected;
    result.decoding = decoding;
    if (cfg.outdir) {
      await a.screenshot({path: path.join(cfg.outdir, `relay-${sc.name}-a.png`)});
      await b.screenshot({path: path.join(cfg.outdir, `relay-${sc.name}-b.png`)});
    }
  } catch (e) {
    result.error = String(e && e.message || e);
  } finally {
    await ctxA.close();
    await ctxB.close();
  }
  process.stdout.write(JSON.stringify(result) + '\n');
}
await browser.close();
server.close();

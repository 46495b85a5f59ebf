// Shared by the meeting-client browser tests: Debian's Chromium with fake media devices,
// contexts that record console errors, named checks reported as one JSON object for the
// Python wrapper (which prints them as TAP), and the client's common flows.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';

export const cfg = JSON.parse(process.argv[2] || '{}');

const checks = [];
const consoleErrors = {};
export const report = {checks, consoleErrors};

/** Records one check (the wrapper prints it as a TAP line). */
export function check(name, ok, detail) {
  checks.push({name, ok: !!ok, detail: ok ? undefined : detail});
  process.stderr.write(`${ok ? 'ok' : 'NOT OK'} - ${name}${ok || detail === undefined ? '' : ' ' + JSON.stringify(detail)}\n`);
  return !!ok;
}

/** Debian's Chromium; extra: more command-line flags (e.g. a pinned TURNS certificate). */
export async function launch(extra = []) {
  const args = [...extra, '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', '--disable-gpu',
    '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--disable-quic'];
  // On a host whose only interface is loopback Chromium finds no network at all.
  if (cfg.loopbackOnly) args.push('--allow-loopback-in-peer-connection');
  if (cfg.outdir) fs.mkdirSync(cfg.outdir, {recursive: true});
  return chromium.launch({executablePath: cfg.chromium || '/usr/bin/chromium', headless: true, args});
}

/** A context and page for one person; console errors and page errors are kept by name. */
export async function person(browser, name, opts = {}) {
  const ctx = await browser.newContext({viewport: {width: 1280, height: 800}, ...opts});
  const page = await ctx.newPage();
  consoleErrors[name] = [];
  page.on('console', (m) => {
    // the address says which request a "Failed to load resource" was
    if (m.type() === 'error') consoleErrors[name].push(m.location().url ? `${m.text()} (${m.location().url})` : m.text());
  });
  page.on('pageerror', (e) => consoleErrors[name].push(`pageerror: ${e.message}`));
  page.setDefaultTimeout(30000);
  return {name, ctx, page};
}

export async function shot(page, file) {
  if (cfg.outdir) await page.screenshot({path: path.join(cfg.outdir, file)});
}

/** Polls fn(arg) in the page until it is truthy; false after ms. */
export async function until(page, fn, arg, ms = 30000) {
  try {
    await page.waitForFunction(fn, arg, {timeout: ms, polling: 250});
    return true;
  } catch {
    return false;
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Signs up through the client's form (the page shows the sign-in view). */
export async function signUp(page, name, email, password = 'correct horse') {
  await page.waitForSelector('#view-auth:not([hidden])');
  await page.click('#tab-signup');
  await page.fill('#signup-name', name);
  await page.fill('#signup-email', email);
  await page.fill('#signup-password', password);
  await page.click('#form-signup button[type=submit]');
}

/** In the lobby: waits for the preview (the camera is open), sets relay-only, joins, and
 * waits for the call view and the signaling session. */
export async function joinFromLobby(page, {relayOnly = true} = {}) {
  await page.waitForSelector('#lobby:not([hidden])');
  await page.waitForFunction(() => !document.querySelector('#lobby-join').disabled);
  if (relayOnly) await page.check('#lobby-relay');
  await page.click('#lobby-join');
  await page.waitForSelector('#call:not([hidden])');
  return until(page, async () => {
    const s = await window.meetlite.state();
    return s && s.signaling === 'open' && s.sessions >= 1;
  });
}

/** The call's state (room.debugState()). */
export function state(page) {
  return page.evaluate(() => window.meetlite.state());
}

/** Remote tiles in the grid: [{pid, name, admin, audio, video, path, width, height, track}]. */
export function tiles(page) {
  return page.evaluate(() => [...document.querySelectorAll('#grid .tile:not([data-self])')].map((t) => {
    const v = t.querySelector('video');
    const track = v.srcObject && v.srcObject.getVideoTracks()[0];
    return {pid: t.dataset.pid, name: t.querySelector('.tile-name').textContent,
            admin: !t.querySelector('.badge-admin').hidden, audio: t.dataset.audio, video: t.dataset.video,
            micIcon: !t.querySelector('.tile-mic').hidden, path: t.querySelector('.badge-path').textContent,
            width: v.videoWidth, height: v.videoHeight, time: v.currentTime, track: track ? track.id : null};
  }));
}

/** As the host: signs up from the home page, creates a meeting titled title on the dashboard
 * and opens its lobby (joinFromLobby goes on from there). The meeting's {link, code}. */
export async function hostMeeting(page, name, email, title) {
  await page.goto(`${cfg.base}/`);
  await signUp(page, name, email);
  await page.waitForSelector('#view-dashboard:not([hidden])');
  await page.fill('#create-title-input', title);
  await page.click('#form-create button[type=submit]');
  await page.waitForSelector('#created:not([hidden])');
  const link = await page.inputValue('#created-link');
  const code = await page.textContent('#created-code');
  await page.click('#created-join');
  return {link, code};
}

/** An init script for a context (ctx.addInitScript(signedInPage, {base, session, smallCamera})),
 * run in each page before the client. On base's origin: signed in as session; every
 * RTCPeerConnection kept in window.allPeerConnections and its ICE candidate errors (Chromium
 * reports a refused Allocate there, with its code) in window.candidateErrors;
 * window.openPeerStats() gives the getStats() of the open ones. smallCamera: the fake camera cut
 * to 160x120 at 5 frames a second and the microphone left closed (many pages on two cores). */
export function signedInPage({base, session, smallCamera = false}) {
  if (location.origin !== base) return;
  localStorage.setItem('meetlite.session', JSON.stringify(session));
  if (smallCamera) {
    const md = navigator.mediaDevices;
    const gum = md.getUserMedia.bind(md);
    md.getUserMedia = (c) => gum(c && c.video ? {audio: false, video: {width: {ideal: 160}, height: {ideal: 120},
                                                                     frameRate: {ideal: 5, max: 5}}} : c);
  }
  window.candidateErrors = [];
  window.allPeerConnections = [];
  window.openPeerStats = () => Promise.all(window.allPeerConnections.filter((pc) => pc.connectionState !== 'closed')
    .map((pc) => pc.getStats()));
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Native {
    constructor(...args) {
      super(...args);
      window.allPeerConnections.push(this);
      this.addEventListener('icecandidateerror', (e) =>
        window.candidateErrors.push({code: e.errorCode, text: e.errorText, url: e.url}));
    }
  };
}

/** The end of a run: each of everyone's client log into the report (log_<name>, the Python
 * wrapper prints it on a failure), a check that the page logged no console error (but those
 * that match expected, a RegExp), then the report printed and the browser closed. */
export async function wrapUp(browser, everyone, expected = null) {
  for (const p of everyone) {
    report[`log_${p.name}`] = await p.page.evaluate(() => window.meetlite && window.meetlite.log()).catch(() => '');
    const errors = consoleErrors[p.name].filter((e) => !(expected && expected.test(e)));
    check(`no console error on ${p.name}'s page`, errors.length === 0, errors);
  }
  return finish(browser);
}

export function finish(browser) {
  process.stdout.write(JSON.stringify(report) + '\n');
  return browser.close();
}

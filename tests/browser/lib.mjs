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

export function finish(browser) {
  process.stdout.write(JSON.stringify(report) + '\n');
  return browser.close();
}

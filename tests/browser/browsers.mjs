// The two browsers of the tests behind one small interface, so that one script can drive
// either: Debian's Chromium through playwright-core, Debian's Firefox ESR through
// puppeteer-core over WebDriver BiDi (Playwright cannot drive a stock Firefox). Neither
// package downloads a browser. launchBrowser(opts) resolves
//   {kind, pid, participant({viewport}) -> {page, close()}, close()}
// where page is the driver's own page object (page.evaluate(fn, arg), goto, screenshot work
// the same in both). The PID of a launched Firefox is appended to opts.pidFile, so that the
// test wrapper can stop it if this script dies (tests/lib/mlbrowser.py stop_browsers).
import fs from 'node:fs';

const CHROMIUM_ARGS = ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', '--disable-gpu',
  '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-quic'];

// What Firefox needs for these tests, and why (each one checked):
//   media.navigator.streams.fake        a generated camera and microphone (there is no device)
//   media.navigator.permission.disabled no camera prompt
//   media.peerconnection.ice.loopback   the TURN server listens on 127.0.0.1: without it Firefox
//                                       skips a STUN/TURN server on a loopback address ("Skipping
//                                       STUN server because it is on a loopback address") and
//                                       the page gets icecandidateerror 701 and no candidate
// Autoplay is left at Firefox's default (audible media needs a user gesture): the meeting
// test clicks Join like a person, and the tiles must play after that.
export const FIREFOX_PREFS = {
  'media.navigator.streams.fake': true,
  'media.navigator.permission.disabled': true,
  'media.peerconnection.ice.loopback': true,
};

/**
 * opts: {browser: 'chromium'|'firefox', executable, loopbackOnly, spki (Chromium: pin a TLS
 * key), profile (Firefox: a profile directory, e.g. with a cert9.db that trusts a test CA),
 * acceptInsecureCerts (Firefox: the WebDriver BiDi capability), prefs (Firefox: more
 * preferences), pidFile}.
 */
export async function launchBrowser(opts) {
  return opts.browser === 'firefox' ? launchFirefox(opts) : launchChromium(opts);
}

async function launchChromium(opts) {
  const {chromium} = await import('playwright-core');
  const args = [...CHROMIUM_ARGS];
  if (opts.spki) args.push(`--ignore-certificate-errors-spki-list=${opts.spki}`);
  // On a host whose only interface is loopback Chromium finds no network at all.
  if (opts.loopbackOnly) args.push('--allow-loopback-in-peer-connection');
  const browser = await chromium.launch({executablePath: opts.executable || '/usr/bin/chromium', headless: true, args});
  return {
    kind: 'chromium',
    pid: null,
    async participant({viewport} = {}) {
      const ctx = await browser.newContext(viewport ? {viewport} : {});
      const page = await ctx.newPage();
      return {page, ctx, close: () => ctx.close()};
    },
    close: () => browser.close(),
  };
}

async function launchFirefox(opts) {
  const {default: puppeteer} = await import('puppeteer-core');
  const browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: opts.executable || '/usr/bin/firefox-esr',
    headless: true,
    ...(opts.profile ? {userDataDir: opts.profile} : {}),
    acceptInsecureCerts: !!opts.acceptInsecureCerts,
    extraPrefsFirefox: {...FIREFOX_PREFS, ...(opts.prefs || {})},
  });
  const pid = browser.process() ? browser.process().pid : null;
  if (opts.pidFile && pid) fs.appendFileSync(opts.pidFile, `${pid}\n`);
  return {
    kind: 'firefox',
    pid,
    async participant({viewport} = {}) {
      const ctx = await browser.createBrowserContext();
      const page = await ctx.newPage();
      if (viewport) await page.setViewport(viewport);
      return {page, ctx, close: () => ctx.close()};
    },
    close: () => browser.close(),
  };
}

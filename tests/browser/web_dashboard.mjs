// The meeting client's dashboard, sign-in and messages, in headless Chromium: sign up and in
// with the keyboard, a wrong password, "Sign in with Google" (the provider's page is played by
// this script: Playwright answers the browser's request to accounts.google.com with the
// redirect Google would send, carrying an ID token signed with the test key that meetlited's
// JWKS file holds), create meetings and get their link and code, my meetings and their
// status, join by a pasted link and by code, the messages for an unknown, ended or expired
// meeting (and one that expires during the call), a refused camera, a direct (not relay-only)
// call with its badge, accessible names, and no unexpected console error.
// Usage: node web_dashboard.mjs '<json>' with {base, chromium, loopbackOnly, outdir, oidc:
// {issuer, audience, kid, key (PKCS#8 PEM)}}.
import crypto from 'node:crypto';
import {cfg, check, finish, joinFromLobby, launch, person, report, shot, signUp, sleep, state, tiles, until} from './lib.mjs';

const base = cfg.base;
const browser = await launch();

// Errors a step provokes on purpose: a failed request shows as "Failed to load resource" on
// the console. Each expected one is taken off the person's list; anything else remains.
function expectLoadError(p, status) {
  const list = report.consoleErrors[p.name];
  const i = list.findIndex((e) => e.includes(`status of ${status}`));
  if (i >= 0) list.splice(i, 1);
}

function b64url(b) {
  return Buffer.from(b).toString('base64').replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
}

function idToken(claims) {
  const head = b64url(JSON.stringify({alg: 'RS256', typ: 'JWT', kid: cfg.oidc.kid}));
  const body = b64url(JSON.stringify(claims));
  const sig = crypto.sign('sha256', Buffer.from(`${head}.${body}`), cfg.oidc.key);
  return `${head}.${body}.${b64url(sig)}`;
}

/** Plays Google's authorization endpoint for this context: checks the request, and sends
 * the browser back with an ID token for who. */
async function playGoogle(p, who) {
  p.googleRequests = [];
  await p.ctx.route('https://accounts.google.com/**', (route) => {
    const u = new URL(route.request().url());
    const q = Object.fromEntries(u.searchParams);
    p.googleRequests.push({path: u.pathname, ...q});
    const now = Math.floor(Date.now() / 1000);
    const tok = idToken({iss: cfg.oidc.issuer, aud: q.client_id, sub: who.sub, email: who.email, email_verified: true,
                         name: who.name, nonce: q.nonce, iat: now, exp: now + 300});
    route.fulfill({status: 302, headers: {location: `${q.redirect_uri}#id_token=${tok}&state=${q.state}&authuser=0`}});
  });
}

async function accessibleNames(page) {
  return page.evaluate(() => {
    const bad = [];
    const visible = (el) => el.offsetParent !== null || getComputedStyle(el).position === 'fixed';
    for (const el of document.querySelectorAll('button, a[href], input, select, textarea')) {
      if (!visible(el) || el.type === 'hidden') continue;
      const name = el.getAttribute('aria-label') || (el.labels && [...el.labels].map((l) => l.textContent).join(' ')) ||
        el.textContent || el.getAttribute('title') || '';
      if (!name.trim()) bad.push(el.outerHTML.slice(0, 120));
    }
    return bad;
  });
}

async function apiCall(page, method, path, body) {
  return page.evaluate(async ([m, pth, b]) => {
    const s = JSON.parse(localStorage.getItem('meetlite.session'));
    const r = await fetch(`/api/v1${pth}`, {method: m, body: b === undefined ? (m === 'GET' ? undefined : '') : JSON.stringify(b),
      headers: {Authorization: `Bearer ${s.token}`, ...(b === undefined ? {} : {'Content-Type': 'application/json'})}});
    return {status: r.status, json: await r.json()};
  }, [method, path, body]);
}

const dora = await person(browser, 'dora');
const eve = await person(browser, 'eve');
const fay = await person(browser, 'fay');

try {
  // ------------------------------------------------------------ sign up and in, by keyboard
  const pg = dora.page;
  await pg.goto(`${base}/`);
  await pg.waitForSelector('#view-auth:not([hidden])');
  check('with OpenID Connect configured the button reads "Sign in with Google"',
        await pg.isVisible('#oidc-button') && (await pg.textContent('#oidc-button')) === 'Sign in with Google');
  await pg.focus('#tab-signin');
  await pg.keyboard.press('ArrowRight');
  check('arrow keys move between the sign-in tabs', await until(pg, () =>
    document.activeElement.id === 'tab-signup' && !document.querySelector('#form-signup').hidden), null, 3000);
  await pg.keyboard.press('Tab');
  await pg.keyboard.type('Dora Day');
  await pg.keyboard.press('Tab');
  await pg.keyboard.type('dora@example.org');
  await pg.keyboard.press('Tab');
  await pg.keyboard.type('short');
  await pg.keyboard.press('Enter');
  check('a short password is refused before it is sent', await until(pg, () =>
    /at least 8 characters/.test(document.querySelector('#signup-msg').textContent), null, 5000));
  await pg.fill('#signup-password', '');
  await pg.focus('#signup-password');
  await pg.keyboard.type('correct horse battery');
  await pg.keyboard.press('Enter');
  check('signing up with the keyboard alone lands on the dashboard', await until(pg, () =>
    !document.querySelector('#view-dashboard').hidden && document.querySelector('#account-name').textContent === 'Dora Day'));
  check('the dashboard has a name for every control', (await accessibleNames(pg)).length === 0, await accessibleNames(pg));
  await pg.click('#sign-out');
  await pg.waitForSelector('#view-auth:not([hidden])');
  await pg.fill('#signin-email', 'dora@example.org');
  await pg.fill('#signin-password', 'wrong password');
  await pg.press('#signin-password', 'Enter');
  check('a wrong password says so', await until(pg, () =>
    document.querySelector('#signin-msg').textContent === 'Wrong e-mail or password.'));
  expectLoadError(dora, 401);
  await pg.fill('#signin-password', 'correct horse battery');
  await pg.press('#signin-password', 'Enter');
  check('signing in with the right password works', await until(pg, () => !document.querySelector('#view-dashboard').hidden));

  // ------------------------------------------------------------ meetings
  await pg.fill('#create-title-input', 'Planning');
  await pg.selectOption('#create-duration', '1800');
  await pg.click('#form-create button[type=submit]');
  await pg.waitForSelector('#created:not([hidden])');
  const code = await pg.textContent('#created-code');
  const link = await pg.inputValue('#created-link');
  check('a new meeting shows its link and code', link === `${base}/m/${code}`, {link, code});
  const made = await apiCall(pg, 'GET', `/meetings/${code}`);
  const minutes = (Date.parse(made.json.expires_at) - Date.parse(made.json.created_at)) / 60000;
  check('the chosen duration (30 min) is the meeting\'s', Math.abs(minutes - 30) < 0.1, minutes);
  check('my meetings lists it as active', await until(pg, (c) => {
    const li = document.querySelector(`#meetings-list .meeting[data-code="${c}"]`);
    return li && li.dataset.status === 'ACTIVE' && li.textContent.includes('Planning') && li.textContent.includes('Active');
  }, code));
  const ended = (await apiCall(pg, 'POST', '/meetings', {title: 'Old review', duration_s: 3600})).json;
  await apiCall(pg, 'POST', `/meetings/${ended.code}/end`);
  const expired = (await apiCall(pg, 'POST', '/meetings', {title: 'Quick one', duration_s: 2})).json;
  await sleep(2500);
  await pg.click('#meetings-refresh');
  check('my meetings shows ended and expired meetings with their status', await until(pg, ([e, x]) => {
    const a = document.querySelector(`#meetings-list .meeting[data-code="${e}"]`);
    const b = document.querySelector(`#meetings-list .meeting[data-code="${x}"]`);
    return a && b && a.dataset.status === 'ENDED' && b.dataset.status === 'EXPIRED' && a.textContent.includes('Ended') &&
      !a.querySelector('a') && b.textContent.includes('Expired');
  }, [ended.code, expired.code]));
  await shot(pg, 'dash-01-meetings.png');

  // the messages for meetings one cannot join
  await pg.goto(`${base}/m/${ended.code}`);
  check('an ended meeting\'s link says it has ended', await until(pg, () =>
    !document.querySelector('#room-message').hidden && document.querySelector('#room-message').dataset.reason === 'ended' &&
    document.querySelector('#room-message-title').textContent === 'The meeting has ended'));
  await pg.goto(`${base}/m/${expired.code}`);
  check('an expired meeting\'s link says its time ran out', await until(pg, () =>
    document.querySelector('#room-message').dataset.reason === 'expired' &&
    /time ran out/.test(document.querySelector('#room-message-text').textContent)));
  await shot(pg, 'dash-02-expired.png');
  await pg.goto(`${base}/m/zzz-zzzz-zzz`);
  check('an unknown code says so', await until(pg, () =>
    document.querySelector('#room-message').dataset.reason === 'gone'));
  expectLoadError(dora, 404);

  // ------------------------------------------------------------ a direct call, a refused camera
  await pg.goto(`${base}/`);
  await pg.waitForSelector('#view-dashboard:not([hidden])');
  await pg.click(`#meetings-list .meeting[data-code="${code}"] a`);
  check('Dora joins her meeting from my meetings (not relay-only)', await joinFromLobby(pg, {relayOnly: false}));

  await eve.ctx.addInitScript(() => {
    // this person refuses the camera and microphone
    navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));
  });
  await eve.page.goto(`${base}/`);
  await signUp(eve.page, 'Eve Evans', 'eve@example.org');
  await eve.page.waitForSelector('#view-dashboard:not([hidden])');
  await eve.page.fill('#join-input', `  ${link}  `);
  await eve.page.click('#form-join button[type=submit]');
  await eve.page.waitForSelector('#lobby:not([hidden])');
  check('a pasted link opens the meeting\'s lobby', await eve.page.textContent('#room-title') === 'Planning');
  check('a refused camera is explained in the lobby', await until(eve.page, () => {
    const e = document.querySelector('#media-error');
    return !e.hidden && /blocked/.test(e.textContent) && !document.querySelector('#lobby-join').disabled &&
      document.querySelector('#lobby-cam').disabled;
  }));
  check('the lobby has a name for every control', (await accessibleNames(eve.page)).length === 0, await accessibleNames(eve.page));
  await shot(eve.page, 'dash-03-camera-refused.png');
  check('without camera and microphone one can still join', await joinFromLobby(eve.page, {relayOnly: false}));
  check('the call has a name for every control', (await accessibleNames(eve.page)).length === 0, await accessibleNames(eve.page));
  check('without devices the mute and camera buttons are disabled',
        await eve.page.isDisabled('#btn-mic') && await eve.page.isDisabled('#btn-cam'));
  check('Eve sees and hears Dora without sending anything', await until(eve.page, async () => {
    const s = await window.meetlite.state();
    const p = Object.values(s.peers)[0];
    return p && p.connection === 'connected' && p.path.framesDecoded > 10 && p.path.audioBytesReceived > 0;
  }, null, 40000), await state(eve.page));
  check('Dora sees Eve\'s tile with her camera off', await until(pg, () => {
    const t = document.querySelector('#grid .tile:not([data-self])');
    return t && t.dataset.video === 'off' && t.dataset.audio === 'off';
  }));
  check('on a direct call the badge says Direct', await until(pg, () => {
    const t = document.querySelector('#grid .tile:not([data-self]) .badge-path');
    return t && t.textContent === 'Direct';
  }), await tiles(pg));
  await shot(pg, 'dash-04-direct-call.png');
  // Eve leaves, with confirmation
  await eve.page.click('#btn-leave');
  await eve.page.waitForSelector('#confirm-dialog[open]');
  await eve.page.keyboard.press('Escape');
  check('Escape cancels leaving', await until(eve.page, () => !document.querySelector('#confirm-dialog').open &&
    !document.querySelector('#call').hidden, null, 3000));
  await eve.page.click('#btn-leave');
  await eve.page.click('#confirm-ok');
  check('leaving returns to the dashboard', await until(eve.page, () => !document.querySelector('#view-dashboard').hidden));
  check('Dora sees Eve leave', await until(pg, () => document.querySelectorAll('#grid .tile').length === 1));

  // ------------------------------------------------------------ a meeting that runs out
  const short = (await apiCall(pg, 'POST', '/meetings', {title: 'Stand-up', duration_s: 12})).json;
  await pg.click('#btn-leave');
  await pg.click('#confirm-ok');
  await pg.waitForSelector('#view-dashboard:not([hidden])');
  await pg.goto(`${base}/m/${short.code}`);
  check('Dora joins a meeting of 12 seconds', await joinFromLobby(pg, {relayOnly: false}));
  check('when its time runs out during the call she is told', await until(pg, () =>
    !document.querySelector('#room-message').hidden && document.querySelector('#room-message').dataset.reason === 'expired', null, 30000));
  await shot(pg, 'dash-05-expired-in-call.png');

  // ------------------------------------------------------------ Sign in with Google
  const retro = (await apiCall(pg, 'POST', '/meetings', {title: 'Retro', duration_s: 3600})).json;
  await playGoogle(fay, {sub: 'google-fay-1', email: 'fay@example.org', name: 'Fay Fox'});
  await fay.page.goto(`${base}/m/${retro.code}`);
  await fay.page.waitForSelector('#oidc-button');
  await fay.page.click('#oidc-button');
  check('"Sign in with Google" signs in with the ID token and returns to the meeting link', await until(fay.page, () =>
    location.pathname.startsWith('/m/') && !document.querySelector('#lobby').hidden &&
    document.querySelector('#account-name').textContent === 'Fay Fox'), fay.googleRequests);
  const g = fay.googleRequests[0] || {};
  check('the provider was asked for an ID token for our client id, with state and nonce',
        g.path === '/o/oauth2/v2/auth' && g.response_type === 'id_token' && g.client_id === cfg.oidc.audience &&
        g.redirect_uri === `${base}/` && g.state && g.nonce && /openid/.test(g.scope), g);
  check('the ID token left the address bar', !(await fay.page.evaluate(() => location.hash)));
  const me = await apiCall(fay.page, 'GET', '/me');
  check('the account is an OpenID Connect one', me.json.signup_method === 'oidc' && me.json.oidc_issuer === cfg.oidc.issuer, me.json);
  // an answer that this tab did not ask for is refused
  await fay.page.click('#sign-out');
  await fay.page.goto(`${base}/#id_token=${idToken({iss: cfg.oidc.issuer, aud: cfg.oidc.audience, sub: 'x', email: 'x@example.org',
    email_verified: true, nonce: 'n', iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 60})}&state=forged`);
  check('an ID token this tab did not ask for is refused', await until(fay.page, () =>
    !document.querySelector('#view-auth').hidden && /does not match/.test(document.querySelector('#oidc-msg').textContent)));
  await shot(fay.page, 'dash-06-oidc-refused.png');

  // ------------------------------------------------------------ phone width
  await eve.page.setViewportSize({width: 390, height: 844});
  await eve.page.goto(`${base}/`);
  await eve.page.waitForSelector('#view-dashboard:not([hidden])');
  check('the dashboard fits a phone without sideways scrolling', await eve.page.evaluate(() =>
    document.documentElement.scrollWidth <= innerWidth));
  await shot(eve.page, 'dash-07-phone.png');
} catch (e) {
  check(`the run finished without an exception: ${e.message}`, false, String(e.stack || e));
  for (const p of [dora, eve, fay]) await shot(p.page, `dash-failure-${p.name}.png`).catch(() => {});
}
for (const p of [dora, eve, fay])
  check(`no unexpected console error on ${p.name}'s page`, report.consoleErrors[p.name].length === 0, report.consoleErrors[p.name]);
await finish(browser);

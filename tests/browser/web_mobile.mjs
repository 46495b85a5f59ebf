// The meeting client on a phone, and its accessibility (issue #17, item 5): Mo uses a
// 390x844 touch viewport (an iPhone's), Ann a desktop, both in one headless Chromium. Mo
// follows the link, signs up, waits in the lobby view, and joins the call. At each step: no
// horizontal overflow, every control on the screen and at least 44x44 CSS px (touch targets:
// buttons, links styled as buttons, inputs, select, the labels of checkboxes), and an axe-core
// audit (axe-core from tests/browser/package.json, injected into the page) with no violation of
// serious or critical impact; in the call with the reaction row, the people list (with a hand
// raised and ADMIN actions shown) and the chat open. No console error.
// Usage: node web_mobile.mjs '<json>' with {base, chromium, loopbackOnly, outdir}.
import {createRequire} from 'node:module';
import {check, hostMeeting, joinFromLobby, launch, person, report, shot, signUp, until, wrapUp} from './lib.mjs';

const require = createRequire(import.meta.url);
const AXE = require.resolve('axe-core/axe.min.js');
const W = 390, H = 844;
const browser = await launch();
const ann = await person(browser, 'ann');
// the page's Content-Security-Policy admits no script but the app's: the audit's script is
// let in for this context only
const mo = await person(browser, 'mo', {viewport: {width: W, height: H}, isMobile: true, hasTouch: true,
                                        deviceScaleFactor: 2, bypassCSP: true});
const everyone = [ann, mo];

/** Layout checks of what is on the screen now: overflow, controls inside, touch targets. */
async function layout(page, scope) {
  return page.evaluate(({scope, W, H}) => {
    const visible = (e) => e.offsetParent !== null && getComputedStyle(e).visibility !== 'hidden';
    const root = document.querySelector(scope);
    const small = [];
    const targets = [...root.querySelectorAll('button, a.btn, input:not([type=checkbox]):not([type=radio]), select, label.check')]
      .filter(visible);
    for (const e of targets) {
      const r = e.getBoundingClientRect();
      if (r.width < 44 || r.height < 44)
        small.push({id: e.id || e.className || e.tagName, text: (e.textContent || '').trim().slice(0, 30),
                    w: Math.round(r.width), h: Math.round(r.height)});
    }
    const outside = [...document.querySelectorAll('.controls .ctl')].filter(visible).map((e) => {
      const r = e.getBoundingClientRect();
      return {id: e.id, l: r.left, r: r.right, t: r.top, b: r.bottom};
    }).filter((x) => x.l < 0 || x.r > W + 0.5 || x.t < 0 || x.b > H + 0.5);
    return {overflow: document.documentElement.scrollWidth - window.innerWidth, targets: targets.length, small, outside};
  }, {scope, W, H});
}

/** axe-core's audit of the page: violations of serious or critical impact. */
async function audit(page) {
  if (!(await page.evaluate(() => !!window.axe))) await page.addScriptTag({path: AXE});
  const res = await page.evaluate(async () => {
    const r = await window.axe.run(document, {resultTypes: ['violations']});
    return r.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
                                     nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' '))}));
  });
  return {bad: res.filter((v) => v.impact === 'serious' || v.impact === 'critical'), all: res};
}

async function step(name, scope) {
  const l = await layout(mo.page, scope);
  check(`${name}: no horizontal overflow at ${W} px`, l.overflow <= 0, l);
  check(`${name}: every touch target is at least 44x44 px (${l.targets} checked)`, l.targets > 0 && l.small.length === 0, l.small);
  check(`${name}: the controls are on the screen`, l.outside.length === 0, l.outside);
  const a = await audit(mo.page);
  check(`${name}: axe-core finds no serious or critical violation`, a.bad.length === 0, a.bad);
  report[`axe_${name}`] = a.all.map((v) => `${v.impact} ${v.id}`);
}

try {
  const {link} = await hostMeeting(ann.page, 'Ann Admin', 'ann-mobile@example.org', 'Office hours');
  check('Ann joins', await joinFromLobby(ann.page));

  await mo.page.goto(link);
  await mo.page.waitForSelector('#view-auth:not([hidden])');
  await step('sign-in', '#view-auth');
  await signUp(mo.page, 'Mo Mobile', 'mo-mobile@example.org');
  await mo.page.waitForSelector('#lobby:not([hidden])');
  await mo.page.waitForFunction(() => !document.querySelector('#lobby-join').disabled);
  await step('lobby', '#view-room');
  await shot(mo.page, 'mobile-01-lobby.png');
  check('Mo joins from the phone', await joinFromLobby(mo.page));
  check('Mo sees Ann\'s video', await until(mo.page, () => {
    const v = document.querySelector('#grid .tile:not([data-self]) video');
    return v && v.videoWidth > 0;
  }, undefined, 40000));
  await ann.page.click('#btn-hand');
  await step('call', '#view-room');
  await shot(mo.page, 'mobile-02-call.png');
  await mo.page.tap('#btn-react');
  await mo.page.waitForSelector('#react-menu:not([hidden])');
  await step('call with reactions', '#view-room');
  await mo.page.tap('#btn-react');
  await mo.page.tap('#btn-people');
  await mo.page.waitForSelector('#panel-people:not([hidden])');
  check('the people list shows Ann\'s raised hand', await until(mo.page, () =>
    [...document.querySelectorAll('#hands .person-name')].some((e) => e.textContent === 'Ann Admin')));
  await step('call with people', '#view-room');
  await shot(mo.page, 'mobile-03-people.png');
  await mo.page.tap('#btn-chat');
  await mo.page.waitForSelector('#panel-chat:not([hidden])');
  await step('call with chat', '#view-room');
} catch (e) {
  check(`the run finished without an exception: ${e.message}`, false, String(e.stack || e));
  for (const p of everyone) await shot(p.page, `mobile-failure-${p.name}.png`).catch(() => {});
}
await wrapUp(browser, everyone);

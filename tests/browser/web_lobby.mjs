// The passcode and the waiting room in the meeting client (issue #17, item 2): three people
// in one headless Chromium, relay-only through meetlited's TURN. Ann creates a meeting with a
// passcode and a waiting room from the dashboard and joins without typing the passcode (she
// hosts). Ben follows the link: the lobby asks for the passcode, a wrong one is refused in the
// form, the right one puts him in the waiting room, where his client holds no TURN credential;
// Ann sees him waiting (a count on People, Admit and Deny in the list) and admits him: he
// enters the call, his client now holds a TURN credential, and both decode each other's video
// over the relay. Cat waits too and Ann denies her: she is told so. No console error anywhere.
// Usage: node web_lobby.mjs '<json>' with {base, chromium, loopbackOnly, outdir}. Prints the
// report (checks, pids, code) as one JSON line on stdout.
import {cfg, check, launch, person, report, shot, signUp, state, until, wrapUp} from './lib.mjs';

const base = cfg.base;
const PASSCODE = 'class-1234';
const browser = await launch();
const [ann, ben, cat] = [await person(browser, 'ann'), await person(browser, 'ben'), await person(browser, 'cat')];
const everyone = [ann, ben, cat];
report.pids = {};

/** TURN entries of the client's iceServers (a credential it holds). */
function turnCreds(page) {
  return page.evaluate(() => (window.meetlite.room().iceServers || []).filter((s) => s.username).length);
}

async function knock(p, passcode) {
  await p.page.waitForSelector('#lobby:not([hidden])');
  await p.page.waitForFunction(() => !document.querySelector('#lobby-join').disabled);
  await p.page.check('#lobby-relay');
  if (passcode !== undefined) await p.page.fill('#lobby-passcode', passcode);
  await p.page.click('#lobby-join');
}

async function decoding(p, n, ms = 40000) {
  return until(p.page, async (want) => {
    const s = await window.meetlite.state();
    const peers = s ? Object.values(s.peers) : [];
    return peers.length === want && peers.every((x) => x.connection === 'connected' && x.path.framesDecoded > 10 &&
                                                x.path.kind === 'relay');
  }, n, ms);
}

try {
  // ------------------------------------------------------------ Ann creates and joins
  await ann.page.goto(`${base}/`);
  await signUp(ann.page, 'Ann Admin', 'ann-lobby@example.org');
  await ann.page.waitForSelector('#view-dashboard:not([hidden])');
  await ann.page.fill('#create-title-input', 'Chemistry');
  await ann.page.fill('#create-passcode', PASSCODE);
  await ann.page.check('#create-waiting-room');
  await ann.page.click('#form-create button[type=submit]');
  await ann.page.waitForSelector('#created:not([hidden])');
  const link = await ann.page.inputValue('#created-link');
  report.code = await ann.page.textContent('#created-code');
  check('the dashboard creates a meeting with a passcode and a waiting room', !!link);
  await ann.page.click('#created-join');
  await ann.page.waitForSelector('#lobby:not([hidden])');
  check('the host is not asked for the passcode', await ann.page.isHidden('#lobby-passcode-box'));
  await knock(ann);
  await ann.page.waitForSelector('#call:not([hidden])');
  check('Ann (host) enters the call at once', await until(ann.page, async () => {
    const s = await window.meetlite.state();
    return s && s.signaling === 'open' && s.sessions >= 1;
  }));
  report.pids.ann = (await state(ann.page)).me.id;

  // ------------------------------------------------------------ Ben: passcode, then the lobby
  await ben.page.goto(link);
  await signUp(ben.page, 'Ben Baker', 'ben-lobby@example.org');
  await ben.page.waitForSelector('#lobby:not([hidden])');
  check('Ben\'s lobby asks for the meeting\'s passcode', await ben.page.isVisible('#lobby-passcode'));
  await knock(ben, 'not-the-one');
  check('a wrong passcode is refused in the form', await until(ben.page, () => {
    const m = document.querySelector('#lobby-msg');
    return !m.hidden && /passcode/i.test(m.textContent);
  }));
  await knock(ben, PASSCODE);
  await ben.page.waitForSelector('#waiting:not([hidden])');
  check('the right passcode puts Ben in the waiting room', await ben.page.isVisible('#waiting-title'));
  check('Ben\'s waiting session is open', await until(ben.page, async () => {
    const s = await window.meetlite.state();
    return s && s.waiting && s.signaling === 'open';
  }));
  check('while waiting Ben\'s client holds no TURN credential', (await turnCreds(ben.page)) === 0);
  report.pids.ben = (await state(ben.page)).me.id;
  await shot(ben.page, 'lobby-01-waiting-ben.png');

  check('Ann sees a count of those waiting on the People button', await until(ann.page, () => {
    const c = document.querySelector('#btn-people .count');
    return c && !c.hidden && c.textContent === '1';
  }));
  await ann.page.click('#btn-people');
  const admit = ann.page.getByRole('button', {name: 'Admit Ben Baker'});
  check('Ann\'s people panel lists Ben as waiting, with Admit and Deny',
        await admit.isVisible() && await ann.page.getByRole('button', {name: 'Deny Ben Baker'}).isVisible());
  await shot(ann.page, 'lobby-02-admin-list.png');
  await admit.click();

  await ben.page.waitForSelector('#call:not([hidden])');
  check('admitted, Ben enters the call', await until(ben.page, async () => {
    const s = await window.meetlite.state();
    return s && s.signaling === 'open' && s.sessions >= 1 && !s.waiting;
  }));
  check('admitted, Ben\'s client holds a TURN credential', (await turnCreds(ben.page)) > 0);
  check('the waiting list empties on Ann\'s side', await until(ann.page, () =>
    document.querySelector('#lobby-list-box').hidden));
  for (const p of [ann, ben])
    check(`${p.name} decodes the other's video over a relay-only connection`, await decoding(p, 1), await state(p.page));

  // ------------------------------------------------------------ Cat is turned away
  await cat.page.goto(link);
  await signUp(cat.page, 'Cat Cole', 'cat-lobby@example.org');
  await knock(cat, PASSCODE);
  await cat.page.waitForSelector('#waiting:not([hidden])');
  report.pids.cat = (await state(cat.page)).me.id;
  const deny = ann.page.getByRole('button', {name: 'Deny Cat Cole'});
  check('Ann sees Cat waiting', await until(ann.page, () =>
    [...document.querySelectorAll('#lobby-list .person-name')].some((e) => e.textContent === 'Cat Cole')));
  check('Ben (not an ADMIN) sees no waiting list', await ben.page.isHidden('#lobby-list-box'));
  await deny.click();
  check('Cat is told she was not let in', await until(cat.page, () => {
    const m = document.querySelector('#room-message');
    return !m.hidden && m.dataset.reason === 'denied';
  }));
  await shot(cat.page, 'lobby-03-denied-cat.png');
  check('Ann and Ben are still in the call', await decoding(ann, 1) && await decoding(ben, 1));
} catch (e) {
  check(`the run finished without an exception: ${e.message}`, false, String(e.stack || e));
  for (const p of everyone) await shot(p.page, `lobby-failure-${p.name}.png`).catch(() => {});
}
// the refused passcode and the denial are answers the page expects (fetch logs 4xx)
await wrapUp(browser, everyone, /status of 40[13]/);

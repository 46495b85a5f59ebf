// Raised hands and reactions in the meeting client (issue #17, item 3): three people in one
// headless Chromium, relay-only through meetlited's TURN. Ben, then Cat raise their hands: each
// tile shows the hand to everyone, the host's people panel lists them in the order they went
// up, with Lower; Ann lowers Ben's (his button follows), Cat lowers her own. Cat reacts from
// the reaction row: the emoji shows on her tile for Ann and Ben for a few seconds, then goes.
// No console error anywhere.
// Usage: node web_hands.mjs '<json>' with {base, chromium, loopbackOnly, outdir}. Prints the
// report (checks, pids) as one JSON line on stdout.
import {check, hostMeeting, joinFromLobby, launch, person, report, shot, signUp, sleep, state, until, wrapUp} from './lib.mjs';

const browser = await launch();
const [ann, ben, cat] = [await person(browser, 'ann'), await person(browser, 'ben'), await person(browser, 'cat')];
const everyone = [ann, ben, cat];
report.pids = {};

const handOn = (page, pid) => until(page, (id) => {
  const t = document.querySelector(`#grid .tile[data-pid="${id}"]`);
  return t && t.dataset.hand === 'up' && !t.querySelector('.badge-hand').hidden;
}, pid, 15000);
const handOff = (page, pid) => until(page, (id) => {
  const t = document.querySelector(`#grid .tile[data-pid="${id}"]`);
  return t && t.dataset.hand === '' && t.querySelector('.badge-hand').hidden;
}, pid, 15000);

try {
  const {link} = await hostMeeting(ann.page, 'Ann Admin', 'ann-hands@example.org', 'Seminar');
  check('Ann joins', await joinFromLobby(ann.page));
  for (const [p, name] of [[ben, 'Ben Baker'], [cat, 'Cat Cole']]) {
    await p.page.goto(link);
    await signUp(p.page, name, `${p.name}-hands@example.org`);
    check(`${name} joins`, await joinFromLobby(p.page));
  }
  for (const p of everyone) report.pids[p.name] = (await state(p.page)).me.id;
  check('everyone sees the two others', await until(ann.page, () =>
    document.querySelectorAll('#grid .tile:not([data-self])').length === 2) &&
    await until(cat.page, () => document.querySelectorAll('#grid .tile:not([data-self])').length === 2));

  // ------------------------------------------------------------ hands
  check('the hand button is labelled and not pressed',
        (await ben.page.getAttribute('#btn-hand', 'aria-label')) === 'Raise hand' &&
        (await ben.page.getAttribute('#btn-hand', 'aria-pressed')) === 'false');
  await ben.page.click('#btn-hand');
  check('Ben\'s hand button is pressed once the server has it', await until(ben.page, () =>
    document.querySelector('#btn-hand').getAttribute('aria-pressed') === 'true' &&
    document.querySelector('#btn-hand').getAttribute('aria-label') === 'Lower hand'));
  await sleep(50);
  await cat.page.click('#btn-hand');
  for (const p of [ann, cat])
    check(`${p.name} sees the hand on Ben's tile`, await handOn(p.page, report.pids.ben));
  check('Ann sees the hand on Cat\'s tile', await handOn(ann.page, report.pids.cat));
  await ann.page.click('#btn-people');
  check('Ann\'s panel lists the raised hands in the order they went up', await until(ann.page, () => {
    const names = [...document.querySelectorAll('#hands .person-name')].map((e) => e.textContent);
    return !document.querySelector('#hands-box').hidden && names.join('|') === 'Ben Baker|Cat Cole';
  }), await ann.page.evaluate(() => document.querySelector('#hands').textContent));
  await shot(ann.page, 'hands-01-queue.png');
  await ann.page.getByRole('button', {name: 'Lower Ben Baker\'s hand'}).click();
  check('the ADMIN lowers Ben\'s hand: his tile drops it for Cat', await handOff(cat.page, report.pids.ben));
  check('... and Ben\'s own button follows', await until(ben.page, () =>
    document.querySelector('#btn-hand').getAttribute('aria-pressed') === 'false'));
  check('Ann\'s queue has Cat alone', await until(ann.page, () =>
    [...document.querySelectorAll('#hands .person-name')].map((e) => e.textContent).join('|') === 'Cat Cole'));
  await ben.page.click('#btn-people');
  check('Ben (not an ADMIN) sees the queue without Lower buttons', await until(ben.page, () =>
    !document.querySelector('#hands-box').hidden && document.querySelectorAll('#hands button').length === 0));
  await cat.page.click('#btn-hand');
  check('Cat lowers her own hand: Ann sees it go', await handOff(ann.page, report.pids.cat));
  check('the queue empties', await until(ann.page, () => document.querySelector('#hands-box').hidden));

  // ------------------------------------------------------------ reactions
  await cat.page.click('#btn-react');
  check('the reaction row opens, its buttons labelled', await until(cat.page, () => {
    const m = document.querySelector('#react-menu');
    const b = [...m.querySelectorAll('button')];
    return !m.hidden && b.length === 6 && b.every((x) => x.getAttribute('aria-label').startsWith('React: '));
  }));
  // t0 before the click: Playwright's click() returns only after its own waits, which under
  // load can end after the reaction already reached the others
  const t0 = Date.now();
  await cat.page.getByRole('button', {name: 'React: Thumbs up'}).click();
  for (const p of [ann, ben])
    check(`${p.name} sees Cat's reaction on her tile`, await until(p.page, (id) => {
      const t = document.querySelector(`#grid .tile[data-pid="${id}"]`);
      const r = t && t.querySelector('.tile-reaction');
      return r && !r.hidden && r.textContent === '\u{1F44D}' && r.getAttribute('aria-label') === 'Cat Cole reacted: Thumbs up';
    }, report.pids.cat, 10000));
  check('Cat sees it on her own tile', await until(cat.page, () => {
    const r = document.querySelector('#grid .tile[data-self] .tile-reaction');
    return r && !r.hidden;
  }, undefined, 10000));
  await shot(ben.page, 'hands-02-reaction.png');
  check('the reaction goes after a few seconds', await until(ann.page, (id) =>
    document.querySelector(`#grid .tile[data-pid="${id}"] .tile-reaction`).hidden, report.pids.cat, 10000));
  const shown = Date.now() - t0;
  check('... not at once (shown at least 3 s)', shown >= 3000, shown);
} catch (e) {
  check(`the run finished without an exception: ${e.message}`, false, String(e.stack || e));
  for (const p of everyone) await shot(p.page, `hands-failure-${p.name}.png`).catch(() => {});
}
await wrapUp(browser, everyone);

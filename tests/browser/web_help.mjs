// The Help panel (issue #18) in headless Chromium: opened from the dashboard with the keyboard,
// a question typed and answered with its passages and sources, an article opened and closed
// again, a question nothing answers, Escape returning the focus; then in a call, opened from the
// control bar, with the room's context (the page, the network check's verdict, the role) in the
// request. Usage: node web_help.mjs '<json>' with {base, chromium, loopbackOnly, outdir}.
import {cfg, check, finish, joinFromLobby, launch, person, report, shot, signUp, state} from './lib.mjs';

const browser = await launch();
const p = await person(browser, 'hana');
const page = p.page;
const asked = [];
page.on('request', (r) => {
  if (r.url().endsWith('/api/v1/assistant/ask')) asked.push(JSON.parse(r.postData() || '{}'));
});

try {
  await page.goto(cfg.base + '/');
  await signUp(page, 'Hana', 'hana@example.org');
  await page.waitForSelector('#view-dashboard:not([hidden])');

  // ---------------------------------------------------------------- from the dashboard, by keyboard
  await page.focus('#help-open');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#help-dialog[open]');
  check('dashboard: the Help button opens the dialog, the search box focused',
        await page.evaluate(() => document.activeElement.id === 'help-input'));
  await page.keyboard.type('my camera is black');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#help-results:not([hidden]) .help-passage');
  const ans = await page.evaluate(() => ({
    answered: document.querySelector('#help-results').dataset.answered,
    slugs: [...document.querySelectorAll('.help-passage')].map((li) => li.dataset.slug),
    marks: document.querySelectorAll('.help-snippet mark').length,
    sources: [...document.querySelectorAll('.help-passage .help-source button')].map((b) => b.textContent),
    related: document.querySelectorAll('.help-suggestions button').length,
  }));
  check('the answer: passages, the camera article first', ans.answered === 'true' && ans.slugs[0] === 'camera-black', ans);
  check('each passage shows its source and the question\'s words marked',
        ans.sources.length === ans.slugs.length && ans.sources.length >= 1 && ans.marks > 0, ans);
  check('follow-up suggestions are offered', ans.related >= 1, ans);
  const q0 = asked[0] || {};
  check('the question went with the dashboard\'s context', q0.question === 'my camera is black' &&
        q0.context && q0.context.page === 'dashboard' && typeof q0.context.language === 'string', q0);
  await shot(page, 'help-answer.png');

  // ---------------------------------------------------------------- an article, by keyboard
  await page.focus('.help-passage .help-source button');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#help-article:not([hidden])');
  const art = await page.evaluate(() => ({
    title: document.querySelector('#help-article-title').textContent,
    focus: document.activeElement.id,
    headings: document.querySelectorAll('#help-article-body h4, #help-article-body h5').length,
    items: document.querySelectorAll('#help-article-body li').length,
    scripts: document.querySelectorAll('#help-article-body script, #help-article-body [onclick]').length,
    results: document.querySelector('#help-results').hidden,
  }));
  check('the source opens the article in the dialog, its title focused',
        art.title === 'My camera is black or shows nothing' && art.focus === 'help-article-title' && art.results, art);
  check('the article\'s Markdown is shown as headings, lists and text', art.headings >= 2 && art.items >= 1 &&
        art.scripts === 0, art);
  await shot(page, 'help-article.png');
  await page.click('#help-back');
  check('Back returns to the answer', await page.evaluate(() =>
    !document.querySelector('#help-results').hidden && document.querySelector('#help-article').hidden));

  // ---------------------------------------------------------------- nothing fits
  await page.fill('#help-input', 'how do I bake sourdough bread');
  await page.click('#help-ask');
  await page.waitForSelector('#help-results[data-answered=false]');
  const none = await page.evaluate(() => ({
    lead: document.querySelector('#help-results .help-lead').textContent,
    general: [...document.querySelectorAll('.help-general button')].map((b) => b.dataset.slug),
  }));
  check('nothing fits: it says so and offers general articles',
        /nothing that answers/.test(none.lead) && none.general.length >= 3, none);
  await page.keyboard.press('Escape');
  await page.waitForFunction(() => !document.querySelector('#help-dialog').open);
  check('Escape closes the dialog and the focus returns to the Help button',
        await page.evaluate(() => document.activeElement.id === 'help-open'));

  // ---------------------------------------------------------------- in a call
  await page.fill('#create-title-input', 'Help in a call');
  await page.click('#form-create button[type=submit]');
  await page.waitForSelector('#created:not([hidden])');
  await page.click('#created-join');
  check('joined the call', await joinFromLobby(page));
  const st = await state(page);
  await page.click('#btn-help');
  await page.waitForSelector('#help-dialog[open]');
  await page.fill('#help-input', 'it says connecting forever');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#help-results[data-answered=true] .help-passage');
  const q1 = asked[asked.length - 1] || {};
  const verdict = await page.evaluate(() => window.meetlite.room().netcheck && window.meetlite.room().netcheck.verdict);
  check('in the call: the room\'s context goes with the question (page, network check, role)',
        q1.context && q1.context.page === 'room' && q1.context.role === 'ADMIN' &&
        typeof verdict === 'string' && q1.context.network === verdict, {q1, verdict, st});
  const first = await page.evaluate(() => document.querySelector('.help-passage').dataset.slug);
  check('in the call: the connection article answers', first === 'connecting-forever', first);
  await shot(page, 'help-call.png');
  await page.keyboard.press('Escape');
  await page.waitForFunction(() => !document.querySelector('#help-dialog').open);
  check('in the call: Escape returns the focus to the control bar\'s Help button',
        await page.evaluate(() => document.activeElement.id === 'btn-help'));
  report.asked = asked.length;
} catch (e) {
  check('the run', false, String(e && e.stack || e));
}
check('no console error', report.consoleErrors.hana.length === 0, report.consoleErrors.hana);
await finish(browser);

// Screen sharing in the meeting client (issue #17, item 1): three people in one headless
// Chromium, relay-only through meetlited's TURN. The screen is a canvas's captureStream put in
// place of navigator.mediaDevices.getDisplayMedia by an init script (a 1280x720 picture that
// changes colour and counts frames): Chromium's own fake display capture
// (--use-fake-device-for-media-stream with --use-fake-ui-for-media-stream) does answer in
// headless, but under load it hung the click that opened it, or its share never reached the
// others, in two runs of three; the client's code is the same either way (getDisplayMedia's
// stream, its track, 'ended'). Ann shares: Ben and Cat see the
// share as a tile of its own, large, with the cameras beside it, its frames advancing and not
// black, the connections still relay-only. The browser's own "Stop sharing" is the track's
// 'ended' event (headless has no bar to click: the test fires the event on the track): the
// share goes for everyone. Ben shares too; then an ADMIN makes the meeting ADMIN-only for
// screens (REST PATCH): Ben's share stops by itself and his button goes. No console error.
// Usage: node web_screen.mjs '<json>' with {base, chromium, loopbackOnly, outdir}.
import {check, hostMeeting, joinFromLobby, launch, person, report, shot, signUp, state, until, wrapUp} from './lib.mjs';

const browser = await launch();
const [ann, ben, cat] = [await person(browser, 'ann'), await person(browser, 'ben'), await person(browser, 'cat')];
const everyone = [ann, ben, cat];
for (const p of everyone) p.page.on('crash', () => process.stderr.write(`${p.name}'s page crashed\n`));
// the screen: a canvas that changes every frame, as getDisplayMedia's answer
for (const p of everyone)
  await p.ctx.addInitScript(() => {
    if (!navigator.mediaDevices) return;
    navigator.mediaDevices.getDisplayMedia = async () => {
      const c = document.createElement('canvas');
      c.width = 640;
      c.height = 360;
      const g = c.getContext('2d');
      let n = 0;
      const draw = () => {
        n++;
        g.fillStyle = `hsl(${(n * 7) % 360}, 70%, 45%)`;
        g.fillRect(0, 0, c.width, c.height);
        g.fillStyle = '#fff';
        g.font = '64px sans-serif';
        g.fillText(`slide ${n}`, 60, 200);
      };
      draw();
      const timer = setInterval(draw, 100);
      const stream = c.captureStream(10);
      stream.getVideoTracks()[0].addEventListener('ended', () => clearInterval(timer));
      return stream;
    };
  });
report.pids = {};

/** The screen tile of pid on page: its video's size, time and whether its pixels are lit. */
function screenTile(page, pid) {
  return page.evaluate((id) => {
    const t = document.querySelector(`#grid .tile-screen[data-screen="${id}"]`);
    if (!t) return null;
    const v = t.querySelector('video');
    let lit = 0;
    if (v.videoWidth) {
      const c = document.createElement('canvas');
      c.width = 64;
      c.height = 36;
      const g = c.getContext('2d');
      g.drawImage(v, 0, 0, 64, 36);
      const d = g.getImageData(0, 0, 64, 36).data;
      for (let i = 0; i < d.length; i += 4) lit += d[i] + d[i + 1] + d[i + 2] > 60 ? 1 : 0;
    }
    const cams = [...document.querySelectorAll('#grid .tile:not(.tile-screen)')].map((x) => x.getBoundingClientRect().width);
    return {w: v.videoWidth, h: v.videoHeight, time: v.currentTime, lit, width: t.getBoundingClientRect().width,
            camWidth: Math.max(0, ...cams), layout: document.querySelector('#grid').dataset.layout};
  }, pid);
}

async function seesShare(p, pid) {
  const ok = await until(p.page, (id) => {
    const v = document.querySelector(`#grid .tile-screen[data-screen="${id}"] video`);
    return v && v.videoWidth > 0 && v.currentTime > 0;
  }, pid, 40000);
  const a = await screenTile(p.page, pid);
  await new Promise((r) => setTimeout(r, 1500));
  const b = await screenTile(p.page, pid);
  return {ok: ok && a && b && b.time > a.time && b.lit > 100, a, b};
}

try {
  const {link, code} = await hostMeeting(ann.page, 'Ann Admin', 'ann-screen@example.org', 'Review');
  report.code = code;
  check('Ann joins', await joinFromLobby(ann.page));
  for (const [p, name] of [[ben, 'Ben Baker'], [cat, 'Cat Cole']]) {
    await p.page.goto(link);
    await signUp(p.page, name, `${p.name}-screen@example.org`);
    check(`${name} joins (relay only)`, await joinFromLobby(p.page));
  }
  for (const p of everyone) report.pids[p.name] = (await state(p.page)).me.id;
  for (const p of everyone)
    check(`${p.name} has two relay-only connections`, await until(p.page, async () => {
      const s = await window.meetlite.state();
      const peers = s ? Object.values(s.peers) : [];
      return peers.length === 2 && peers.every((x) => x.connection === 'connected' && x.path.localType === 'relay');
    }, undefined, 40000));

  // ------------------------------------------------------------ Ann shares
  check('the share button is there, labelled', (await ann.page.getAttribute('#btn-share', 'aria-label')) === 'Share screen with everyone' &&
        await ann.page.isVisible('#btn-share'));
  await ann.page.click('#btn-share');
  check('Ann\'s share starts (the button is pressed, her own preview shows)', await until(ann.page, (id) =>
    document.querySelector('#btn-share').getAttribute('aria-pressed') === 'true' &&
    !!document.querySelector(`#grid .tile-screen[data-screen="${id}"]`), report.pids.ann));
  for (const p of [ben, cat]) {
    const r = await seesShare(p, report.pids.ann);
    if (!r.ok) report[`early_${p.name}`] = await p.page.evaluate(() => window.meetlite.log()).catch((e) => String(e));
    check(`${p.name} sees Ann's screen: frames advance, pixels not black`, r.ok, r);
    check(`${p.name}: the share is shown large with the cameras beside it`,
          r.b && r.b.layout === 'share' && r.b.width > 2 * r.b.camWidth, r.b);
    const s = await state(p.page);
    const peer = s.peers[report.pids.ann];
    check(`${p.name}: Ann's connection is still relay-only`, peer && peer.path.localType === 'relay', peer);
    check(`${p.name}: Ann's camera still plays in her own tile`, await until(p.page, (id) => {
      const v = document.querySelector(`#grid .tile[data-pid="${id}"] video`);
      return v && v.videoWidth > 0 && v.srcObject && v.srcObject.getVideoTracks().length === 1;
    }, report.pids.ann, 15000));
  }
  await shot(ben.page, 'screen-01-ann-shares.png');

  // ------------------------------------------------------------ stopped from the browser's bar
  await ann.page.evaluate(() => {
    const t = window.meetlite.room().screen.track;
    t.dispatchEvent(new Event('ended')); // what the browser's own "Stop sharing" does
  });
  for (const p of [ann, ben, cat])
    check(`${p.name}: the share ends with the track ('ended'), the grid goes back`, await until(p.page, () =>
      !document.querySelector('#grid .tile-screen') && document.querySelector('#grid').dataset.layout === '', undefined, 15000));
  check('Ann\'s share button is released', (await ann.page.getAttribute('#btn-share', 'aria-pressed')) === 'false');

  // ------------------------------------------------------------ a participant shares; then ADMINs only
  await ben.page.click('#btn-share');
  const r = await seesShare(cat, report.pids.ben);
  check('Cat sees Ben\'s screen', r.ok, r);
  const status = await ann.page.evaluate(async (code) => {
    const s = JSON.parse(localStorage.getItem('meetlite.session'));
    const res = await fetch(`/api/v1/meetings/${code}`, {method: 'PATCH', headers: {'Content-Type': 'application/json',
      Authorization: `Bearer ${s.token}`}, body: JSON.stringify({screen_share: 'admins'})});
    return res.status;
  }, report.code);
  check('Ann makes screen sharing ADMIN-only (PATCH)', status === 200, status);
  check('Ben\'s share stops by itself and his button goes', await until(ben.page, () =>
    document.querySelector('#btn-share').hidden && !document.querySelector('#grid .tile-screen'), undefined, 15000));
  check('Cat no longer sees a share, and has no share button', await until(cat.page, () =>
    !document.querySelector('#grid .tile-screen') && document.querySelector('#btn-share').hidden, undefined, 15000));
  check('Ann (ADMIN) keeps her share button', await ann.page.isVisible('#btn-share'));
} catch (e) {
  check(`the run finished without an exception: ${e.message}`, false, String(e.stack || e));
  for (const p of everyone) await shot(p.page, `screen-failure-${p.name}.png`).catch(() => {});
}
await wrapUp(browser, everyone);

// The dashboard: start a meeting (title, duration) and get its link and code, join one by
// code or link, and the list of my meetings with their status.

import {api, clientConfig, meetingLink, parseMeetingRef} from './api.js';
import {$, copyText, duration, formMessage, h, showView, when} from './ui.js';

const DURATIONS = [900, 1800, 2700, 3600, 5400, 7200, 10800, 14400, 28800, 43200, 86400];
const STATUS = {ACTIVE: 'Active', ENDED: 'Ended', EXPIRED: 'Expired'};

let navigate = null;
let wired = false;

function durationOptions(cfg) {
  const m = cfg.meetings;
  const sel = $('create-duration');
  const values = DURATIONS.filter((s) => s >= m.min_duration_s && s <= m.max_duration_s);
  if (!values.includes(m.default_duration_s)) values.push(m.default_duration_s);
  values.sort((a, b) => a - b);
  sel.replaceChildren(...values.map((s) => h('option', {value: s, selected: s === m.default_duration_s}, duration(s))));
}

function showCreated(meeting) {
  const link = meetingLink(meeting.code);
  $('created-name').textContent = meeting.title;
  $('created-link').value = link;
  $('created-code').textContent = meeting.code;
  $('created-join').href = `/m/${meeting.code}`;
  $('created').hidden = false;
  $('created-link').focus();
  $('created-link').select();
}

function meetingItem(m) {
  const link = meetingLink(m.code);
  const active = m.status === 'ACTIVE';
  const time = active ? `until ${when(m.expires_at)}` : m.status === 'ENDED' ? `ended ${when(m.ended_at)}` : `expired ${when(m.expires_at)}`;
  return h('li', {class: 'meeting', dataset: {code: m.code, status: m.status}},
    h('div', {class: 'meeting-main'},
      h('span', {class: 'meeting-title'}, m.title),
      h('span', {class: `status status-${m.status.toLowerCase()}`}, STATUS[m.status] || m.status)),
    h('div', {class: 'meeting-meta'},
      h('code', {}, m.code), ' · ', `hosted by ${m.host ? m.host.display_name : '?'}`, ' · ', time),
    h('div', {class: 'meeting-actions'},
      active ? h('a', {class: 'btn btn-primary btn-small', href: `/m/${m.code}`, 'aria-label': `Join ${m.title}`}, 'Join') : null,
      active ? h('button', {type: 'button', class: 'btn btn-small', 'aria-label': `Copy the link of ${m.title}`,
        onclick: () => copyText(link)}, 'Copy link') : null));
}

async function loadMeetings() {
  formMessage($('meetings-msg'), '');
  try {
    const r = await api('GET', '/meetings');
    $('meetings-list').replaceChildren(...r.meetings.map(meetingItem));
    $('meetings-empty').hidden = r.meetings.length > 0;
  } catch (e) {
    if (e.status !== 401) formMessage($('meetings-msg'), `Your meetings could not be loaded: ${e.message}`);
  }
}

function wire() {
  $('form-create').onsubmit = async (e) => {
    e.preventDefault();
    const title = $('create-title-input').value.trim();
    if (!title) {
      formMessage($('create-msg'), 'Give the meeting a title.');
      $('create-title-input').focus();
      return;
    }
    const button = e.target.querySelector('button[type=submit]');
    button.disabled = true;
    formMessage($('create-msg'), '');
    try {
      const body = {title, duration_s: Number($('create-duration').value)};
      const passcode = $('create-passcode').value;
      if (passcode) body.passcode = passcode;
      if ($('create-waiting-room').checked) body.waiting_room = true;
      if ($('create-wait-host').checked) body.wait_for_host = true;
      if ($('create-screen-admins').checked) body.screen_share = 'admins';
      const m = await api('POST', '/meetings', body);
      $('create-passcode').value = '';
      showCreated(m);
      $('create-title-input').value = '';
      loadMeetings();
    } catch (err) {
      formMessage($('create-msg'), err.message);
    } finally {
      button.disabled = false;
    }
  };
  $('created-copy').onclick = () => copyText($('created-link').value, $('created-link'));
  $('form-join').onsubmit = (e) => {
    e.preventDefault();
    const code = parseMeetingRef($('join-input').value);
    if (!code) {
      formMessage($('join-msg'), 'Enter a meeting code such as abc-defg-hij, or paste the meeting link.');
      $('join-input').focus();
      return;
    }
    formMessage($('join-msg'), '');
    $('join-input').value = '';
    navigate(`/m/${code}`);
  };
  $('meetings-refresh').onclick = () => loadMeetings();
}

/** Shows the dashboard; nav(path) moves within the app. */
export async function showDashboard(nav) {
  navigate = nav;
  if (!wired) {
    wire();
    wired = true;
  }
  $('created').hidden = true;
  showView('view-dashboard');
  durationOptions(await clientConfig());
  await loadMeetings();
}

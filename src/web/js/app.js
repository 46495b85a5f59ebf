// meetlite's browser client: plain ES modules, no build step. Two places: "/" (sign in, then
// the dashboard) and "/m/<code>" (a meeting; the control plane serves this page for those
// links too). Navigation inside the app uses the History API.

import {parseMeetingRef, session} from './api.js';
import {initAuth, showAuth} from './auth-view.js';
import {showDashboard} from './dashboard.js';
import {initHelp} from './help.js';
import {finishOidc} from './oidc.js';
import {Room} from './room.js';
import {$, log, logText, toast} from './ui.js';

let room = null;
let routing = Promise.resolve();

function meetingCode(path) {
  const m = path.match(/^\/m\/([^/]+)\/?$/);
  return m ? parseMeetingRef(decodeURIComponent(m[1])) : null;
}

function renderAccount() {
  const s = session.get();
  $('account').hidden = !s;
  $('account-name').textContent = s ? s.user.display_name || s.user.email : '';
}

async function route() {
  const path = location.pathname;
  const code = meetingCode(path);
  if (room && room.code !== code) {
    room.close();
    room = null;
  }
  renderAccount();
  if (!session.get()) {
    showAuth(code ? 'Sign in or create an account to join the meeting.' : '');
    return;
  }
  if (code) {
    if (!room) {
      room = new Room(code, {onExit: () => navigate('/')});
      await room.enter();
    }
    return;
  }
  if (path !== '/') history.replaceState(null, '', '/');
  document.title = 'meetlite';
  await showDashboard(navigate);
}

/** Goes to a path of the app (pushState) and shows it. */
export function navigate(path) {
  if (path !== location.pathname) history.pushState(null, '', path);
  routing = routing.then(route, route);
  return routing;
}

async function start() {
  initAuth(() => navigate(location.pathname));
  // the Help panel asks with where the person is: the dashboard, or the room's state
  initHelp(() => (room ? room.helpContext() : {page: 'dashboard'}));
  $('sign-out').onclick = () => {
    if (room) {
      room.close();
      room = null;
    }
    session.clear();
  };
  $('brand-link').onclick = (e) => {
    e.preventDefault();
    navigate('/');
  };
  session.onChange((s, why) => {
    renderAccount();
    if (!s && why === 'expired' && room && room.inCall()) {
      // the call goes on without the API (signaling resumes with its own token)
      toast('Your sign-in expired. The meeting goes on; sign in again afterwards.', 'error');
      return;
    }
    if (!s) {
      if (room) {
        room.close();
        room = null;
      }
      showAuth(why === 'expired' ? 'Your session expired. Please sign in again.' : '', '');
    }
  });
  // links inside the app move without reloading the page
  document.addEventListener('click', (e) => {
    const a = e.target.closest && e.target.closest('a[href^="/"]');
    if (!a || a.target || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(new URL(a.href).pathname);
  });
  window.addEventListener('popstate', () => {
    routing = routing.then(route, route);
  });
  let error = '';
  try {
    const done = await finishOidc();
    if (done && done.returnTo && done.returnTo !== location.pathname) history.replaceState(null, '', done.returnTo);
  } catch (e) {
    error = e.message;
  }
  if (error) {
    renderAccount();
    showAuth('', error);
    return;
  }
  await navigate(location.pathname);
}

// for tests and support: the app's state and log (no secrets: tokens stay out)
window.meetlite = {
  log: logText,
  room: () => room,
  state: () => (room ? room.debugState() : null),
};

// a bug: said to the person, kept in the log, and left on the console for developers
window.addEventListener('unhandledrejection', (e) => {
  log('unhandled:', e.reason && e.reason.message);
  toast('Something went wrong. Reload the page if it persists.', 'error');
});

start();

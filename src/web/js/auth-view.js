// Signing in and up: e-mail and password, and the OpenID Connect button when the control plane
// has a provider the browser can be sent to (GET /api/v1/config; hidden otherwise).

import {api, clientConfig, session} from './api.js';
import {startOidc} from './oidc.js';
import {$, formMessage, showView} from './ui.js';

const ERRORS = {
  invalid_credentials: 'Wrong e-mail or password.',
  email_taken: 'An account with this e-mail exists already. Sign in instead.',
  rate_limited: 'Too many failed attempts. Wait a few minutes and try again.',
  network: 'The server cannot be reached. Check your connection.',
};

function selectTab(which) {
  const signin = which === 'signin';
  $('tab-signin').setAttribute('aria-selected', String(signin));
  $('tab-signup').setAttribute('aria-selected', String(!signin));
  $('tab-signin').tabIndex = signin ? 0 : -1;
  $('tab-signup').tabIndex = signin ? -1 : 0;
  $('form-signin').hidden = !signin;
  $('form-signup').hidden = signin;
  $('auth-title').textContent = signin ? 'Sign in to meetlite' : 'Create your meetlite account';
}

/** Wires the forms once; onSignedIn() runs after a successful sign-in or sign-up. */
export function initAuth(onSignedIn) {
  $('tab-signin').onclick = () => selectTab('signin');
  $('tab-signup').onclick = () => selectTab('signup');
  // arrow keys move between the two tabs (the ARIA tabs pattern)
  for (const id of ['tab-signin', 'tab-signup'])
    $(id).onkeydown = (e) => {
      if (e.key !== 'ArrowLeft' && e.key !== 'ArrowRight') return;
      const next = id === 'tab-signin' ? 'signup' : 'signin';
      selectTab(next);
      $(`tab-${next}`).focus();
    };

  const submit = async (form, msg, path, body, okStatus) => {
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    formMessage(msg, '');
    try {
      const r = await api('POST', path, body, {auth: false});
      session.save(r);
      form.reset();
      onSignedIn(okStatus);
    } catch (e) {
      formMessage(msg, ERRORS[e.code] || e.message);
    } finally {
      button.disabled = false;
    }
  };

  $('form-signin').onsubmit = (e) => {
    e.preventDefault();
    const email = $('signin-email').value.trim(), password = $('signin-password').value;
    if (!email || !password) {
      formMessage($('signin-msg'), 'Enter your e-mail and password.');
      (email ? $('signin-password') : $('signin-email')).focus();
      return;
    }
    submit(e.target, $('signin-msg'), '/auth/login', {email, password}, 'signed-in');
  };

  $('form-signup').onsubmit = async (e) => {
    e.preventDefault();
    const cfg = await clientConfig();
    const email = $('signup-email').value.trim(), password = $('signup-password').value;
    const name = $('signup-name').value.trim();
    if (!email || !email.includes('@')) {
      formMessage($('signup-msg'), 'Enter a valid e-mail address.');
      $('signup-email').focus();
      return;
    }
    if (password.length < cfg.password_min) {
      formMessage($('signup-msg'), `The password needs at least ${cfg.password_min} characters.`);
      $('signup-password').focus();
      return;
    }
    const body = {email, password};
    if (name) body.display_name = name;
    submit(e.target, $('signup-msg'), '/auth/signup', body, 'signed-up');
  };

  clientConfig().then((cfg) => {
    $('signup-password-hint').textContent = `At least ${cfg.password_min} characters.`;
    if (!cfg.oidc) return;
    $('oidc-box').hidden = false;
    $('oidc-button').textContent = `Sign in with ${cfg.oidc.name}`;
    $('oidc-button').onclick = () => startOidc(cfg.oidc, location.pathname);
  });
}

/** Shows the sign-in view; context explains why (a meeting to join, an expired session). */
export function showAuth(context, error) {
  $('auth-context').textContent = context || '';
  $('auth-context').hidden = !context;
  formMessage($('oidc-msg'), error || '');
  selectTab('signin');
  showView('view-auth');
  $('signin-email').focus();
}

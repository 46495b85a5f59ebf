// "Sign in with Google" (or another OpenID Connect provider the control plane names in
// GET /api/v1/config): the provider's own sign-in page, reached by a plain redirect (no
// third-party script in this page). The provider sends the browser back here with an ID token
// in the URL fragment (response_type=id_token); the control plane verifies it (signature with
// the issuer's keys, issuer, audience, expiry, verified e-mail) at POST /api/v1/auth/oidc. The
// state and nonce checked here tie the answer to the request this tab made.

import {api, session} from './api.js';
import {log} from './ui.js';

const KEY = 'meetlite.oidc';

function random() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
}

function claims(idToken) {
  try {
    const p = idToken.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const bin = atob(p + '='.repeat((4 - p.length % 4) % 4));
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))));
  } catch {
    return {};
  }
}

/** Sends the browser to the provider; returnTo is where to land after signing in. */
export function startOidc(cfg, returnTo) {
  const state = random(), nonce = random();
  sessionStorage.setItem(KEY, JSON.stringify({state, nonce, returnTo, at: Date.now()}));
  const q = new URLSearchParams({
    client_id: cfg.client_id,
    response_type: 'id_token',
    scope: 'openid email profile',
    redirect_uri: `${location.origin}/`,
    state,
    nonce,
    prompt: 'select_account',
  });
  location.assign(`${cfg.authorization_endpoint}?${q}`);
}

/**
 * On page load: finishes a sign-in when the URL fragment carries the provider's answer.
 * Resolves null when there is none, {returnTo} on success; rejects with a message for people.
 */
export async function finishOidc() {
  if (!location.hash || !/[#&](id_token|error)=/.test(location.hash)) return null;
  const params = new URLSearchParams(location.hash.slice(1));
  history.replaceState(null, '', location.pathname + location.search); // the token leaves the URL
  let pending = null;
  try {
    pending = JSON.parse(sessionStorage.getItem(KEY) || 'null');
  } catch {
    pending = null;
  }
  sessionStorage.removeItem(KEY);
  if (params.get('error'))
    throw new Error(params.get('error') === 'access_denied' ? 'Sign-in was cancelled.' : `The provider refused the sign-in (${params.get('error')}).`);
  const token = params.get('id_token');
  if (!pending || params.get('state') !== pending.state || Date.now() - pending.at > 600000)
    throw new Error('This sign-in answer does not match a sign-in started here. Please try again.');
  if (claims(token).nonce !== pending.nonce)
    throw new Error('The sign-in answer was not made for this request. Please try again.');
  let r;
  try {
    r = await api('POST', '/auth/oidc', {id_token: token}, {auth: false});
  } catch (e) {
    log('oidc: refused:', e.code);
    throw new Error(e.code === 'email_not_verified' ? 'Your e-mail address is not verified with the provider.'
      : e.code === 'account_conflict' ? 'This e-mail address belongs to an account linked to another sign-in.'
        : `Sign-in failed: ${e.message}`);
  }
  session.save(r);
  return {returnTo: pending.returnTo || '/'};
}

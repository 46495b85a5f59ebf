// The control plane's REST API (docs/api.md) and the signed-in session. The access token is
// kept in localStorage (so that a meeting link opened in a new tab is signed in too) with its
// expiry; the page's Content-Security-Policy admits no script but ours.

const KEY = 'meetlite.session';
const BASE = '/api/v1';

/** An error answer of the API: status, the stable code and the message for people. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code || 'network';
  }
}

function load() {
  try {
    const s = JSON.parse(localStorage.getItem(KEY) || 'null');
    if (s && s.token && s.expires_at > Date.now() / 1000 + 30) return s;
  } catch {
    /* a damaged entry is dropped below */
  }
  localStorage.removeItem(KEY);
  return null;
}

let current = load();
const listeners = new Set();

/** The signed-in session: {token, user, expires_at}, or null. */
export const session = {
  get() {
    if (current && current.expires_at <= Date.now() / 1000 + 30) this.clear('expired');
    return current;
  },
  /** Keeps the answer of signup, login or OIDC sign-in. */
  save(answer) {
    current = {token: answer.token, user: answer.user,
               expires_at: Math.floor(Date.now() / 1000) + (answer.expires_in || 3600)};
    localStorage.setItem(KEY, JSON.stringify(current));
    for (const f of listeners) f(current, null);
  },
  clear(why = 'signed-out') {
    const had = current !== null;
    current = null;
    localStorage.removeItem(KEY);
    if (had) for (const f of listeners) f(null, why);
  },
  /** f(session, why) on every change. */
  onChange(f) {
    listeners.add(f);
  },
};

// Another tab signed in or out.
window.addEventListener('storage', (e) => {
  if (e.key !== KEY) return;
  const before = current;
  current = load();
  if (!!before !== !!current) for (const f of listeners) f(current, current ? null : 'signed-out');
});

/**
 * One API call. Resolves with the JSON answer; rejects with an ApiError. An authenticated
 * call whose token is refused ends the session (the app asks to sign in again).
 */
export async function api(method, path, body, {auth = true} = {}) {
  const headers = {};
  const s = auth ? session.get() : null;
  if (auth && !s) throw new ApiError(401, 'unauthenticated', 'Please sign in.');
  if (s) headers.Authorization = `Bearer ${s.token}`;
  let data;
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    data = JSON.stringify(body);
  } else if (method === 'POST' || method === 'PATCH' || method === 'PUT') {
    data = ''; // the API wants a Content-Length on every POST, 0 included
  }
  let r;
  try {
    r = await fetch(BASE + path, {method, headers, body: data, cache: 'no-store'});
  } catch {
    throw new ApiError(0, 'network', 'The server cannot be reached. Check your connection.');
  }
  let json = null;
  try {
    json = await r.json();
  } catch {
    json = null;
  }
  if (!r.ok) {
    const err = (json && json.error) || {};
    const e = new ApiError(r.status, err.code, err.message);
    if (r.status === 401 && auth && ['invalid_token', 'token_expired', 'unauthenticated'].includes(e.code))
      session.clear('expired');
    throw e;
  }
  return json;
}

let configPromise = null;

/** GET /config, once: {oidc, meetings: {...}, password_min}. */
export function clientConfig() {
  if (!configPromise)
    configPromise = api('GET', '/config', undefined, {auth: false}).catch(() => ({
      oidc: null,
      meetings: {default_duration_s: 3600, min_duration_s: 60, max_duration_s: 86400},
      password_min: 8,
    }));
  return configPromise;
}

/** A meeting code out of what someone pasted: a code, or a link with /m/<code>. */
export function parseMeetingRef(text) {
  const t = String(text || '').trim();
  const m = t.match(/\/m\/([A-Za-z0-9-]{1,64})\/?(?:[?#].*)?$/) || t.match(/^([A-Za-z0-9-]{1,64})$/);
  return m ? m[1].toLowerCase() : null;
}

/** The shareable link of a meeting code. */
export function meetingLink(code) {
  return `${location.origin}/m/${encodeURIComponent(code)}`;
}

// Small DOM helpers shared by the views: element building, icons, toasts, the confirmation
// dialog, and the app's log (kept in memory; the console gets debug lines only, never errors
// for things a meeting expects to happen, such as a peer going away).

const logLines = [];

/** Records a line in the app's log (window.meetlite.log() reads it back). */
export function log(...parts) {
  const line = `${new Date().toISOString().slice(11, 23)} ${parts.map(String).join(' ')}`;
  logLines.push(line);
  if (logLines.length > 500) logLines.shift();
  console.debug('[meetlite]', ...parts);
}

export function logText() {
  return logLines.join('\n');
}

/** The element with this id (it must exist). */
export function $(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`no element #${id}`);
  return el;
}

/**
 * Builds an element: h('button', {class: 'x', type: 'button', onclick: f}, 'text', child).
 * Attributes starting with "on" are listeners; true/false set or drop boolean attributes;
 * text children are text nodes (never parsed as HTML).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const SVG = 'http://www.w3.org/2000/svg';
// 24x24 outline icons (paths drawn for meetlite).
const ICONS = {
  mic: 'M12 3a3 3 0 0 0-3 3v6a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3zM5 11a7 7 0 0 0 14 0M12 18v3M8 21h8',
  micOff: 'M12 3a3 3 0 0 0-3 3v6a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3zM5 11a7 7 0 0 0 14 0M12 18v3M8 21h8M3 3l18 18',
  cam: 'M3 7h12v10H3zM15 10l6-3v10l-6-3',
  camOff: 'M3 7h12v10H3zM15 10l6-3v10l-6-3M2 3l20 18',
  people: 'M9 11a4 4 0 1 0 0-8 4 4 0 0 0 0 8zM2 21a7 7 0 0 1 14 0M16 3.5a4 4 0 0 1 0 7.5M18 14a7 7 0 0 1 4 7',
  chat: 'M4 4h16v12H8l-4 4z',
  gear: 'M12 15a3 3 0 1 0 0-6 3 3 0 0 0 0 6zM19 12l2-1-1-3-2 .3-1.5-1.5.3-2-3-1-1 2h-2l-1-2-3 1 .3 2L5 7.3 3 7 2 10l2 1v2l-2 1 1 3 2-.3 1.5 1.5-.3 2 3 1 1-2h2l1 2 3-1-.3-2 1.5-1.5 2 .3 1-3-2-1z',
  leave: 'M10 4H4v16h6M14 8l4 4-4 4M18 12H9',
  end: 'M3 14c5-5 13-5 18 0l-3 3-3-2v-3a9 9 0 0 0-6 0v3l-3 2z',
  help: 'M12 21a9 9 0 1 0 0-18 9 9 0 0 0 0 18zM9.5 9.5a2.5 2.5 0 1 1 3.5 2.3c-.6.3-1 .8-1 1.5v.7M12 17v.5',
  link: 'M10 14a4 4 0 0 0 6 0l3-3a4 4 0 0 0-6-6l-1 1M14 10a4 4 0 0 0-6 0l-3 3a4 4 0 0 0 6 6l1-1',
  hand: 'M8 13V5a1.5 1.5 0 0 1 3 0v6M11 11V3.5a1.5 1.5 0 0 1 3 0V11M14 11V5a1.5 1.5 0 0 1 3 0v7M17 9.5a1.5 1.5 0 0 1 3 0V15a7 7 0 0 1-7 7h-1a7 7 0 0 1-5.5-2.7L3 15a1.5 1.5 0 0 1 2.3-2L8 15.5',
  screen: 'M3 4h18v12H3zM8 20h8M12 16v4M9 10l3-3 3 3M12 7v6',
  smile: 'M12 21a9 9 0 1 0 0-18 9 9 0 0 0 0 18zM8 14a5 5 0 0 0 8 0M9 9.5h.01M15 9.5h.01',
};

/** An inline SVG icon, hidden from assistive technology (the control carries the name). */
export function icon(name) {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  svg.setAttribute('class', 'icon');
  const path = document.createElementNS(SVG, 'path');
  path.setAttribute('d', ICONS[name] || '');
  svg.append(path);
  return svg;
}

/** Shows a short message in the live region for a few seconds. */
export function toast(text, kind = 'info') {
  const box = document.getElementById('toasts');
  if (!box) return;
  const t = h('p', {class: `toast toast-${kind}`}, text);
  box.append(t);
  setTimeout(() => t.remove(), kind === 'error' ? 8000 : 4500);
}

/**
 * Asks for confirmation in the modal dialog (focus is trapped by the browser, Escape
 * cancels). Resolves true when confirmed.
 */
export function confirmDialog({title, text, confirm = 'OK', danger = false}) {
  const dlg = $('confirm-dialog');
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  const ok = $('confirm-ok');
  ok.textContent = confirm;
  ok.classList.toggle('danger', danger);
  return new Promise((resolve) => {
    const done = () => {
      dlg.removeEventListener('close', done);
      resolve(dlg.returnValue === 'ok');
    };
    dlg.returnValue = '';
    dlg.addEventListener('close', done);
    dlg.showModal();
    $('confirm-cancel').focus();
  });
}

/** Shows one of the page's views (sections with class "view") and hides the others. */
export function showView(id) {
  for (const v of document.querySelectorAll('.view')) v.hidden = v.id !== id;
  document.body.dataset.view = id;
}

/** Sets a form's message line (role=alert when it is an error). */
export function formMessage(el, text, kind = 'error') {
  el.textContent = text || '';
  el.hidden = !text;
  el.className = `form-msg form-msg-${kind}`;
  if (kind === 'error') el.setAttribute('role', 'alert');
  else el.removeAttribute('role');
}

/** "1 h 30 min" for a number of seconds. */
export function duration(s) {
  if (s < 60) return `${s} s`;
  const hrs = Math.floor(s / 3600), min = Math.round((s % 3600) / 60);
  if (!hrs) return `${min} min`;
  return min ? `${hrs} h ${min} min` : `${hrs} h`;
}

/** A date and time in the reader's locale. */
export function when(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleString([], {dateStyle: 'medium', timeStyle: 'short'});
}

/** Up to two initials of a name, for a tile without video. */
export function initials(name) {
  const parts = String(name || '?').trim().split(/\s+/).filter(Boolean);
  return (parts.length > 1 ? parts[0][0] + parts[parts.length - 1][0] : (parts[0] || '?').slice(0, 2)).toUpperCase();
}

/** Copies text to the clipboard; falls back to selecting it in the given input. */
export async function copyText(text, input) {
  try {
    await navigator.clipboard.writeText(text);
    toast('Link copied');
  } catch {
    if (input) {
      input.focus();
      input.select();
    }
    toast('Press Ctrl+C (or long-press) to copy the selected link');
  }
}

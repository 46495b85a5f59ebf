// The Help panel: a modal dialog (the browser traps focus; Escape closes) that asks the help
// assistant (POST /assistant/ask) with the page's context, shows the passages with their
// sources and follow-ups, and opens an article (GET /assistant/articles/{slug}) in place.
// Answers and articles are text: Markdown is turned into elements, never parsed as HTML.

import {api} from './api.js';
import {$, h, log} from './ui.js';

let contextOf = () => ({page: 'other'});
let lastFocus = null;

/** The context sent with a question: the page's (set by the app), the browser's language. */
function context() {
  const c = {...contextOf()};
  c.language = (navigator.language || 'en').slice(0, 15);
  const ua = navigator.userAgent || '';
  const m = ua.match(/(Firefox|Edg|Chrome|Chromium|Safari)\/[\d.]+/);
  if (m) c.browser = m[0].slice(0, 120);
  for (const k of Object.keys(c)) if (c[k] === undefined || c[k] === null || c[k] === '') delete c[k];
  return c;
}

/** Text with **marked** words as text nodes and <mark> elements. */
function marked(text) {
  return String(text || '').split('**').map((part, i) => (i % 2 ? h('mark', {}, part) : part));
}

/** Inline Markdown as nodes: **strong**, `code`, [text](link) as its text. */
function inline(text) {
  const out = [];
  const re = /\*\*([^*]+)\*\*|`([^`]+)`|\[([^\]]+)\]\([^)]*\)/g;
  let at = 0;
  for (let m; (m = re.exec(text));) {
    if (m.index > at) out.push(text.slice(at, m.index));
    if (m[1] !== undefined) out.push(h('strong', {}, m[1]));
    else if (m[2] !== undefined) out.push(h('code', {}, m[2]));
    else out.push(m[3]);
    at = re.lastIndex;
  }
  out.push(text.slice(at));
  return out;
}

/** An article's Markdown as elements: headings, lists, code blocks, paragraphs. */
function renderMarkdown(md) {
  const nodes = [];
  let para = [], list = null, code = null;
  const flush = () => {
    if (para.length) nodes.push(h('p', {}, inline(para.join(' '))));
    para = [];
    if (list) nodes.push(list);
    list = null;
  };
  for (const line of String(md || '').split('\n')) {
    if (code) {
      if (/^```/.test(line)) {
        nodes.push(h('pre', {}, h('code', {}, code.join('\n'))));
        code = null;
      } else code.push(line);
      continue;
    }
    if (/^```/.test(line)) {
      flush();
      code = [];
      continue;
    }
    const head = line.match(/^(#{1,6})\s+(.*)$/);
    const item = line.match(/^\s*(?:[-*+]|\d+[.)])\s+(.*)$/);
    if (head) {
      flush();
      nodes.push(h(head[1].length <= 2 ? 'h4' : 'h5', {}, inline(head[2])));
    } else if (item) {
      if (para.length) {
        nodes.push(h('p', {}, inline(para.join(' '))));
        para = [];
      }
      if (!list) list = h(/^\s*\d/.test(line) ? 'ol' : 'ul');
      list.append(h('li', {}, inline(item[1])));
    } else if (!line.trim()) {
      flush();
    } else if (list && /^\s{2,}/.test(line)) {
      list.lastChild.append(' ', ...inline(line.trim()));
    } else {
      if (list) flush();
      para.push(line.replace(/^>\s?/, '').trim());
    }
  }
  if (code) nodes.push(h('pre', {}, h('code', {}, code.join('\n'))));
  flush();
  return nodes;
}

function status(text, kind = 'info') {
  const el = $('help-status');
  el.textContent = text || '';
  el.hidden = !text;
  el.className = `form-msg form-msg-${kind}`;
}

/** Opens an article in the dialog; Back returns to the answer. */
async function openArticle(slug) {
  status('Opening the article…');
  let a;
  try {
    a = await api('GET', `/assistant/articles/${encodeURIComponent(slug)}`);
  } catch (e) {
    status(e.message, 'error');
    return;
  }
  status('');
  $('help-results').hidden = true;
  const view = $('help-article');
  $('help-article-title').textContent = a.title;
  $('help-article-body').replaceChildren(...renderMarkdown(a.body_md));
  view.dataset.slug = a.slug;
  view.hidden = false;
  $('help-article-title').focus();
  log('help: article', a.slug);
}

function articleButton(slug, title) {
  return h('button', {type: 'button', class: 'link-btn', dataset: {slug}, onclick: () => openArticle(slug)}, title);
}

function renderAnswer(ans) {
  const box = $('help-results');
  const items = [];
  if (ans.answered) {
    items.push(h('p', {class: 'help-lead'}, ans.confidence >= 0.6 ? 'This should help:' : 'This may help:'));
    items.push(h('ol', {class: 'help-passages'}, ans.passages.map((p) =>
      h('li', {class: 'help-passage', dataset: {slug: p.slug}},
        h('p', {class: 'help-snippet'}, marked(p.snippet)),
        h('p', {class: 'help-source'}, 'Source: ', articleButton(p.slug, p.title),
          p.heading ? ` · ${p.heading}` : '')))));
    if (ans.suggestions.length) {
      items.push(h('p', {class: 'help-lead'}, 'Related:'));
      items.push(h('ul', {class: 'help-suggestions'}, ans.suggestions.map((s) =>
        h('li', {}, h('button', {type: 'button', class: 'link-btn', onclick: () => {
          $('help-input').value = s.text;
          ask(s.text);
        }}, s.text)))));
    }
  } else {
    items.push(h('p', {class: 'help-lead'}, 'I found nothing that answers this well. Try other words, ask your host, or look at these:'));
    items.push(h('ul', {class: 'help-general'}, ans.general.map((g) => h('li', {}, articleButton(g.slug, g.title)))));
    if (ans.suggestions.length)
      items.push(h('p', {}, 'About your network: ', articleButton(ans.suggestions[0].slug, ans.suggestions[0].text)));
  }
  box.replaceChildren(...items);
  box.dataset.answered = String(ans.answered);
  box.hidden = false;
  $('help-article').hidden = true;
}

let asking = 0;

async function ask(question) {
  const q = String(question || '').trim();
  if (!q) {
    status('Type a question first.', 'error');
    return;
  }
  const mine = ++asking;
  status('Looking for an answer…');
  try {
    const ans = await api('POST', '/assistant/ask', {question: q.slice(0, 500), context: context()});
    if (mine !== asking) return;
    status('');
    renderAnswer(ans);
    log(`help: asked, answered=${ans.answered} confidence=${ans.confidence}`);
  } catch (e) {
    if (mine !== asking) return;
    status(e.code === 'rate_limited' ? 'You asked a lot of questions in a short time. Wait a minute and try again.' : e.message, 'error');
  }
}

/** Opens the Help dialog (from any button), the search box focused. */
export function openHelp() {
  const dlg = $('help-dialog');
  if (dlg.open) return;
  lastFocus = document.activeElement;
  dlg.showModal();
  $('help-input').focus();
}

/**
 * Wires the dialog and the buttons that open it. ctx() gives the page's context:
 * {page, network?, role?} (api.md, POST /assistant/ask).
 */
export function initHelp(ctx) {
  if (ctx) contextOf = ctx;
  const dlg = $('help-dialog');
  for (const b of document.querySelectorAll('[data-help-open]')) b.addEventListener('click', openHelp);
  $('help-form').onsubmit = (e) => {
    e.preventDefault();
    ask($('help-input').value);
  };
  $('help-close').onclick = () => dlg.close();
  $('help-back').onclick = () => {
    $('help-article').hidden = true;
    $('help-results').hidden = false;
    $('help-input').focus();
  };
  dlg.addEventListener('close', () => {
    if (lastFocus && lastFocus.focus) lastFocus.focus();
  });
}

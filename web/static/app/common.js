// What every page shares: the header (navigation, connection badge, token
// field), the client and the HTTP reads. The pages talk to the engine only
// through the Client of /client.js and the HTTP routes.
import { Client } from '/client.js';

export const $ = (sel, root = document) => root.querySelector(sel);

// el builds an element: el('li', {class: 'x', dataset: {v: 1}}, 'text', child).
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

const TOKEN_KEY = 'engine.token';

// token is the bearer token the user gave (auth on), or ''.
export function token() {
  try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch { return ''; }
}

const LABELS = {
  connecting: 'connecting…',
  connected: 'connected',
  reconnecting: 'reconnecting…',
  offline: 'offline',
  closed: 'offline',
};

export function showStatus(status) {
  const b = $('#status');
  if (!b) return;
  b.dataset.status = status;
  b.textContent = LABELS[status] || status;
}

// header fills the page's <header>: title, navigation, badge and token.
function header() {
  const h = $('header');
  const here = location.pathname;
  const links = [['/', 'Home'], ['/app/chat.html', 'Chat'], ['/app/scores.html', 'Scores'], ['/app/orders.html', 'Orders'], ['/app/inspector.html', 'Inspector']];
  const nav = el('nav', { 'aria-label': 'Pages' },
    links.map(([href, name]) => el('a', { href, 'aria-current': href === here ? 'page' : undefined }, name)));
  const saved = token();
  const form = el('form', { id: 'token-form' },
    el('label', {}, 'Bearer token (only with auth on; kept for this tab)',
      el('input', { id: 'token', type: 'password', autocomplete: 'off', value: saved })),
    el('button', { type: 'submit', class: 'secondary' }, 'Use token'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const v = $('#token').value.trim();
    try {
      if (v) sessionStorage.setItem(TOKEN_KEY, v); else sessionStorage.removeItem(TOKEN_KEY);
    } catch { /* storage off: the token lasts until reload */ }
    location.reload();
  });
  const details = el('details', { class: 'token' }, el('summary', {}, saved ? 'Token (set)' : 'Token'), form);
  const badge = $('#status') || el('span', { id: 'status', class: 'badge', role: 'status', 'aria-live': 'polite' });
  h.append(nav, el('span', { class: 'spacer' }), details, el('span', { class: 'sr-only' }, 'Connection: '), badge);
  showStatus('connecting');
}

export function wsURL() {
  return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
}

// connect starts the page's client; the badge follows its status.
export function connect() {
  header();
  const client = new Client(wsURL(), {
    token: () => token() || undefined,
    onStatus: showStatus,
  });
  client.connect().catch(() => {});
  return client;
}

// api GETs a path of the engine: {status, body} (body parsed from JSON
// when it is JSON, else null).
export async function api(path, init = {}) {
  const headers = { ...(init.headers || {}) };
  const t = token();
  if (t) headers.Authorization = 'Bearer ' + t;
  const r = await fetch(path, { ...init, headers });
  let body = null;
  const type = r.headers.get('Content-Type') || '';
  if (type.includes('json')) {
    try { body = await r.json(); } catch { body = null; }
  }
  return { status: r.status, body };
}

// problem is the message of an error reply or a rejected command.
export function problem(x) {
  if (x instanceof Error) return x.code ? `${x.code}: ${x.message}` : x.message;
  if (x && x.body) return `${x.body.code || x.status}: ${x.body.detail || x.body.title || ''}`;
  return String(x);
}

// showError puts msg in the page's alert region (cleared with '').
export function showError(msg, where = '#error') {
  const e = $(where);
  if (e) e.textContent = msg || '';
}

export const ID_PATTERN = '[A-Za-z0-9_.\\-]{1,64}';

export function randomID() {
  const a = new Uint8Array(8);
  crypto.getRandomValues(a);
  return Array.from(a, (b) => b.toString(16).padStart(2, '0')).join('');
}

export function timeOf(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return isNaN(d) ? '' : d.toLocaleTimeString();
}

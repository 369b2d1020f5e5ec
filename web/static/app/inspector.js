// Inspector: list the streams of a kind (GET /streams?kind=…), open one,
// read its events page by page (GET /streams/{s}/events?from=…&limit=…),
// its state at any version (GET /streams/{s}?at=N) and follow it live
// (subscribe).
import { $, el, api, connect, problem, showError, timeOf } from './common.js';

const client = connect();

let listAfter = '';
let stream = '';
let sub = null;
let latest = 0;
let pageFrom = 0; // the events page shows versions after pageFrom
let pageEnd = 0; // the last version shown
let atSupported = null; // null: not known yet

const enc = encodeURIComponent;

// ---- the list of streams
async function list(more) {
  const kind = $('#kind').value;
  if (!more) { listAfter = ''; $('#streams').replaceChildren(); }
  $('#list-message').textContent = 'Loading…';
  let r;
  try {
    r = await api(`/streams?kind=${enc(kind)}&after=${enc(listAfter)}&limit=50`);
  } catch (err) {
    $('#list-message').textContent = problem(err);
    return;
  }
  if (r.status === 404 || r.status === 405 || !r.body || !Array.isArray(r.body.streams)) {
    $('#list-message').textContent = r.status === 200 || r.status === 404 || r.status === 405
      ? 'This server cannot list streams (GET /streams is not available): type a stream id below.'
      : problem(r);
    $('#more').hidden = true;
    return;
  }
  if (r.status !== 200) { $('#list-message').textContent = problem(r); return; }
  for (const s of r.body.streams) {
    $('#streams').append(el('li', {}, el('a', { href: '#' + enc(s.stream), dataset: { stream: s.stream } }, s.stream), ` (version ${s.version})`));
  }
  listAfter = r.body.next || '';
  $('#more').hidden = !r.body.next;
  $('#list-message').textContent = $('#streams').children.length ? '' : `No ${kind} streams yet.`;
}
$('#list').addEventListener('submit', (e) => { e.preventDefault(); list(false); });
$('#more').addEventListener('click', () => list(true));
$('#streams').addEventListener('click', (e) => {
  const a = e.target.closest('a[data-stream]');
  if (!a) return;
  e.preventDefault();
  $('#stream').value = a.dataset.stream;
  open(a.dataset.stream);
});

// ---- one stream
function limit() {
  const n = Number($('#limit').value);
  return Number.isInteger(n) && n >= 1 && n <= 500 ? n : 20;
}

async function loadPage(from) {
  const r = await api(`/streams/${enc(stream)}/events?from=${from}&limit=${limit()}`);
  if (r.status !== 200) { showError(problem(r)); return; }
  pageFrom = from;
  $('#events').replaceChildren();
  pageEnd = from;
  for (const ev of r.body.events) appendEvent(ev);
  updatePaging();
}

function appendEvent(ev) {
  pageEnd = ev.version;
  $('#events').append(el('tr', { dataset: { version: ev.version } },
    el('td', { class: 'num' }, String(ev.version)),
    el('td', {}, ev.type),
    el('td', {}, el('time', { datetime: ev.time }, timeOf(ev.time))),
    el('td', {}, el('code', {}, JSON.stringify(ev.data)))));
}

function updatePaging() {
  $('#prev').disabled = pageFrom === 0;
  $('#first').disabled = pageFrom === 0;
  $('#next').disabled = pageEnd >= latest;
  $('#page-label').textContent = pageEnd > pageFrom ? `Versions ${pageFrom + 1}–${pageEnd} of ${latest}` : 'No events on this page.';
}

function setLatest(v) {
  latest = v;
  $('#latest').textContent = String(v);
  for (const id of ['#at', '#at-number']) { $(id).max = String(Math.max(1, v)); }
}

async function showState(at) {
  at = Math.max(1, Math.min(at, latest));
  $('#at').value = String(at);
  $('#at-number').value = String(at);
  $('#at-label').textContent = String(at);
  const path = `/streams/${enc(stream)}` + (at < latest || atSupported ? `?at=${at}` : '');
  const r = await api(path);
  if (r.status !== 200) {
    $('#at-message').textContent = problem(r);
    return;
  }
  if (at < latest && r.body && r.body.version !== at) {
    // The server ignored ?at=: it serves only the current state.
    atSupported = false;
    $('#at-message').textContent = `This server does not show earlier versions (GET /streams/{stream}?at=N): this is the state at version ${r.body.version}, the latest.`;
  } else {
    if (at < latest) atSupported = true;
    $('#at-message').textContent = '';
  }
  $('#state').textContent = JSON.stringify(r.body, null, 2);
}

async function open(s) {
  showError('');
  sub?.unsubscribe();
  stream = s;
  location.hash = enc(s);
  $('#current').textContent = s;
  $('#view').hidden = false;
  const r = await api(`/streams/${enc(s)}`);
  if (r.status === 404) {
    setLatest(0);
    $('#state').textContent = '';
    $('#at-message').textContent = 'No events yet: waiting for the first.';
  } else if (r.status !== 200) {
    showError(problem(r));
    return;
  } else {
    setLatest(r.body.version);
    $('#state').textContent = JSON.stringify(r.body, null, 2);
    $('#at-message').textContent = '';
  }
  $('#at').value = $('#at-number').value = String(latest);
  $('#at-label').textContent = String(latest);
  await loadPage(0);
  // Live: new events move the latest version (and the state when
  // following it) and extend the last page.
  const opened = s;
  sub = client.subscribe(s, {
    from: latest,
    onEvent(ev) {
      if (stream !== opened) return;
      setLatest(Math.max(latest, ev.version));
      if (pageEnd === ev.version - 1 && $('#events').children.length < limit()) appendEvent(ev);
      updatePaging();
      if ($('#follow').checked) showState(latest);
    },
  });
  sub.ready.catch((err) => showError(problem(err)));
}

$('#open').addEventListener('submit', (e) => { e.preventDefault(); open($('#stream').value.trim()); });
$('#first').addEventListener('click', () => loadPage(0));
$('#prev').addEventListener('click', () => loadPage(Math.max(0, pageFrom - limit())));
$('#next').addEventListener('click', () => loadPage(pageEnd));
$('#limit').addEventListener('change', () => loadPage(pageFrom));
$('#at').addEventListener('input', () => { $('#follow').checked = false; showState(Number($('#at').value)); });
$('#at-number').addEventListener('change', () => {
  const n = Number($('#at-number').value);
  if (!Number.isInteger(n) || n < 1) { $('#at-message').textContent = 'A version is a whole number from 1.'; return; }
  $('#follow').checked = Number(n) >= latest;
  showState(n);
});
$('#follow').addEventListener('change', () => { if ($('#follow').checked) showState(latest); });

list(false);
if (location.hash.length > 1) {
  const s = decodeURIComponent(location.hash.slice(1));
  $('#stream').value = s;
  open(s);
}

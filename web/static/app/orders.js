// Orders: place an order (PlaceOrder on a fresh order:ID), follow it
// (subscribe from 0; after each event the order's state, GET
// /streams/order:ID, gives its steps, errors and attempts), and the
// kitchen's open tickets (subscribe to kitchen:main from 0).
import { $, el, api, connect, problem, showError, randomID, timeOf } from './common.js';

const client = connect();

// The stages an order goes through, as the page shows them.
const STAGES = [
  ['placed', 'placed'],
  ['kitchen', 'in the kitchen'],
  ['cooking', 'cooking'],
  ['ready', 'ready'],
  ['receipt', 'receipt'],
];

let itemCount = 0;
function addItemRow(name = '', qty = 1) {
  const n = ++itemCount;
  const row = el('div', { class: 'row item' },
    el('label', { class: 'grow' }, `Item ${n}`, el('input', { name: 'item', required: true, maxlength: 64, value: name })),
    el('label', {}, 'Quantity', el('input', { name: 'qty', type: 'number', min: 1, max: 99, step: 1, required: true, value: qty, inputmode: 'numeric' })),
    el('button', { type: 'button', class: 'secondary', 'aria-label': `remove item ${n}`, onclick: () => { if ($('#items').querySelectorAll('.item').length > 1) row.remove(); } }, 'Remove'));
  $('#items').append(row);
  return row;
}
addItemRow('pizza', 1);
$('#add-item').addEventListener('click', () => addItemRow().querySelector('input').focus());

// stageStates turns an order's state into each stage's state: done,
// active, failed, skipped or pending.
function stageStates(st) {
  const s = st.steps || {};
  const out = {};
  out.placed = st.status ? 'done' : 'active';
  out.kitchen = s.kitchen === 'done' ? 'done' : s.kitchen === 'failed' ? 'failed' : s.kitchen === 'skipped' ? 'skipped' : st.status === 'placed' ? 'active' : 'pending';
  out.cooking = s.cook === 'done' ? 'done' : s.cook === 'failed' ? 'failed' : s.cook === 'skipped' ? 'skipped' : s.kitchen === 'done' ? 'active' : 'pending';
  out.ready = st.status === 'ready' ? 'done' : st.status === 'cancelled' ? 'skipped' : 'pending';
  out.receipt = s.receipt === 'done' ? 'done' : s.receipt === 'failed' ? 'failed' : s.receipt === 'skipped' ? 'skipped' : st.status === 'ready' ? 'active' : 'pending';
  return out;
}

function renderOrder(card, st) {
  const states = stageStates(st);
  card.querySelector('.steps').replaceChildren(...STAGES.map(([key, label]) =>
    el('li', { dataset: { stage: key, state: states[key] } }, `${label}: ${states[key]}`)));
  card.querySelector('.status').textContent = st.status || '…';
  card.dataset.status = st.status || '';
  const problems = [];
  for (const [step, a] of Object.entries(st.attempts || {})) {
    problems.push(el('li', { dataset: { attempts: step } }, `${step}: ${a.count} failed attempt${a.count === 1 ? '' : 's'}, retried; last error: ${a.last_error}`));
  }
  for (const [step, err] of Object.entries(st.errors || {})) {
    problems.push(el('li', { class: 'error', dataset: { failed: step } }, `${step} failed: ${err}`));
  }
  card.querySelector('.problems').replaceChildren(...problems);
  const canCancel = st.status === 'placed' || st.status === 'in_kitchen';
  card.querySelector('.cancel').disabled = !canCancel;
}

function followOrder(stream, items) {
  $('#no-orders').hidden = true;
  const log = el('ol', { class: 'plain muted log' });
  const card = el('article', { class: 'panel order', dataset: { stream } },
    el('h3', {}, stream, ' · ', el('span', { class: 'status' }, '…')),
    el('p', {}, items.map((i) => `${i.qty} × ${i.name}`).join(', ')),
    el('ul', { class: 'steps', 'aria-label': 'progress' }),
    el('ul', { class: 'problems plain' }),
    el('details', {}, el('summary', {}, 'Events'), log),
    el('button', { type: 'button', class: 'secondary cancel', onclick: async () => {
      try { await client.command(stream, 'CancelOrder', {}); } catch (err) { showError(problem(err)); }
    } }, 'Cancel order'));
  $('#orders').prepend(card);
  renderOrder(card, {});
  let reading = Promise.resolve();
  const refresh = () => {
    reading = reading.then(async () => {
      const r = await api('/streams/' + encodeURIComponent(stream));
      if (r.status === 200) renderOrder(card, r.body);
    }).catch(() => {});
  };
  client.subscribe(stream, {
    from: 0,
    onEvent(ev) {
      log.append(el('li', {}, `v${ev.version} ${timeOf(ev.time)} ${ev.type}${ev.data && ev.data.step ? ' (' + ev.data.step + ')' : ''}${ev.data && ev.data.error ? ': ' + ev.data.error : ''}`));
      refresh();
    },
  });
}

$('#place').addEventListener('submit', async (e) => {
  e.preventDefault();
  showError('');
  const items = [...$('#items').querySelectorAll('.item')].map((row) => ({
    name: row.querySelector('[name=item]').value.trim(),
    qty: Number(row.querySelector('[name=qty]').value),
  }));
  const data = { items };
  const email = $('#email').value.trim();
  if (email) data.email = email;
  const stream = 'order:' + randomID();
  const button = $('#place-button');
  button.disabled = true;
  try {
    await client.command(stream, 'PlaceOrder', data);
    followOrder(stream, items);
  } catch (err) {
    showError(problem(err));
  } finally {
    button.disabled = false;
  }
});

// The kitchen board: open tickets, in the order they were added.
const tickets = new Map();
function renderTickets() {
  $('#tickets').replaceChildren(...[...tickets.entries()].map(([order, items]) =>
    el('li', { dataset: { order } }, el('strong', {}, order), ': ', items.map((i) => `${i.qty} × ${i.name}`).join(', '))));
  $('#no-tickets').hidden = tickets.size > 0;
}
client.subscribe('kitchen:main', {
  from: 0,
  onEvent(ev) {
    if (ev.type === 'TicketAdded') tickets.set(ev.data.order, ev.data.items);
    if (ev.type === 'TicketClosed') tickets.delete(ev.data.order);
    renderTickets();
  },
}).ready.catch((err) => showError('kitchen: ' + problem(err)));
renderTickets();

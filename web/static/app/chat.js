// Chat: join a room under a name, read its history (subscribe from 0),
// then live messages and who is here (presence); send with PostMessage.
import { $, el, connect, problem, showError, timeOf } from './common.js';

const client = connect();
let sub = null;
let room = '';
let name = '';

const params = new URLSearchParams(location.search);
if (params.get('room')) $('#room').value = params.get('room');
if (params.get('name')) $('#name').value = params.get('name');
else {
  try { $('#name').value = sessionStorage.getItem('engine.chat.name') || ''; } catch { /* no storage */ }
}

function setJoined(on) {
  $('#text').disabled = !on;
  $('#send-button').disabled = !on;
  $('#leave').disabled = !on;
  $('#room-name').textContent = on ? `in ${room}` : '';
}

function addMessage(ev) {
  const d = ev.data || {};
  $('#messages').append(el('li', { dataset: { version: ev.version } },
    el('span', { class: 'who' }, d.user), ': ', d.text,
    el('time', { class: 'when', datetime: ev.time }, timeOf(ev.time))));
  const list = $('#messages');
  list.scrollTop = list.scrollHeight;
}

function showMembers(members) {
  $('#members').replaceChildren(...members.map((m) => el('li', {}, m, m === name ? ' (you)' : '')));
}

function leave() {
  sub?.unsubscribe();
  sub = null;
  setJoined(false);
  $('#members').replaceChildren();
}

$('#join').addEventListener('submit', async (e) => {
  e.preventDefault();
  showError('');
  leave();
  name = $('#name').value.trim();
  room = $('#room').value.trim();
  try { sessionStorage.setItem('engine.chat.name', name); } catch { /* no storage */ }
  history.replaceState(null, '', `?room=${encodeURIComponent(room)}&name=${encodeURIComponent(name)}`);
  $('#messages').replaceChildren();
  const s = client.subscribe('room:' + room, {
    from: 0,
    member: name,
    onEvent(ev) { if (ev.type === 'MessagePosted') addMessage(ev); },
    onPresence: showMembers,
  });
  sub = s;
  try {
    await s.ready;
    if (sub === s) { setJoined(true); $('#text').focus(); }
  } catch (err) {
    if (sub === s) { sub = null; showError(problem(err)); }
  }
});

$('#leave').addEventListener('click', () => { leave(); $('#join-button').focus(); });

$('#send').addEventListener('submit', async (e) => {
  e.preventDefault();
  const input = $('#text');
  const text = input.value;
  if (!text.trim() || !sub) return;
  $('#send-button').disabled = true;
  try {
    await client.command('room:' + room, 'PostMessage', { user: name, text });
    input.value = '';
    showError('');
  } catch (err) {
    showError(problem(err));
  } finally {
    $('#send-button').disabled = !sub;
    input.focus();
  }
});
if (params.get('room') && params.get('name')) $('#join').requestSubmit();

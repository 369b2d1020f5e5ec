// Scores: watch a game (subscribe with its state, then fold the live
// ScoreUpdated and GameEnded), update it with UpdateScore and EndGame.
import { $, el, connect, problem, showError } from './common.js';

const client = connect();
let sub = null;
let game = '';
let scores = new Map();
let ended = false;

const params = new URLSearchParams(location.search);
if (params.get('game')) $('#game').value = params.get('game');

function render() {
  const rows = [...scores.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  $('#scores').replaceChildren(...rows.map(([team, score]) => el('tr', { dataset: { team } },
    el('th', { scope: 'row' }, team),
    el('td', { class: 'num' }, String(score)),
    el('td', {}, el('button', {
      type: 'button', class: 'secondary', disabled: ended, 'aria-label': `add 1 to ${team}`,
      onclick: () => update(team, (scores.get(team) ?? 0) + 1),
    }, '+1')))));
  $('#empty').hidden = rows.length > 0;
  $('#ended').textContent = ended ? '(ended)' : '';
  $('#set').disabled = !sub || ended;
  $('#end').disabled = !sub || ended;
}

async function update(team, score) {
  showError('');
  try {
    await client.command('game:' + game, 'UpdateScore', { team, score });
  } catch (err) {
    showError(problem(err));
  }
}

$('#watch').addEventListener('submit', async (e) => {
  e.preventDefault();
  showError('');
  sub?.unsubscribe();
  game = $('#game').value.trim();
  history.replaceState(null, '', `?game=${encodeURIComponent(game)}`);
  scores = new Map();
  ended = false;
  $('#game-name').textContent = game;
  const s = client.subscribe('game:' + game, {
    // The subscribed reply carries the game as it stands; live events
    // follow from there, none missed, none twice.
    state: true,
    onState(state) {
      scores = new Map(Object.entries(state?.scores ?? {}));
      ended = Boolean(state?.ended);
      render();
    },
    onEvent(ev) {
      if (ev.type === 'ScoreUpdated') scores.set(ev.data.team, ev.data.score);
      if (ev.type === 'GameEnded') ended = true;
      render();
    },
  });
  sub = s;
  render();
  try {
    await s.ready;
    render();
  } catch (err) {
    if (sub === s) { sub = null; showError(problem(err)); render(); }
  }
});

$('#update').addEventListener('submit', (e) => {
  e.preventDefault();
  const team = $('#team').value.trim();
  const score = Number($('#score').value);
  if (!team || !Number.isInteger(score) || score < 0) {
    showError('A team and a whole score of 0 or more, please.');
    return;
  }
  update(team, score);
});

$('#end').addEventListener('click', async () => {
  showError('');
  try {
    await client.command('game:' + game, 'EndGame', {});
  } catch (err) {
    showError(problem(err));
  }
});

render();
if (params.get('game')) $('#watch').requestSubmit();

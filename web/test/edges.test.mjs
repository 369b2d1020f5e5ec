// The client's edge cases against a scripted server (fakews.mjs): gaps,
// duplicates, what each subscribe carries, lost replies, silence.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';

import { Client, backoffDelay } from '../client.js';
import { fakeServer } from './fakews.mjs';
import { waitFor } from './engine.mjs';

const cleanups = [];
after(() => {
  for (const f of cleanups.splice(0)) f();
});

async function setup(opts = {}) {
  const srv = await fakeServer();
  const statuses = [];
  const c = new Client(srv.url, {
    backoff: { min: 5, max: 20 },
    onError: () => {},
    ...opts,
    onStatus: (s) => statuses.push(s),
  });
  c.statuses = statuses;
  cleanups.push(() => c.close(), () => srv.close());
  const connected = c.connect();
  await waitFor(() => srv.conns.length === 1, 'the first connection');
  await connected;
  return { srv, c, conn: srv.conns[0] };
}

const isOp = (op, stream) => (f) => f.op === op && (stream === undefined || f.stream === stream);

function ev(stream, version, text = `v${version}`) {
  return { op: 'event', stream, version, position: version, id: `e${version}`, type: 'MessagePosted', time: '2026-01-01T00:00:00.000Z', data: { user: 'ann', text } };
}

test('duplicates are dropped; a gap re-subscribes from the last version with the epoch', async () => {
  const { c, conn } = await setup();
  const got = [];
  const sub = c.subscribe('room:a', { from: 0, state: true, onEvent: (e) => got.push(e.version) });
  const s1 = await conn.next(isOp('subscribe'));
  assert.equal(s1.from, 0);
  assert.equal(s1.state, true, 'the first subscribe asks for state');
  conn.send({ op: 'subscribed', stream: 'room:a', version: 2, epoch: 'E1', ref: s1.ref });
  await sub.ready;
  conn.send(ev('room:a', 1));
  conn.send(ev('room:a', 2));
  conn.send(ev('room:a', 2)); // duplicate
  conn.send(ev('room:a', 1)); // duplicate
  conn.send(ev('room:a', 4)); // gap: 3 is missing
  const unsub = await conn.next(isOp('unsubscribe', 'room:a'));
  assert.equal(unsub.ref, undefined);
  const s2 = await conn.next(isOp('subscribe'));
  assert.equal(s2.from, 2);
  assert.equal(s2.epoch, 'E1');
  assert.equal(s2.state, undefined, 'a resume does not ask for state');
  conn.send(ev('room:a', 5)); // still the gap: no second re-subscribe
  conn.send({ op: 'subscribed', stream: 'room:a', version: 4, epoch: 'E1', ref: s2.ref });
  conn.send(ev('room:a', 3));
  conn.send(ev('room:a', 4));
  await waitFor(() => got.length === 4, 'four events');
  assert.deepEqual(got, [1, 2, 3, 4]);
  assert.equal(sub.version, 4);
  assert.equal(conn.frames.filter(isOp('subscribe')).length, 2);
});

test('state: onState before events; resumes after a reconnect carry from and epoch, no state', async () => {
  const { srv, c, conn } = await setup();
  const log = [];
  const sub = c.subscribe('room:b', {
    state: true,
    member: 'ann',
    onState: (s, v) => log.push(['state', s, v]),
    onEvent: (e) => log.push(['event', e.version]),
  });
  const s1 = await conn.next(isOp('subscribe'));
  assert.deepEqual({ ...s1, ref: undefined }, { op: 'subscribe', stream: 'room:b', user: 'ann', state: true, ref: undefined });
  conn.send({ op: 'subscribed', stream: 'room:b', version: 7, epoch: 'E1', ref: s1.ref, state: { stream: 'room:b', version: 7, messages: [] } });
  conn.send(ev('room:b', 8));
  await waitFor(() => log.length === 2, 'state and an event');
  assert.deepEqual(log, [['state', { stream: 'room:b', version: 7, messages: [] }, 7], ['event', 8]]);
  assert.equal(sub.version, 8);

  conn.destroy();
  await waitFor(() => srv.conns.length === 2, 'a reconnect');
  const conn2 = srv.conns[1];
  const s2 = await conn2.next(isOp('subscribe'));
  assert.equal(s2.from, 8);
  assert.equal(s2.epoch, 'E1');
  assert.equal(s2.user, 'ann');
  assert.equal(s2.state, undefined);
  conn2.send({ op: 'subscribed', stream: 'room:b', version: 9, epoch: 'E1', ref: s2.ref });
  conn2.send(ev('room:b', 9));
  await waitFor(() => log.length === 3, 'the event after the reconnect');
  assert.deepEqual(log[2], ['event', 9]);
  assert.deepEqual(c.statuses, ['connecting', 'connected', 'reconnecting', 'connected']);

  // An epoch change: a live-only state subscription asks for the state again, without from.
  conn2.destroy();
  await waitFor(() => srv.conns.length === 3, 'another reconnect');
  const conn3 = srv.conns[2];
  const s3 = await conn3.next(isOp('subscribe'));
  assert.equal(s3.from, 9);
  conn3.send({ op: 'error', ref: s3.ref, code: 'epoch_changed', message: 'another store' });
  const s4 = await conn3.next(isOp('subscribe'));
  assert.equal(s4.from, undefined);
  assert.equal(s4.epoch, undefined);
  assert.equal(s4.state, true);
  conn3.send({ op: 'subscribed', stream: 'room:b', version: 1, epoch: 'E2', ref: s4.ref, state: { stream: 'room:b', version: 1 } });
  conn3.send(ev('room:b', 2));
  await waitFor(() => log.length === 5, 'the new state and event');
  assert.deepEqual(log.slice(3), [['state', { stream: 'room:b', version: 1 }, 1], ['event', 2]]);
  assert.equal(sub.epoch, 'E2');
});

test('a lost reply: a command without id rejects with disconnected, one with id is sent again', async () => {
  const { srv, c, conn } = await setup();
  const plain = c.command('room:c', 'PostMessage', { user: 'ann', text: 'a' });
  const keyed = c.command('room:c', 'PostMessage', { user: 'ann', text: 'b' }, { id: 'k-1' });
  const f1 = await conn.next((f) => f.op === 'command' && f.id === 'k-1');
  await conn.next((f) => f.op === 'command' && f.id === undefined);
  conn.destroy();
  await assert.rejects(plain, { code: 'disconnected' });
  await waitFor(() => srv.conns.length === 2, 'a reconnect');
  const f2 = await srv.conns[1].next(isOp('command'));
  assert.equal(f2.id, 'k-1');
  assert.deepEqual(f2.data, f1.data);
  srv.conns[1].send({ op: 'ack', stream: 'room:c', version: 3, ref: f2.ref });
  assert.deepEqual(await keyed, { stream: 'room:c', version: 3 });
  assert.equal(srv.conns[1].frames.filter(isOp('command')).length, 1, 'the command without id is not sent again');
});

test('a re-subscribe refused for good ends the subscription with onError', async () => {
  const { srv, c, conn } = await setup();
  let refused;
  const sub = c.subscribe('room:d', { from: 0, onError: (e) => { refused = e; } });
  const s1 = await conn.next(isOp('subscribe'));
  conn.send({ op: 'subscribed', stream: 'room:d', version: 0, epoch: 'E', ref: s1.ref });
  await sub.ready;
  conn.destroy();
  await waitFor(() => srv.conns.length === 2, 'a reconnect');
  const s2 = await srv.conns[1].next(isOp('subscribe'));
  srv.conns[1].send({ op: 'error', ref: s2.ref, code: 'forbidden', message: 'no' });
  await waitFor(() => sub.closed, 'the subscription ends');
  assert.equal(refused.code, 'forbidden');
  assert.equal(sub.error.code, 'forbidden');
  // The stream can be subscribed to again.
  c.subscribe('room:d', {});
});

test('keep-alive: a server that answers nothing is dropped and the client reconnects', async () => {
  const { srv, c, conn } = await setup({ keepAlive: 50 });
  await conn.next(isOp('ping'));
  await waitFor(() => srv.conns.length === 2, 'a reconnect after the silence');
  assert.ok(c.statuses.includes('reconnecting'));
  // A server that answers keeps the connection.
  const conn2 = srv.conns[1];
  for (let i = 0; i < 4; i++) {
    const p = await conn2.next(isOp('ping'));
    conn2.send({ op: 'pong', ref: p.ref });
  }
  assert.equal(srv.conns.length, 2);
});

test('the token goes in the query, asked for again on every attempt', async () => {
  let n = 0;
  const { srv, conn } = await setup({ token: async () => `tok ${++n}` });
  assert.match(conn.url, /[?&]token=tok%201$/);
  conn.destroy();
  await waitFor(() => srv.conns.length === 2, 'a reconnect');
  assert.match(srv.conns[1].url, /[?&]token=tok%202$/);
});

test('backoffDelay: full jitter under min·2ⁿ, capped at max', () => {
  assert.equal(backoffDelay(0, 100, 5000, () => 0), 0);
  assert.equal(backoffDelay(0, 100, 5000, () => 0.5), 50);
  assert.equal(backoffDelay(3, 100, 5000, () => 0.5), 400);
  assert.equal(backoffDelay(10, 100, 5000, () => 0.5), 2500);
  assert.equal(backoffDelay(2000, 100, 5000, () => 0.999), 4995);
  for (let n = 0; n < 20; n++) {
    const d = backoffDelay(n, 100, 5000);
    assert.ok(d >= 0 && d < Math.min(5000, 100 * 2 ** n));
  }
});

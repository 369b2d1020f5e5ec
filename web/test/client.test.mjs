// The JS client against a real engine process.
// Run from the repo root: node --experimental-websocket --test web/test/
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { Client, EngineError } from '../client.js';
import {
  buildEngine, cleanupTmp, deferred, freePort, killAll, startEngine, tmpDir, uniqueStream, waitFor,
} from './engine.mjs';

const clients = [];

function newClient(url, opts = {}) {
  const statuses = [];
  const c = new Client(url, {
    WebSocket: globalThis.WebSocket,
    backoff: { min: 20, max: 200 },
    onError: () => {},
    ...opts,
    onStatus: (s) => {
      statuses.push(s);
      if (opts.onStatus) opts.onStatus(s);
    },
  });
  c.statuses = statuses;
  clients.push(c);
  return c;
}

/** Subscribes and records everything the subscription reports. */
function record(client, stream, opts = {}) {
  const rec = { events: [], presence: [], states: [], epochChanges: [], order: [] };
  rec.sub = client.subscribe(stream, {
    ...opts,
    onEvent(ev) {
      rec.events.push(ev);
      rec.order.push(`event:${ev.version}`);
    },
    onPresence(m) {
      rec.presence.push(m);
    },
    onState(s, v) {
      rec.states.push({ state: s, version: v });
      rec.order.push(`state:${v}`);
    },
    onEpochChange(info) {
      rec.epochChanges.push(info);
      rec.order.push('epoch');
    },
  });
  return rec;
}

function texts(rec) {
  return rec.events.map((e) => e.data.text);
}

function assertConsecutive(rec, from = 1) {
  rec.events.forEach((e, i) => assert.equal(e.version, from + i, `event ${i} has version ${e.version}`));
}

before(async () => {
  await buildEngine();
});

after(async () => {
  for (const c of clients) c.close();
  await killAll();
  cleanupTmp();
});

describe('against one engine', () => {
  let engine;
  before(async () => {
    engine = await startEngine();
  });

  test('connect and a command is acknowledged', async () => {
    const c = newClient(engine.ws);
    await c.connect();
    assert.equal(c.status, 'connected');
    assert.deepEqual(c.statuses, ['connecting', 'connected']);
    const stream = uniqueStream();
    const ack = await c.command(stream, 'PostMessage', { user: 'ann', text: 'hi' });
    assert.equal(ack.stream, stream);
    assert.equal(ack.version, 1);
    const ack2 = await c.command(stream, 'PostMessage', { user: 'ann', text: 'again' });
    assert.equal(ack2.version, 2);
    assert.ok((await c.ping()) >= 0);
    c.close();
    assert.equal(c.status, 'closed');
    await assert.rejects(c.command(stream, 'PostMessage', { user: 'ann', text: 'x' }), { code: 'closed' });
  });

  test('subscribe from 0 gets every event in order, then live ones', async () => {
    const c = newClient(engine.ws);
    await c.connect();
    const stream = uniqueStream();
    for (let i = 1; i <= 20; i++) await c.command(stream, 'PostMessage', { user: 'ann', text: `m${i}` });
    const rec = record(c, stream, { from: 0 });
    await rec.sub.ready;
    assert.equal(rec.sub.subscribedAt, 20);
    await Promise.all(Array.from({ length: 10 }, (_, i) => c.command(stream, 'PostMessage', { user: 'ann', text: `live${i}` })));
    await waitFor(() => rec.events.length >= 30, '30 events');
    assertConsecutive(rec);
    assert.deepEqual(texts(rec).slice(0, 20), Array.from({ length: 20 }, (_, i) => `m${i + 1}`));
    assert.equal(rec.sub.version, 30);
    for (const e of rec.events) {
      assert.equal(e.stream, stream);
      assert.equal(e.type, 'MessagePosted');
      assert.equal(e.op, undefined);
      assert.ok(e.id && e.time && e.position > 0);
    }
  });

  test('without from only live events follow', async () => {
    const c = newClient(engine.ws);
    await c.connect();
    const stream = uniqueStream();
    await c.command(stream, 'PostMessage', { user: 'ann', text: 'old' });
    const rec = record(c, stream);
    await rec.sub.ready;
    assert.equal(rec.sub.version, 1);
    await c.command(stream, 'PostMessage', { user: 'ann', text: 'new' });
    await waitFor(() => rec.events.length === 1, 'the live event');
    assert.deepEqual(texts(rec), ['new']);
    assert.equal(rec.events[0].version, 2);
  });

  test('two clients see each other\'s messages', async () => {
    const a = newClient(engine.ws);
    const b = newClient(engine.ws);
    await Promise.all([a.connect(), b.connect()]);
    const stream = uniqueStream();
    const ra = record(a, stream, { from: 0 });
    const rb = record(b, stream, { from: 0 });
    await Promise.all([ra.sub.ready, rb.sub.ready]);
    for (let i = 0; i < 5; i++) {
      await a.command(stream, 'PostMessage', { user: 'ann', text: `a${i}` });
      await b.command(stream, 'PostMessage', { user: 'bob', text: `b${i}` });
    }
    await waitFor(() => ra.events.length === 10 && rb.events.length === 10, 'ten events on both');
    assert.deepEqual(texts(ra), texts(rb));
    assert.deepEqual(texts(ra), ['a0', 'b0', 'a1', 'b1', 'a2', 'b2', 'a3', 'b3', 'a4', 'b4']);
    assertConsecutive(ra);
    assertConsecutive(rb);
  });

  test('presence lists the members by name', async () => {
    const a = newClient(engine.ws);
    const b = newClient(engine.ws);
    await Promise.all([a.connect(), b.connect()]);
    const stream = uniqueStream();
    const ra = record(a, stream, { member: 'ann' });
    await ra.sub.ready;
    await waitFor(() => ra.presence.some((m) => sameSet(m, ['ann'])), 'ann alone in presence');
    const rb = record(b, stream, { member: 'bob' });
    await rb.sub.ready;
    await waitFor(() => ra.presence.some((m) => sameSet(m, ['ann', 'bob'])), 'ann sees bob join');
    await waitFor(() => rb.presence.some((m) => sameSet(m, ['ann', 'bob'])), 'bob sees both');
    rb.sub.unsubscribe();
    await waitFor(() => sameSet(ra.presence.at(-1), ['ann']), 'ann sees bob leave');
  });

  test('unsubscribe stops the events', async () => {
    const c = newClient(engine.ws);
    await c.connect();
    const stream = uniqueStream();
    const rec = record(c, stream, { from: 0 });
    await rec.sub.ready;
    await c.command(stream, 'PostMessage', { user: 'ann', text: 'one' });
    await waitFor(() => rec.events.length === 1, 'the first event');
    rec.sub.unsubscribe();
    assert.equal(rec.sub.closed, true);
    await c.command(stream, 'PostMessage', { user: 'ann', text: 'two' });
    // A second subscription on the same client sees the event; the first did not.
    const again = record(c, stream, { from: 1 });
    await waitFor(() => again.events.length === 1, 'the event on a new subscription');
    assert.deepEqual(texts(rec), ['one']);
    assert.throws(() => c.subscribe(stream, {}), { code: 'already_subscribed' });
  });

  test('error codes: refusals reject with the protocol code', async () => {
    const c = newClient(engine.ws);
    await c.connect();
    await assert.rejects(c.command('nope:x', 'PostMessage', { user: 'ann', text: 'hi' }), (e) => {
      assert.ok(e instanceof EngineError);
      assert.equal(e.code, 'bad_request');
      return true;
    });
    await assert.rejects(c.command(uniqueStream(), 'PostMessage', { user: 'ann', text: '' }), { code: 'bad_request' });
    await assert.rejects(c.command(uniqueStream(), 'NoSuchCommand', {}), { code: 'bad_request' });
    const game = uniqueStream('game');
    await c.command(game, 'EndGame', {});
    await assert.rejects(c.command(game, 'UpdateScore', { team: 'home', score: 1 }), { code: 'conflict' });
    // The same id for another command.
    const room = uniqueStream();
    const first = await c.command(room, 'PostMessage', { user: 'ann', text: 'once' }, { id: 'k1' });
    const repeat = await c.command(room, 'PostMessage', { user: 'ann', text: 'once' }, { id: 'k1' });
    assert.equal(repeat.version, first.version);
    await assert.rejects(c.command(room, 'PostMessage', { user: 'ann', text: 'other' }, { id: 'k1' }), { code: 'idempotency_mismatch' });
    // A subscription the server refuses rejects its ready promise.
    let subErr;
    const sub = c.subscribe('nope:x', { onError: (e) => { subErr = e; } });
    await assert.rejects(sub.ready, { code: 'bad_request' });
    assert.equal(subErr.code, 'bad_request');
    assert.equal(sub.closed, true);
    // The connection is still usable.
    assert.equal((await c.command(room, 'PostMessage', { user: 'ann', text: 'still' })).version, 2);
  });

  test('state:true: onState comes with the subscribed reply, before any event', async (t) => {
    const stream = uniqueStream();
    if (!(await serverSendsState(engine.ws, stream))) {
      t.skip('this engine does not answer subscribe with state yet');
      return;
    }
    const c = newClient(engine.ws);
    await c.connect();
    for (let i = 1; i <= 3; i++) await c.command(stream, 'PostMessage', { user: 'ann', text: `s${i}` });
    const rec = record(c, stream, { state: true });
    await rec.sub.ready;
    assert.equal(rec.states.length, 1);
    const { state, version } = rec.states[0];
    assert.equal(version, 3);
    assert.equal(rec.sub.version, 3);
    assert.equal(state.stream, stream);
    assert.equal(state.version, 3);
    assert.deepEqual(state.messages.map((m) => m.text), ['s1', 's2', 's3']);
    await c.command(stream, 'PostMessage', { user: 'ann', text: 's4' });
    await waitFor(() => rec.events.length === 1, 'the live event');
    assert.deepEqual(rec.order, ['state:3', 'event:4']);

    // A stream without events: state null at version 0.
    const empty = record(c, uniqueStream(), { state: true });
    await empty.sub.ready;
    assert.deepEqual(empty.states, [{ state: null, version: 0 }]);
  });
});

describe('timeouts', () => {
  test('a command nobody answers rejects with timeout', async () => {
    const hole = await blackHole();
    try {
      const c = newClient(`ws://127.0.0.1:${hole.port}/ws`, { commandTimeout: 200, keepAlive: 0 });
      await c.connect();
      await assert.rejects(c.command('room:x', 'PostMessage', { user: 'ann', text: 'hi' }), { code: 'timeout' });
      await assert.rejects(c.command('room:x', 'PostMessage', {}, { timeout: 50 }), { code: 'timeout' });
      c.close();
    } finally {
      hole.close();
    }
  });

  test('a command while no server listens waits, then times out', async () => {
    const port = await freePort();
    const c = newClient(`ws://127.0.0.1:${port}/ws`, { commandTimeout: 300, offlineAfter: 2 });
    const connected = c.connect();
    connected.catch(() => {});
    await assert.rejects(c.command('room:x', 'PostMessage', { user: 'ann', text: 'hi' }), { code: 'timeout' });
    await waitFor(() => c.status === 'offline', 'offline after failed attempts');
    assert.equal(c.statuses[0], 'connecting');
    c.close();
    await assert.rejects(connected, { code: 'closed' });
  });

  test('maxAttempts gives up: connect rejects', async () => {
    const port = await freePort();
    const c = newClient(`ws://127.0.0.1:${port}/ws`, { maxAttempts: 3 });
    await assert.rejects(c.connect(), { code: 'unavailable' });
    assert.equal(c.status, 'closed');
  });
});

describe('restarts', () => {
  test('reconnect after the engine is killed: each event exactly once, in order; commands with id are re-sent', async () => {
    const port = await freePort();
    const addr = `127.0.0.1:${port}`;
    const data = tmpDir();
    let engine = await startEngine({ data, addr });
    const stream = uniqueStream();

    // The subscriber's reconnects wait for the gate: the test decides when.
    let gate = deferred();
    gate.resolve();
    const sub = newClient(engine.ws, { token: async () => { await gate.promise; return ''; } });
    const writer = newClient(engine.ws, { commandTimeout: 30000 });
    await Promise.all([sub.connect(), writer.connect()]);
    const rec = record(sub, stream, { from: 0 });
    await rec.sub.ready;
    const posted = [];
    const post = async (text) => {
      posted.push(text);
      return writer.command(stream, 'PostMessage', { user: 'ann', text }, { id: `id-${text}` });
    };
    for (let i = 1; i <= 5; i++) await post(`before${i}`);
    await waitFor(() => rec.events.length === 5, 'the first five events');
    const epoch = rec.sub.epoch;
    assert.ok(epoch, 'the subscribed reply carries an epoch');

    gate = deferred();
    await engine.kill();
    await waitFor(() => sub.status === 'reconnecting' && writer.status !== 'connected', 'both clients notice the loss');

    // Commands with an id, sent while the engine is down, wait for the next connection.
    const held = [post('down1'), post('down2')];
    engine = await startEngine({ data, addr });
    await Promise.all(held);
    // More events while the subscriber is still away, over HTTP.
    for (let i = 1; i <= 5; i++) {
      posted.push(`http${i}`);
      const r = await engine.command(stream, 'PostMessage', { user: 'bob', text: `http${i}` });
      assert.equal(r.status, 200);
    }
    assert.equal(sub.status, 'reconnecting');
    gate.resolve();
    await waitFor(() => sub.status === 'connected', 'the subscriber reconnects');
    for (let i = 1; i <= 3; i++) await post(`after${i}`);
    await waitFor(() => rec.events.length >= posted.length, `${posted.length} events`);
    assertConsecutive(rec);
    assert.equal(rec.events.length, posted.length);
    assert.deepEqual(texts(rec).slice(0, 5), posted.slice(0, 5));
    assert.deepEqual([...texts(rec)].sort(), [...posted].sort());
    assert.equal(rec.sub.version, posted.length);
    assert.equal(rec.sub.epoch, epoch);
    assert.deepEqual(rec.epochChanges, []);
    assert.deepEqual(sub.statuses, ['connecting', 'connected', 'reconnecting', 'connected']);
  });

  test('an engine on a new data dir: the resume gets epoch_changed, the subscription restarts from 0', async () => {
    const port = await freePort();
    const addr = `127.0.0.1:${port}`;
    let engine = await startEngine({ data: tmpDir(), addr });
    const stream = uniqueStream();
    let gate = deferred();
    gate.resolve();
    const c = newClient(engine.ws, { token: async () => { await gate.promise; return ''; } });
    await c.connect();
    const rec = record(c, stream, { from: 0 });
    await rec.sub.ready;
    for (let i = 1; i <= 3; i++) await c.command(stream, 'PostMessage', { user: 'ann', text: `old${i}` });
    await waitFor(() => rec.events.length === 3, 'three events of the old store');
    const oldEpoch = rec.sub.epoch;

    gate = deferred();
    await engine.kill();
    engine = await startEngine({ data: tmpDir(), addr });
    for (let i = 1; i <= 2; i++) {
      assert.equal((await engine.command(stream, 'PostMessage', { user: 'bob', text: `new${i}` })).status, 200);
    }
    gate.resolve();
    await waitFor(() => rec.events.length === 5, 'two events of the new store');
    assert.equal(rec.epochChanges.length, 1);
    const info = rec.epochChanges[0];
    assert.equal(info.stream, stream);
    assert.equal(info.oldEpoch, oldEpoch);
    assert.ok(info.newEpoch && info.newEpoch !== oldEpoch);
    assert.equal(info.lastVersion, 3);
    assert.deepEqual(rec.order, ['event:1', 'event:2', 'event:3', 'epoch', 'event:1', 'event:2']);
    assert.deepEqual(texts(rec), ['old1', 'old2', 'old3', 'new1', 'new2']);
    assert.equal(rec.sub.version, 2);
    assert.equal(rec.sub.epoch, info.newEpoch);
    // Live events continue under the new epoch.
    await c.command(stream, 'PostMessage', { user: 'ann', text: 'new3' });
    await waitFor(() => rec.events.length === 6, 'a live event after the change');
    assert.equal(rec.events[5].version, 3);
  });
});

function sameSet(a, b) {
  return Array.isArray(a) && a.length === b.length && [...a].sort().join('\n') === [...b].sort().join('\n');
}

/** Asks the engine directly whether a subscribe with state:true is answered with a state. */
async function serverSendsState(url, stream) {
  const ws = new WebSocket(url);
  try {
    await new Promise((res, rej) => {
      ws.onopen = res;
      ws.onerror = () => rej(new Error('probe: cannot connect'));
    });
    const reply = new Promise((res) => {
      ws.onmessage = (m) => {
        const f = JSON.parse(m.data);
        if (f.ref === 'probe') res(f);
      };
    });
    ws.send(JSON.stringify({ op: 'subscribe', stream, state: true, ref: 'probe' }));
    const f = await reply;
    if (f.op === 'subscribed' && !('state' in f)) return false;
    if (f.op === 'error' && f.code === 'bad_request') return false; // the field is unknown
    assert.equal(f.op, 'subscribed', `probe: ${JSON.stringify(f)}`);
    ws.send(JSON.stringify({ op: 'unsubscribe', stream }));
    return true;
  } finally {
    ws.close();
  }
}

/** A WebSocket server that accepts the upgrade and never answers a frame. */
async function blackHole() {
  const { createServer } = await import('node:http');
  const { createHash } = await import('node:crypto');
  const sockets = new Set();
  const server = createServer((_req, res) => res.writeHead(404).end());
  server.on('upgrade', (req, socket) => {
    sockets.add(socket);
    const accept = createHash('sha1')
      .update(req.headers['sec-websocket-key'] + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11')
      .digest('base64');
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
    socket.on('data', () => {});
    socket.on('error', () => {});
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: server.address().port,
    close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

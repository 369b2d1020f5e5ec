// Browser tests of the pages: headless Chromium against a real engine
// process. Each test saves a screenshot to docs/img/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  startEngine, startProxy, launch, haveChromium, screenshot, texts, waitTexts, post, unique, TIMEOUT, engineBinary,
} from './helpers.mjs';

if (!haveChromium()) {
  test('browser tests', (t) => t.skip('no Chromium at /usr/bin/chromium (apt-get install -y chromium)'));
} else {
  let engine;
  let browser;
  before(async () => {
    engine = await startEngine();
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
    await engine?.stop();
  });

  const badge = (page, status) => page.waitForSelector(`#status[data-status="${status}"]`);

  async function joinChat(url, room, name) {
    const page = await browser.context.newPage();
    await page.goto(`${url}/app/chat.html`);
    await page.fill('#name', name);
    await page.fill('#room', room);
    await page.click('#join-button');
    await page.waitForSelector('#text:not([disabled])');
    return page;
  }

  async function say(page, text) {
    await page.fill('#text', text);
    await page.press('#text', 'Enter');
    await page.waitForFunction(() => document.querySelector('#text').value === '');
  }

  const messages = (page) => texts(page, '#messages li .who').then(async (who) => {
    const all = await page.$$eval('#messages li', (els) => els.map((e) => e.childNodes[0].textContent + ': ' + e.childNodes[2].textContent));
    assert.equal(all.length, who.length);
    return all;
  });

  test('index links to the four pages and shows the connection', async () => {
    const page = await browser.context.newPage();
    await page.goto(engine.url + '/');
    await badge(page, 'connected');
    const links = await page.$$eval('main a', (as) => as.map((a) => a.getAttribute('href')));
    for (const p of ['/app/chat.html', '/app/scores.html', '/app/orders.html', '/app/inspector.html']) {
      assert.ok(links.includes(p), `index links to ${p}: ${links}`);
    }
    await screenshot(page, 'index');
    await page.close();
  });

  test('two pages in one room see each other and exchange messages', async () => {
    const room = unique('e2e');
    await post(engine.url, 'room:' + room, 'PostMessage', { user: 'carol', text: 'before anyone came' });
    const ann = await joinChat(engine.url, room, 'ann');
    const bob = await joinChat(engine.url, room, 'bob');
    for (const p of [ann, bob]) {
      await waitTexts(p, '#members li', (m) => m.length === 2 && m.some((x) => x.startsWith('ann')) && m.some((x) => x.startsWith('bob')), 'members');
      await badge(p, 'connected');
    }
    await say(ann, 'hello bob');
    await say(bob, 'hi ann');
    const want = ['carol: before anyone came', 'ann: hello bob', 'bob: hi ann'];
    for (const p of [ann, bob]) {
      await waitTexts(p, '#messages li', (m) => m.length === 3, 'messages');
      assert.deepEqual(await messages(p), want);
    }
    await screenshot(ann, 'chat');
    await ann.close();
    await waitTexts(bob, '#members li', (m) => m.length === 1 && m[0].startsWith('bob'), 'members after ann left');
    await bob.close();
  });

  test('a page that lost its connection gets what it missed exactly once, in order', async () => {
    // ann's page reaches the engine through a proxy that closes its
    // connection and refuses new ones for a while: to the browser, the
    // server went away. bob, connected directly, talks meanwhile.
    const proxy = await startProxy(engine.addr);
    try {
      const room = unique('resume');
      const ann = await joinChat(proxy.url, room, 'ann');
      const bob = await joinChat(engine.url, room, 'bob');
      await say(bob, 'one');
      await waitTexts(ann, '#messages li', (m) => m.length === 1, 'the first message');

      proxy.cut();
      await ann.waitForSelector('#status:not([data-status="connected"])');
      for (const text of ['two', 'three', 'four']) await say(bob, text);
      await waitTexts(bob, '#messages li', (m) => m.length === 4, 'bob sees his messages');
      assert.equal((await messages(ann)).length, 1, 'ann saw nothing while cut off');
      await screenshot(ann, 'reconnecting');

      proxy.restore();
      await badge(ann, 'connected');
      await waitTexts(ann, '#messages li', (m) => m.length >= 4, 'the missed messages');
      await say(bob, 'five');
      await waitTexts(ann, '#messages li', (m) => m.length >= 5, 'a live message after the resume');
      assert.deepEqual(await messages(ann), ['bob: one', 'bob: two', 'bob: three', 'bob: four', 'bob: five']);
      const versions = await ann.$$eval('#messages li', (els) => els.map((e) => Number(e.dataset.version)));
      assert.deepEqual(versions, [1, 2, 3, 4, 5]);
      await ann.close();
      await bob.close();
    } finally {
      await proxy.close();
    }
  });

  test('a second score board follows the first', async () => {
    const game = unique('final');
    const open = async () => {
      const p = await browser.context.newPage();
      await p.goto(`${engine.url}/app/scores.html?game=${game}`);
      await p.waitForSelector('#set:not([disabled])');
      return p;
    };
    const a = await open();
    const b = await open();
    // A background tab gets few animation frames, which clicks wait for.
    await a.bringToFront();
    await a.fill('#team', 'red');
    await a.fill('#score', '3');
    await a.click('#set');
    await a.fill('#team', 'blue');
    await a.fill('#score', '1');
    await a.press('#score', 'Enter');
    await waitTexts(b, '#scores tr', (r) => r.length === 2, 'two teams');
    assert.deepEqual(await texts(b, '#scores tr th'), ['red', 'blue']);
    for (const n of ['2', '3', '4']) {
      await a.click('#scores tr[data-team="blue"] button');
      await waitTexts(a, '#scores tr[data-team="blue"] td.num', (s) => s[0] === n, `blue has ${n}`);
    }
    const want = ['blue', '4'];
    await waitTexts(b, '#scores tr[data-team="blue"] td.num', (s) => s[0] === '4', 'blue has 4');
    await b.bringToFront();
    assert.deepEqual(await texts(b, '#scores tr:first-child > *:not(:last-child)'), want);
    await screenshot(b, 'scores');
    await a.close();
    await b.close();
  });

  test('an order goes to the kitchen, becomes ready and gets its receipt', async () => {
    const page = await browser.context.newPage();
    await page.goto(`${engine.url}/app/orders.html`);
    await badge(page, 'connected');
    await page.fill('#items .item:nth-child(2) input[name=item]', 'pizza');
    await page.click('#add-item');
    await page.fill('#items .item:nth-child(3) input[name=item]', 'lemonade');
    await page.fill('#items .item:nth-child(3) input[name=qty]', '2');
    await page.fill('#email', 'ann@example.com');
    await page.click('#place-button');
    const card = await page.waitForSelector('article.order');
    const stream = await card.getAttribute('data-stream');
    // The kitchen shows the ticket while it cooks (500 ms).
    await page.waitForSelector(`#tickets li[data-order="${stream}"]`);
    await page.waitForSelector('article.order[data-status="ready"]');
    await page.waitForSelector('article.order .steps li[data-stage="receipt"][data-state="done"]');
    const steps = await texts(page, 'article.order .steps li');
    assert.deepEqual(steps, ['placed: done', 'in the kitchen: done', 'cooking: done', 'ready: done', 'receipt: done']);
    await page.waitForSelector(`#tickets li[data-order="${stream}"]`, { state: 'detached' });
    await page.click('article.order summary');
    await screenshot(page, 'orders');
    await page.close();
  });

  test('the inspector shows a stream at an earlier version', async (t) => {
    const room = 'room:' + unique('inspect');
    for (const text of ['first', 'second', 'third']) await post(engine.url, room, 'PostMessage', { user: 'ann', text });
    const page = await browser.context.newPage();
    await page.goto(`${engine.url}/app/inspector.html#${encodeURIComponent(room)}`);
    await waitTexts(page, '#events tr', (r) => r.length === 3, 'three events');
    await page.waitForFunction(() => document.querySelector('#latest').textContent === '3');
    const r = await fetch(`${engine.url}/streams/${encodeURIComponent(room)}?at=1`);
    const body = await r.json();
    if (r.status !== 200 || body.version !== 1) {
      await screenshot(page, 'inspector');
      t.skip(`the server does not support GET /streams/{stream}?at=N (answered ${r.status}, version ${body.version})`);
      await page.close();
      return;
    }
    await page.fill('#at-number', '1');
    await page.press('#at-number', 'Enter');
    await page.waitForFunction(() => {
      try { return JSON.parse(document.querySelector('#state').textContent).version === 1; } catch { return false; }
    }, null, { timeout: TIMEOUT });
    const state = JSON.parse(await page.textContent('#state'));
    assert.deepEqual(state.messages.map((m) => m.text), ['first']);
    // The same as `engine replay` of the stream's events up to version 1.
    const page1 = await (await fetch(`${engine.url}/streams/${encodeURIComponent(room)}/events?from=0&limit=1`)).json();
    const log = path.join(mkdtempSync(path.join(tmpdir(), 'inspector-')), 'room.jsonl');
    writeFileSync(log, page1.events.map((e) => JSON.stringify(e)).join('\n') + '\n');
    const [replayed] = JSON.parse(execFileSync(engineBinary(), ['replay', log], { encoding: 'utf8' }));
    const { epoch: _epoch, ...shown } = state;
    assert.deepEqual(shown, replayed);
    await screenshot(page, 'inspector');
    await page.close();
  });
}

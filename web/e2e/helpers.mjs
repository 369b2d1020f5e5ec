// Helpers of the browser tests: the engine as a real process, a TCP proxy
// that can cut a page's connections from the server side, and headless
// Chromium through playwright-core (never a browser of its own download).
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
// ENGINE_SCREENSHOTS redirects the screenshots (CI: a temporary directory, so
// that a run leaves the checkout as it was); by default they go to docs/img.
export const imgDir = process.env.ENGINE_SCREENSHOTS || path.join(repo, 'docs/img');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const TIMEOUT = 20000;

let binary;
// engineBinary builds ./cmd/engine once per test process.
export function engineBinary() {
  if (!binary) {
    const dir = mkdtempSync(path.join(tmpdir(), 'engine-e2e-bin-'));
    binary = path.join(dir, 'engine');
    execFileSync('go', ['build', '-o', binary, './cmd/engine'], { cwd: repo, stdio: 'inherit' });
  }
  return binary;
}

// startEngine runs the engine on addr (default a free port) and data (a
// fresh directory by default) and resolves once it logs "engine
// listening": {url, addr, data, stop()}.
export function startEngine({ addr = '127.0.0.1:0', data } = {}) {
  data ??= mkdtempSync(path.join(tmpdir(), 'engine-e2e-data-'));
  const proc = spawn(engineBinary(), ['-addr', addr, '-data', data, '-cook-time', '500ms'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error('the engine did not start:\n' + log)); }, TIMEOUT);
    const onData = (chunk) => {
      log += chunk;
      const m = /msg="engine listening" addr=(\S+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        const exited = new Promise((r) => { if (proc.exitCode !== null) r(); else proc.once('exit', r); });
        resolve({
          addr: m[1],
          url: `http://${m[1]}`,
          data,
          log: () => log,
          async stop() {
            if (proc.exitCode === null) proc.kill('SIGTERM');
            await exited;
          },
        });
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`the engine exited (${code}):\n${log}`)); });
  });
}

// startProxy forwards 127.0.0.1:<port> to target ("host:port"). cut()
// closes every connection it carries and refuses new ones until
// restore(): to the browser, the server went away.
export function startProxy(target) {
  const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
  const sockets = new Set();
  let blocked = false;
  const server = net.createServer((client) => {
    if (blocked) { client.destroy(); return; }
    const upstream = net.connect(port, host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const a = server.address();
      resolve({
        url: `http://127.0.0.1:${a.port}`,
        cut() { blocked = true; for (const s of sockets) s.destroy(); },
        restore() { blocked = false; },
        close() { blocked = true; for (const s of sockets) s.destroy(); return new Promise((r) => server.close(r)); },
      });
    });
  });
}

// launch starts headless Chromium on a fresh profile: a context whose
// pages are 1000×700.
export async function launch() {
  const profile = mkdtempSync(path.join(tmpdir(), 'engine-e2e-profile-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1000, height: 700 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  context.setDefaultTimeout(TIMEOUT);
  return {
    context,
    async close() { await context.close(); rmSync(profile, { recursive: true, force: true }); },
  };
}

export function haveChromium() { return existsSync(CHROMIUM); }

// screenshot saves docs/img/<name>.png.
export async function screenshot(page, name) {
  mkdirSync(imgDir, { recursive: true });
  await page.screenshot({ path: path.join(imgDir, name + '.png') });
}

// texts are the trimmed texts of the elements selector matches.
export function texts(page, selector) {
  return page.$$eval(selector, (els) => els.map((e) => e.textContent.trim()));
}

// waitTexts waits until the texts of selector satisfy ok, and returns
// them; on the deadline it fails with what it saw.
export async function waitTexts(page, selector, ok, what) {
  const deadline = Date.now() + TIMEOUT;
  let got;
  for (;;) {
    got = await texts(page, selector);
    if (ok(got)) return got;
    if (Date.now() > deadline) throw new Error(`${what}: ${selector} shows ${JSON.stringify(got)}`);
    await page.waitForTimeout(50);
  }
}

export async function post(base, stream, type, data) {
  const r = await fetch(`${base}/streams/${encodeURIComponent(stream)}/commands`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ type, data }),
  });
  if (r.status !== 200) throw new Error(`POST ${stream} ${type}: ${r.status} ${await r.text()}`);
  return r.json();
}

export function unique(prefix) { return prefix + '-' + Math.random().toString(36).slice(2, 8); }

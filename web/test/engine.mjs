// Test helpers: the engine as a real process, and waiting on conditions.
import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

const tmpDirs = [];

/** A fresh temporary directory, removed by cleanupTmp. */
export function tmpDir(prefix = 'engine-js-') {
  const d = mkdtempSync(join(tmpdir(), prefix));
  tmpDirs.push(d);
  return d;
}

export function cleanupTmp() {
  for (const d of tmpDirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

let built;

/** Builds ./cmd/engine once per test process; resolves with the binary's path. */
export function buildEngine() {
  if (!built) {
    const bin = join(tmpDir('engine-bin-'), 'engine');
    built = new Promise((res, rej) => {
      execFile('go', ['build', '-o', bin, './cmd/engine'], { cwd: repoRoot, maxBuffer: 16 << 20 }, (err, _out, stderr) => {
        if (err) rej(new Error(`go build failed: ${err.message}\n${stderr}`));
        else res(bin);
      });
    });
  }
  return built;
}

const listenLine = /msg="engine listening" addr=(\S+)/;

/**
 * Starts the engine on addr (default 127.0.0.1:0) with its store in data and
 * resolves once it has printed its start-up line.
 */
export async function startEngine({ data, addr = '127.0.0.1:0', args = [] } = {}) {
  const bin = await buildEngine();
  const dir = data || tmpDir();
  const child = spawn(bin, ['-addr', addr, '-data', dir, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  const log = [];
  const exited = new Promise((res) => child.once('exit', (code, signal) => res({ code, signal })));
  const address = await new Promise((res, rej) => {
    let buf = '';
    const timer = setTimeout(() => rej(new Error(`engine did not start within 30s:\n${log.join('\n')}`)), 30000);
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => {
      buf += chunk;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        log.push(line);
        if (log.length > 200) log.shift();
        const m = listenLine.exec(line);
        if (m) {
          clearTimeout(timer);
          res(m[1]);
        }
      }
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      rej(new Error(`engine exited (${code ?? signal}) before listening:\n${log.join('\n')}`));
    });
  });
  const engine = {
    child,
    data: dir,
    addr: address,
    http: `http://${address}`,
    ws: `ws://${address}/ws`,
    log,
    exited,
    /** SIGKILL, and wait for the exit. */
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    /** POST /streams/{stream}/commands; resolves with {status, body}. */
    async command(stream, type, data) {
      const r = await fetch(`${this.http}/streams/${encodeURIComponent(stream)}/commands`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ type, data }),
      });
      return { status: r.status, body: await r.json() };
    },
  };
  running.add(engine);
  exited.then(() => running.delete(engine));
  return engine;
}

const running = new Set();

/** Kills every engine still running (an after hook). */
export async function killAll() {
  await Promise.all([...running].map((e) => e.kill()));
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

/** Resolves once cond() is truthy (polled), rejects after timeout ms with what. */
export async function waitFor(cond, what, timeout = 15000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A promise with its resolve function, for gates in tests. */
export function deferred() {
  let resolve, reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

let uniq = 0;
/** A stream id no other test uses. */
export function uniqueStream(kind = 'room') {
  return `${kind}:t${process.pid}-${Date.now().toString(36)}-${++uniq}`;
}

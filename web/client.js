// TEMPORARY: replaced by the JS-client engineer's web/client.js at merge.
//
// A minimal implementation of the agreed JavaScript client API (interface
// 4) so that the pages can be built and tested before the real client
// lands. The pages use only that API.

const OPEN = 1;

export class Client {
  constructor(url, opts = {}) {
    this.url = url;
    this.opts = opts;
    this.WS = opts.WebSocket || globalThis.WebSocket;
    this.commandTimeout = opts.commandTimeout ?? 10000;
    this.backoff = { min: 100, max: 5000, ...(opts.backoff || {}) };
    this.subs = new Map(); // stream -> Subscription
    this.pending = new Map(); // ref -> {resolve, reject, timer, kind, sub}
    this.seq = 0;
    this.attempt = 0;
    this.ws = null;
    this.closed = false;
    this.status = null;
    this.firstConnect = null;
  }

  setStatus(s) {
    if (this.status === s) return;
    this.status = s;
    try { this.opts.onStatus?.(s); } catch (e) { console.error(e); }
  }

  connect() {
    if (!this.firstConnect) {
      this.firstConnect = new Promise((resolve, reject) => {
        this.resolveFirst = resolve;
        this.rejectFirst = reject;
      });
      this.setStatus('connecting');
      this.open();
    }
    return this.firstConnect;
  }

  async open() {
    if (this.closed) return;
    let url = this.url;
    let token = this.opts.token;
    if (typeof token === 'function') {
      try { token = await token(); } catch { token = undefined; }
    }
    if (token) url += (url.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(token);
    let ws;
    try {
      ws = new this.WS(url);
    } catch (e) {
      this.retry();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.setStatus('connected');
      this.resolveFirst?.();
      this.resolveFirst = null;
      for (const sub of this.subs.values()) this.sendSubscribe(sub);
    };
    ws.onmessage = (m) => {
      let f;
      try { f = JSON.parse(m.data); } catch { return; }
      this.frame(f);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      for (const [ref, p] of this.pending) {
        if (p.kind === 'command') {
          clearTimeout(p.timer);
          const err = new Error('connection lost');
          err.code = 'unavailable';
          p.reject(err);
          this.pending.delete(ref);
        } else {
          this.pending.delete(ref);
        }
      }
      if (this.closed) return;
      this.retry();
    };
    ws.onerror = () => {};
  }

  retry() {
    if (this.closed) return;
    this.attempt++;
    this.setStatus(this.attempt > 5 ? 'offline' : 'reconnecting');
    const cap = Math.min(this.backoff.max, this.backoff.min * 2 ** this.attempt);
    setTimeout(() => this.open(), Math.random() * cap);
  }

  send(obj) {
    if (this.ws && this.ws.readyState === OPEN) {
      this.ws.send(JSON.stringify(obj));
      return true;
    }
    return false;
  }

  nextRef() { return 'r' + ++this.seq; }

  frame(f) {
    if (f.op === 'event') {
      const sub = this.subs.get(f.stream);
      if (!sub || f.version <= sub.version) return;
      sub.version = f.version;
      const { op, ...ev } = f;
      try { sub.opts.onEvent?.(ev); } catch (e) { console.error(e); }
      return;
    }
    if (f.op === 'presence') {
      const sub = this.subs.get(f.stream);
      try { sub?.opts.onPresence?.(f.members || []); } catch (e) { console.error(e); }
      return;
    }
    const p = f.ref !== undefined && this.pending.get(f.ref);
    if (!p) return;
    this.pending.delete(f.ref);
    clearTimeout(p.timer);
    if (f.op === 'error') {
      const err = new Error(f.message || f.code);
      err.code = f.code;
      if (p.kind === 'subscribe' && f.code === 'epoch_changed') {
        const sub = p.sub;
        const old = sub.epoch;
        sub.epoch = undefined;
        sub.version = 0;
        sub.from = 0;
        try { sub.opts.onEpochChange?.({ stream: sub.stream, oldEpoch: old, newEpoch: undefined }); } catch (e) { console.error(e); }
        this.sendSubscribe(sub);
        return;
      }
      p.reject(err);
      return;
    }
    if (p.kind === 'subscribe') {
      const sub = p.sub;
      const resumed = sub.resumed;
      sub.epoch = f.epoch;
      if (sub.from === undefined && sub.version === 0) sub.version = f.version;
      if (sub.opts.state && !resumed) {
        try { sub.opts.onState?.(f.state ?? null, f.version); } catch (e) { console.error(e); }
      }
      p.resolve(f);
      return;
    }
    if (p.kind === 'command') {
      p.resolve({ stream: f.stream, version: f.version, events: f.events });
    }
  }

  sendSubscribe(sub) {
    if (sub.closed) return;
    const ref = this.nextRef();
    const msg = { op: 'subscribe', stream: sub.stream, ref };
    // A resume: from the last version delivered, in the same epoch.
    sub.resumed = sub.started;
    if (sub.started) {
      msg.from = sub.version;
      if (sub.epoch) msg.epoch = sub.epoch;
    } else if (sub.from !== undefined) {
      msg.from = sub.from;
      sub.version = sub.from;
    }
    if (sub.opts.member) msg.user = sub.opts.member;
    if (sub.opts.state) msg.state = true;
    this.pending.set(ref, {
      kind: 'subscribe', sub,
      resolve: () => { sub.started = true; sub.resolveReady(); },
      reject: (e) => { sub.rejectReady(e); },
    });
    this.send(msg);
  }

  subscribe(stream, opts = {}) {
    const sub = {
      stream, opts, from: opts.from, version: opts.from ?? 0, started: false, closed: false,
    };
    sub.ready = new Promise((res, rej) => { sub.resolveReady = res; sub.rejectReady = rej; });
    sub.ready.catch(() => {});
    sub.unsubscribe = () => {
      sub.closed = true;
      this.subs.delete(stream);
      this.send({ op: 'unsubscribe', stream, ref: this.nextRef() });
    };
    const handle = {
      get version() { return sub.version; },
      ready: sub.ready,
      unsubscribe: sub.unsubscribe,
    };
    this.subs.set(stream, sub);
    if (this.ws && this.ws.readyState === OPEN) this.sendSubscribe(sub);
    return handle;
  }

  command(stream, type, data = {}, opts = {}) {
    return new Promise((resolve, reject) => {
      const ref = this.nextRef();
      const msg = { op: 'command', stream, type, data, ref };
      if (opts.id) msg.id = opts.id;
      if (opts.expected !== undefined) msg.expected = opts.expected;
      const timer = setTimeout(() => {
        this.pending.delete(ref);
        const err = new Error('timeout');
        err.code = 'timeout';
        reject(err);
      }, this.commandTimeout);
      this.pending.set(ref, { kind: 'command', resolve, reject, timer });
      if (!this.send(msg)) {
        clearTimeout(timer);
        this.pending.delete(ref);
        const err = new Error('not connected');
        err.code = 'unavailable';
        reject(err);
      }
    });
  }

  close() {
    this.closed = true;
    this.setStatus('closed');
    this.ws?.close();
  }
}

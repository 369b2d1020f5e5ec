// The engine's JavaScript client: one WebSocket to /ws that survives
// reconnects. ES module, no dependencies; runs in browsers and in Node
// (Node 20 needs --experimental-websocket, or pass `WebSocket` in options).
// Types and documentation: client.d.ts. The wire protocol: docs/protocol.md.
//
// It mirrors the Go client (client/): commands correlated by ref with a
// timeout; subscriptions re-sent after every reconnect with `from` = the last
// version delivered and the epoch; an event whose version is not last+1 makes
// it subscribe again from last, an event at or below last is dropped; an
// `epoch_changed` refusal restarts the subscription from 0; reconnects back
// off exponentially with full jitter.

const OPEN = 1;

/** Error with the protocol's error code (or a client code: timeout, disconnected, closed, …). */
export class EngineError extends Error {
  constructor(code, message) {
    super(message || code);
    this.name = 'EngineError';
    this.code = code;
  }
}

/** The wait before reconnect attempt n (0-based): uniform in [0, min(max, min·2ⁿ)). */
export function backoffDelay(n, min, max, rand = Math.random) {
  const ceil = Math.min(max, min * 2 ** Math.min(n, 52));
  return rand() * ceil;
}

export class Client {
  constructor(url, options = {}) {
    if (typeof url !== 'string' || url === '') throw new TypeError('Client: url is required');
    this.url = url;
    const o = options;
    this._WS = o.WebSocket || globalThis.WebSocket;
    if (typeof this._WS !== 'function') {
      throw new TypeError('Client: no WebSocket constructor (pass options.WebSocket, or run Node with --experimental-websocket)');
    }
    this._token = o.token;
    this._commandTimeout = positive(o.commandTimeout, 10000);
    this._backoffMin = positive(o.backoff && o.backoff.min, 100);
    this._backoffMax = Math.max(this._backoffMin, positive(o.backoff && o.backoff.max, 5000));
    this._keepAlive = o.keepAlive === undefined ? 30000 : o.keepAlive;
    this._offlineAfter = positive(o.offlineAfter, 5);
    this._maxAttempts = positive(o.maxAttempts, Infinity);
    this._onStatus = o.onStatus;
    this._onError = o.onError || ((err) => console.error('engine client:', err));
    this._rand = o.random || Math.random;

    this.status = 'idle';
    this._ws = null; // the open connection, null between connections
    this._connSeq = 0; // increments per connection attempt: stale sockets are ignored
    this._refSeq = 0;
    this._pending = new Map(); // ref → request on the current connection
    this._waiting = []; // commands held until a connection is up
    this._subs = new Map(); // stream → Subscription
    this._attempt = 0; // back-off exponent
    this._failures = 0; // consecutive failed attempts
    this._everConnected = false;
    this._closed = false;
    this._timer = null; // reconnect timer
    this._kaTimer = null;
    this._connectedAt = 0;
    this._connectWaiters = [];
    this._onlineListener = null;
  }

  /** Starts connecting (once); resolves when connected for the first time. */
  connect() {
    if (this._closed) return Promise.reject(new EngineError('closed', 'client closed'));
    if (this._everConnected && this._ws) return Promise.resolve();
    const p = new Promise((resolve, reject) => this._connectWaiters.push({ resolve, reject }));
    if (this.status === 'idle') {
      this._setStatus('connecting');
      this._attemptConnect();
    }
    return p;
  }

  /** Closes the connection for good: pending requests reject with code 'closed'. */
  close() {
    if (this._closed) return;
    this._closed = true;
    clearTimeout(this._timer);
    this._stopKeepAlive();
    this._removeOnlineListener();
    const ws = this._ws;
    this._ws = null;
    this._connSeq++;
    if (ws) {
      detach(ws);
      try { ws.close(1000, 'client closed'); } catch { /* already closing */ }
    }
    const err = () => new EngineError('closed', 'client closed');
    for (const req of this._pending.values()) this._settle(req, err());
    this._pending.clear();
    for (const req of this._waiting) this._settle(req, err());
    this._waiting = [];
    for (const sub of this._subs.values()) sub._end(null);
    this._subs.clear();
    for (const w of this._connectWaiters) w.reject(err());
    this._connectWaiters = [];
    this._setStatus('closed');
  }

  /**
   * Sends a command and resolves with its ack {stream, version}. Rejects with
   * an EngineError whose code is the protocol's, or 'timeout', 'disconnected'
   * (lost with the connection, no id), 'closed'.
   */
  command(stream, type, data, opts = {}) {
    if (this._closed) return Promise.reject(new EngineError('closed', 'client closed'));
    return new Promise((resolve, reject) => {
      const frame = { op: 'command', stream, type, data: data === undefined ? {} : data };
      if (opts.id !== undefined && opts.id !== null) frame.id = String(opts.id);
      const req = { kind: 'command', frame, resolve, reject, idempotent: frame.id !== undefined, done: false };
      const timeout = positive(opts.timeout, this._commandTimeout);
      req.timer = setTimeout(() => {
        if (req.ref !== undefined) this._pending.delete(req.ref);
        this._waiting = this._waiting.filter((r) => r !== req);
        this._settle(req, new EngineError('timeout', `no answer to ${type} on ${stream} within ${timeout} ms`));
      }, timeout);
      if (this._ws) this._sendRequest(req);
      else this._waiting.push(req);
    });
  }

  /** Application-level ping on the current connection; resolves with the round trip in ms. */
  ping(opts = {}) {
    return this._simpleRequest({ op: 'ping' }, 'pong', positive(opts.timeout, this._commandTimeout)).then((r) => r.rtt);
  }

  /**
   * Hands the server a fresh token for the current connection ({op:"refresh"});
   * resolves with {exp} (undefined with auth off). The token is also used by later reconnects.
   */
  refresh(token) {
    return this._simpleRequest({ op: 'refresh', token }, 'refreshed', this._commandTimeout).then((r) => {
      if (typeof this._token !== 'function') this._token = token;
      return { exp: r.frame.exp };
    });
  }

  /** Subscribes to a stream; see client.d.ts for the options. */
  subscribe(stream, opts = {}) {
    if (this._closed) throw new EngineError('closed', 'client closed');
    if (this._subs.has(stream)) throw new EngineError('already_subscribed', `already subscribed to ${stream}`);
    const sub = new Subscription(this, stream, opts);
    this._subs.set(stream, sub);
    if (this._ws) this._sendSubscribe(sub);
    return sub;
  }

  // --- connection ---------------------------------------------------------

  _setStatus(s) {
    if (this.status === s) return;
    this.status = s;
    if (this._onStatus) {
      try { this._onStatus(s); } catch (e) { this._onError(e); }
    }
  }

  async _attemptConnect() {
    if (this._closed) return;
    if (isOffline()) {
      this._setStatus('offline');
      this._waitOnline();
      return;
    }
    const seq = ++this._connSeq;
    let url = this.url;
    try {
      const token = typeof this._token === 'function' ? await this._token() : this._token;
      if (token) url += (url.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(token);
    } catch (e) {
      if (seq !== this._connSeq || this._closed) return;
      this._onError(e);
      this._failed(seq);
      return;
    }
    if (seq !== this._connSeq || this._closed) return;
    let ws;
    try {
      ws = new this._WS(url);
    } catch (e) {
      this._onError(e);
      this._failed(seq);
      return;
    }
    let opened = false;
    ws.onopen = () => {
      if (seq !== this._connSeq) return;
      opened = true;
      this._opened(ws);
    };
    ws.onmessage = (m) => {
      if (seq !== this._connSeq || this._ws !== ws) return;
      this._lastHeard = Date.now();
      if (typeof m.data !== 'string') return;
      let f;
      try { f = JSON.parse(m.data); } catch { return; }
      this._handle(f);
    };
    ws.onclose = (ev) => {
      if (seq !== this._connSeq) return;
      if (opened) this._lost(ws, ev && ev.code, ev && ev.reason);
      else this._failed(seq);
    };
    // Browsers follow an error with a close event; Node 20's WebSocket does
    // not after a failed connection attempt. Either way, one of the two ends it.
    ws.onerror = () => {
      if (seq !== this._connSeq) return;
      if (opened) this._lost(ws, 1006, 'error');
      else {
        detach(ws);
        try { ws.close(); } catch { /* not open */ }
        this._failed(seq);
      }
    };
  }

  _opened(ws) {
    this._ws = ws;
    this._connectedAt = Date.now();
    this._lastHeard = Date.now();
    this._failures = 0;
    this._removeOnlineListener();
    this._everConnected = true;
    this._setStatus('connected');
    this._startKeepAlive(ws);
    // Subscriptions first, so that a command held meanwhile cannot produce
    // an event before its stream is subscribed again.
    for (const sub of this._subs.values()) this._sendSubscribe(sub);
    const waiting = this._waiting;
    this._waiting = [];
    for (const req of waiting) if (!req.done) this._sendRequest(req);
    const waiters = this._connectWaiters;
    this._connectWaiters = [];
    for (const w of waiters) w.resolve();
  }

  // _failed: a connection attempt that never opened.
  _failed(seq) {
    if (seq !== this._connSeq || this._closed) return;
    this._failures++;
    if (this._failures >= this._maxAttempts) {
      const err = new EngineError('unavailable', `gave up after ${this._failures} connection attempts`);
      for (const w of this._connectWaiters) w.reject(err);
      this._connectWaiters = [];
      this.close();
      return;
    }
    if (this._failures >= this._offlineAfter) this._setStatus('offline');
    else if (this._everConnected) this._setStatus('reconnecting');
    this._schedule();
  }

  // _lost: an open connection ended (server close, network, keep-alive).
  _lost(ws, code, reason) {
    if (this._ws !== ws || this._closed) return;
    detach(ws);
    this._ws = null;
    this._connSeq++;
    this._stopKeepAlive();
    if (Date.now() - this._connectedAt >= this._backoffMax) this._attempt = 0; // it was healthy
    const tooLarge = code === 1009;
    for (const req of this._pending.values()) {
      if (req.kind === 'command' && req.idempotent && !tooLarge) {
        delete req.ref;
        this._waiting.push(req); // sent again once connected: the id makes it safe
      } else if (req.kind === 'command' || req.kind === 'simple') {
        const c = tooLarge ? 'too_large' : 'disconnected';
        this._settle(req, new EngineError(c, `connection lost before the reply (${code || 'no close code'}${reason ? ' ' + reason : ''})`));
      }
      // subscribe/unsubscribe requests: subscriptions are re-sent below.
    }
    this._pending.clear();
    for (const sub of this._subs.values()) {
      sub._conn = 0;
      sub._resyncing = false;
    }
    this._setStatus('reconnecting');
    this._schedule();
  }

  _schedule() {
    clearTimeout(this._timer);
    const d = backoffDelay(this._attempt, this._backoffMin, this._backoffMax, this._rand);
    this._attempt++;
    this._timer = setTimeout(() => this._attemptConnect(), d);
  }

  // _drop closes a connection that is alive only on paper and reconnects.
  _drop(ws, why) {
    if (this._ws !== ws) return;
    try { ws.close(4000, why); } catch { /* ignore */ }
    this._lost(ws, 0, why);
  }

  _waitOnline() {
    const g = globalThis;
    if (typeof g.addEventListener !== 'function') {
      this._schedule();
      return;
    }
    if (!this._onlineListener) {
      this._onlineListener = () => {
        this._removeOnlineListener();
        clearTimeout(this._timer);
        this._attempt = 0;
        this._setStatus(this._everConnected ? 'reconnecting' : 'connecting');
        this._attemptConnect();
      };
      g.addEventListener('online', this._onlineListener);
    }
  }

  _removeOnlineListener() {
    if (this._onlineListener && typeof globalThis.removeEventListener === 'function') {
      globalThis.removeEventListener('online', this._onlineListener);
    }
    this._onlineListener = null;
  }

  _startKeepAlive(ws) {
    this._stopKeepAlive();
    if (!(this._keepAlive > 0)) return;
    let lastPingAt = 0;
    this._kaTimer = setInterval(() => {
      if (this._ws !== ws) return;
      if (lastPingAt && this._lastHeard < lastPingAt) {
        this._drop(ws, 'keep-alive timeout');
        return;
      }
      lastPingAt = Date.now();
      this._write(ws, { op: 'ping', ref: this._nextRef('k') });
    }, this._keepAlive);
    if (this._kaTimer && typeof this._kaTimer.unref === 'function') this._kaTimer.unref();
  }

  _stopKeepAlive() {
    clearInterval(this._kaTimer);
    this._kaTimer = null;
  }

  _nextRef(prefix = '') {
    return prefix + (++this._refSeq).toString(36);
  }

  _write(ws, frame) {
    if (!ws || ws.readyState !== OPEN) return false;
    try {
      ws.send(JSON.stringify(frame));
      return true;
    } catch {
      return false;
    }
  }

  _sendRequest(req) {
    req.ref = this._nextRef();
    req.frame.ref = req.ref;
    req.sentAt = Date.now();
    this._pending.set(req.ref, req);
    if (!this._write(this._ws, req.frame)) {
      // The socket is going away; its close puts the request back or fails it.
    }
  }

  _simpleRequest(frame, want, timeout) {
    if (this._closed) return Promise.reject(new EngineError('closed', 'client closed'));
    if (!this._ws) return Promise.reject(new EngineError('disconnected', 'not connected'));
    return new Promise((resolve, reject) => {
      const req = { kind: 'simple', want, frame, resolve, reject, done: false };
      req.timer = setTimeout(() => {
        this._pending.delete(req.ref);
        this._settle(req, new EngineError('timeout', `no ${want} within ${timeout} ms`));
      }, timeout);
      this._sendRequest(req);
    });
  }

  _settle(req, err, value) {
    if (req.done || !req.reject) return; // subscribe/unsubscribe requests have no promise
    req.done = true;
    clearTimeout(req.timer);
    if (err) req.reject(err);
    else req.resolve(value);
  }

  // --- frames -------------------------------------------------------------

  _handle(f) {
    switch (f.op) {
      case 'event': {
        const sub = this._subs.get(f.stream);
        if (sub) sub._offerEvent(f);
        return;
      }
      case 'presence': {
        const sub = this._subs.get(f.stream);
        if (sub) sub._offerPresence(f.members || []);
        return;
      }
    }
    const req = f.ref !== undefined ? this._pending.get(f.ref) : undefined;
    if (!req) {
      if (f.op === 'error' && f.ref === undefined) {
        // Not an answer to a request: e.g. the last frame before a close
        // ("token expired"). The close that follows makes the client reconnect.
        this._onError(new EngineError(f.code, f.message));
      }
      return;
    }
    this._pending.delete(f.ref);
    switch (req.kind) {
      case 'command':
        if (f.op === 'ack') {
          const ack = { ...f };
          delete ack.op;
          delete ack.ref;
          this._settle(req, null, ack);
        } else if (f.op === 'error') {
          this._settle(req, new EngineError(f.code, f.message));
        } else {
          this._settle(req, new EngineError('bad_reply', `unexpected ${f.op} to a command`));
        }
        return;
      case 'simple':
        if (f.op === req.want) this._settle(req, null, { frame: f, rtt: Date.now() - req.sentAt });
        else if (f.op === 'error') this._settle(req, new EngineError(f.code, f.message));
        else this._settle(req, new EngineError('bad_reply', `unexpected ${f.op}`));
        return;
      case 'subscribe':
        req.sub._applyReply(req, f);
        return;
      case 'unsubscribe':
        return;
    }
  }

  // _sendSubscribe sends sub's subscribe on the current connection.
  _sendSubscribe(sub) {
    if (!this._ws || sub._ended) return;
    const frame = { op: 'subscribe', stream: sub.stream };
    if (sub._member) frame.user = sub._member;
    let resume = false;
    if (sub._hasBase) {
      frame.from = sub._last;
      if (sub._epoch) frame.epoch = sub._epoch;
      resume = sub._confirmed && !sub._restart;
    }
    if (sub._wantState && !resume) frame.state = true;
    const req = { kind: 'subscribe', sub, frame, conn: this._connSeq };
    sub._conn = this._connSeq;
    sub._latestRef = undefined;
    this._sendRequest(req);
    sub._latestRef = req.ref;
  }

  // _resync re-subscribes sub from its last version on the current connection
  // after a gap or an epoch change: unsubscribe, then subscribe.
  _resync(sub) {
    if (!this._ws) return; // the next connection re-subscribes anyway
    this._write(this._ws, { op: 'unsubscribe', stream: sub.stream });
    this._sendSubscribe(sub);
  }

  _forget(sub) {
    if (this._subs.get(sub.stream) === sub) this._subs.delete(sub.stream);
  }

  _report(err) {
    try { this._onError(err); } catch { /* the reporter failed */ }
  }
}

export class Subscription {
  constructor(client, stream, opts) {
    this.client = client;
    this.stream = stream;
    this._member = opts.member;
    this._wantState = opts.state === true;
    this._onState = opts.onState;
    this._onEvent = opts.onEvent;
    this._onPresence = opts.onPresence;
    this._onEpochChange = opts.onEpochChange;
    this._onError = opts.onError;
    this._liveOnly = opts.from === undefined || opts.from === null;
    this._hasBase = !this._liveOnly;
    this._last = this._hasBase ? Number(opts.from) : 0;
    this._epoch = opts.epoch || '';
    this._confirmed = false;
    this._restart = false; // true after an epoch change until the next subscribed reply
    this._resyncing = false;
    this._ended = false;
    this._reset = null; // pending epoch change info
    this._conn = 0;
    this._latestRef = undefined;
    /** The version the server reported with the latest subscribed reply. */
    this.subscribedAt = undefined;
    this.error = null;
    this.ready = new Promise((resolve, reject) => {
      this._resolveReady = resolve;
      this._rejectReady = reject;
    });
    this.ready.catch(() => {}); // no unhandled rejection when nobody waits on it
  }

  /** The last version delivered to onEvent (or the state's / the from given, before any). */
  get version() {
    return this._last;
  }

  /** The store epoch of the latest subscribed reply ('' while unknown). */
  get epoch() {
    return this._epoch;
  }

  /** True once the subscription has ended (unsubscribe, close, refusal). */
  get closed() {
    return this._ended;
  }

  /** Ends the subscription and tells the server; no callback runs after it returns. */
  unsubscribe() {
    if (this._ended) return;
    const c = this.client;
    c._forget(this);
    this._end(null);
    if (c._ws && this._conn === c._connSeq) {
      c._sendRequest({ kind: 'unsubscribe', frame: { op: 'unsubscribe', stream: this.stream } });
    }
  }

  _end(err) {
    if (this._ended) return;
    this._ended = true;
    this.error = err;
    if (err) this._rejectReady(err);
    else this._resolveReady(this);
  }

  _call(fn, ...args) {
    if (!fn || this._ended) return;
    try {
      fn(...args);
    } catch (e) {
      this.client._report(e);
    }
  }

  _applyReply(req, f) {
    if (this._ended || req.ref !== this._latestRef) return; // an answer to a superseded subscribe
    const c = this.client;
    if (f.op === 'subscribed') {
      this.subscribedAt = f.version;
      const first = !this._confirmed || this._restart;
      if (!this._hasBase) {
        this._hasBase = true;
        this._last = f.version;
      }
      if (f.epoch) this._epoch = f.epoch;
      this._resyncing = false;
      this._confirmed = true;
      this._restart = false;
      if (this._reset) {
        const info = { ...this._reset, newEpoch: f.epoch || '' };
        this._reset = null;
        this._call(this._onEpochChange, info);
      }
      if (first && this._wantState && Object.prototype.hasOwnProperty.call(f, 'state')) {
        this._call(this._onState, f.state, f.version);
      }
      this._resolveReady(this);
      return;
    }
    if (f.op !== 'error') return;
    const err = new EngineError(f.code, f.message);
    if (!this._confirmed) {
      this._fail(err);
      return;
    }
    if (f.code === 'epoch_changed') {
      // The store is not the one the delivered versions came from: start
      // over from 0 (with state again when the subscription asked for it).
      if (!this._reset) {
        this._reset = { stream: this.stream, oldEpoch: this._epoch, lastVersion: this._last };
      }
      this._epoch = '';
      this._restart = true;
      if (this._wantState && this._liveOnly) {
        this._hasBase = false; // state, then live events, as the first subscribe
        this._last = 0;
      } else {
        this._last = 0;
      }
      c._resync(this);
      return;
    }
    if (f.code === 'unavailable' || f.code === 'rate_limited') {
      // Passing: reconnect with back-off and subscribe again.
      c._drop(c._ws, `re-subscribe refused: ${f.code}`);
      return;
    }
    this._fail(err);
  }

  // _fail ends the subscription because the server refused it.
  _fail(err) {
    this.client._forget(this);
    this._call(this._onError, err);
    this._end(err);
  }

  _offerEvent(f) {
    if (this._ended || !this._hasBase || this._conn !== this.client._connSeq) return;
    const v = f.version;
    if (v <= this._last) return; // a duplicate
    if (v === this._last + 1) {
      this._last = v;
      const ev = { ...f };
      delete ev.op;
      this._call(this._onEvent, ev);
      return;
    }
    if (this._resyncing) return;
    this._resyncing = true;
    this.client._resync(this); // a gap: subscribe again from last
  }

  _offerPresence(members) {
    if (this._conn !== this.client._connSeq) return;
    this._call(this._onPresence, members);
  }
}

function positive(v, dflt) {
  return typeof v === 'number' && v > 0 ? v : dflt;
}

function detach(ws) {
  ws.onopen = ws.onmessage = ws.onclose = null;
  ws.onerror = () => {};
}

function isOffline() {
  const n = globalThis.navigator;
  return !!n && n.onLine === false;
}

// Type declarations for web/client.js, the engine's JavaScript client.
//
// One WebSocket connection to the engine's /ws endpoint (docs/protocol.md)
// that survives reconnects. It behaves as the Go client (client/) does:
// every subscription is re-sent after a reconnect from the last version it
// delivered, with the store's epoch, so each event reaches `onEvent` exactly
// once and in version order however often the connection drops.
//
//   import { Client } from '/client.js';
//   const c = new Client('ws://localhost:8080/ws', { onStatus: (s) => badge(s) });
//   await c.connect();
//   const sub = c.subscribe('room:lobby', { from: 0, member: 'ann', onEvent: (ev) => show(ev) });
//   await sub.ready;
//   await c.command('room:lobby', 'PostMessage', { user: 'ann', text: 'hi' });
//
// Node 20 has WebSocket only behind `--experimental-websocket`; pass another
// implementation as `options.WebSocket` otherwise.

/** The connection's state, as reported to `ClientOptions.onStatus`. */
export type Status =
  /** connect() was called and no connection has been up yet. */
  | 'connecting'
  /** A connection is up (the first one, or again after a loss). */
  | 'connected'
  /** The connection was lost; the client is waiting for its back-off or trying again. */
  | 'reconnecting'
  /**
   * In a browser whose `navigator.onLine` is false: the client makes no
   * attempt until the window's `online` event. Also reported after
   * `offlineAfter` consecutive failed attempts (default 5), while the client
   * keeps trying with back-off; the next success reports 'connected'.
   */
  | 'offline'
  /** close() was called, or the client gave up after `maxAttempts`. Terminal. */
  | 'closed';

/** A token, or a function asked for one before every connection attempt. */
export type TokenSource = string | (() => string | undefined | Promise<string | undefined>);

export interface ClientOptions {
  /**
   * Bearer token, sent as `?token=…` on the upgrade (browsers cannot set the
   * Authorization header). A function is called before every connection
   * attempt, the first one and each reconnect, so it can hand out a fresh
   * token after the server closed the connection because its token expired.
   * A function that throws counts as a failed attempt.
   */
  token?: TokenSource;
  /** WebSocket constructor; default `globalThis.WebSocket`. */
  WebSocket?: new (url: string) => WebSocket;
  /** How long command() waits for its ack or error, in ms. Default 10000. */
  commandTimeout?: number;
  /**
   * Reconnect back-off in ms. Attempt n (0-based) waits a uniformly random
   * time in [0, min(max, min·2ⁿ)) ("full jitter"). The exponent starts over
   * once a connection has lived at least `max`. Default {min: 100, max: 5000}.
   */
  backoff?: { min?: number; max?: number };
  /**
   * Interval of the client's keep-alive `{"op":"ping"}`, in ms; a connection
   * from which nothing at all arrived during one interval after a ping is
   * dropped and re-established. Default 30000; 0 disables it.
   */
  keepAlive?: number;
  /** Consecutive failed attempts after which the status is 'offline'. Default 5. */
  offlineAfter?: number;
  /**
   * Consecutive failed connection attempts after which the client gives up:
   * connect() rejects with code 'unavailable' and the status is 'closed'.
   * Default: never.
   */
  maxAttempts?: number;
  /** Called on every status change, in order. */
  onStatus?: (status: Status) => void;
  /**
   * Called with exceptions thrown by callbacks and with error frames that
   * answer no request (e.g. `unauthorized` "token expired" before a close).
   * Default: console.error.
   */
  onError?: (err: unknown) => void;
  /** Random numbers in [0, 1) for the jitter (tests). Default Math.random. */
  random?: () => number;
}

/**
 * An error frame from the server, or a failure of the client: `message` is the
 * server's message (the code when there is none). `code` is one
 * of the protocol's codes (`bad_request`, `unauthorized`, `forbidden`,
 * `not_found`, `conflict`, `wrong_expected_version`, `epoch_changed`,
 * `too_large`, `idempotency_mismatch`, `rate_limited`, `limit_exceeded`,
 * `unavailable`, …) or one of the client's own:
 * - `timeout`: no answer within the command timeout; the command may or may
 *   not have taken effect.
 * - `disconnected`: the connection was lost after the request was sent and
 *   it is not safe to send again (a command without `id`, a ping); it may or
 *   may not have taken effect.
 * - `too_large`: the server closed the connection with 1009.
 * - `closed`: close() was called.
 * - `already_subscribed`: subscribe() to a stream the client already has.
 * - `bad_reply`: the server answered with an unexpected frame.
 */
export class EngineError extends Error {
  constructor(code: string, message?: string);
  readonly code: string;
}

/** One stored event, as the server sends it (the `event` frame without `op`). */
export interface EventEnvelope<D = any> {
  stream: string;
  version: number;
  position: number;
  id: string;
  type: string;
  /** RFC 3339 with milliseconds, UTC. */
  time: string;
  data: D;
  meta?: { correlation?: string; causation?: string; [k: string]: unknown };
}

/** The server's acknowledgement: the command's events are durable and the stream is at `version`. */
export interface Ack {
  stream: string;
  version: number;
  /**
   * The events the command appended, if the server sends them. The engine's
   * /ws `ack` frame today carries only stream and version (the events reach
   * subscribers as `event` frames), so this is usually undefined.
   */
  events?: EventEnvelope[];
  [k: string]: unknown;
}

export interface CommandOptions {
  /**
   * Idempotency key (at most 128 visible ASCII characters). A command with an
   * id whose connection was lost before the answer is sent again, once, on
   * the next connection, and the server answers the repeat with the first
   * result: it takes effect once and the promise resolves with its ack. The
   * same id with another command is `idempotency_mismatch`.
   * Without an id a lost answer rejects with code 'disconnected'.
   * Either way a command made while the client is between connections is
   * held and sent once connected (the timeout keeps running).
   */
  id?: string;
  /** This command's timeout in ms; default the client's commandTimeout. */
  timeout?: number;
}

/** What the client reports with an epoch change. */
export interface EpochChange {
  stream: string;
  /** The epoch the delivered events were read under. */
  oldEpoch: string;
  /** The store's epoch now. */
  newEpoch: string;
  /** The last version delivered under oldEpoch. */
  lastVersion: number;
}

export interface SubscribeOptions<D = any, S = any> {
  /**
   * Resume point: events with a version above `from` are delivered, then
   * live ones (0: the whole stream). Omitted: only events after the
   * subscription (the first subscribed reply's version).
   */
  from?: number;
  /**
   * The epoch under which `from` was read (Subscription.epoch of an earlier
   * subscription, saved with its version). The server then refuses with
   * `epoch_changed` (ready rejects) rather than resume in another store.
   */
  epoch?: string;
  /** Presence name: joins the room's presence (sent as `user` in the subscribe frame). */
  member?: string;
  /**
   * Ask for the stream's state in the subscribed reply (`"state":true`):
   * sent with the first subscribe of this subscription only (and again after
   * an epoch change), never with the resumes after a reconnect or a gap.
   * Meant without `from`: the state at version V, then the events after V.
   */
  state?: boolean;
  /**
   * The subscribed reply's state and version (`state` is null for a stream
   * without events). Called before any event of the subscription, once, and
   * again after an epoch change. Not called when the server's reply has no
   * state (an engine that does not support the option).
   */
  onState?: (state: S | null, version: number) => void;
  /** Each event exactly once, in version order, across reconnects. */
  onEvent?: (ev: EventEnvelope<D>) => void;
  /** A room's member names, after the catch-up and after every change. */
  onPresence?: (members: string[]) => void;
  /**
   * The server's store is not the one the delivered versions came from (its
   * data was wiped or replaced): the client does not resume. It subscribes
   * again from 0 (a subscription with `state: true` and no `from`: with
   * state, live from the state's version) and calls this before the first
   * event of the new store, whose versions start again at 1. Drop what was
   * built from the stream.
   */
  onEpochChange?: (info: EpochChange) => void;
  /**
   * The server refused the subscription (the first subscribe, or a
   * re-subscribe with a code other than `epoch_changed`, `unavailable` or
   * `rate_limited`, which are handled); it has ended.
   */
  onError?: (err: EngineError) => void;
}

export class Subscription {
  readonly client: Client;
  readonly stream: string;
  /** The last version delivered to onEvent; before any, the `from` given or the state's / first reply's version. */
  readonly version: number;
  /** The store epoch of the latest subscribed reply ('' before the first and during an epoch change). */
  readonly epoch: string;
  /** The stream's version reported by the latest subscribed reply. */
  readonly subscribedAt: number | undefined;
  /** True once ended: unsubscribe(), close(), or a refusal (see `error`). */
  readonly closed: boolean;
  /** The refusal that ended the subscription, else null. */
  readonly error: EngineError | null;
  /**
   * Resolves at the first subscribed reply (or when the subscription is
   * ended without one); rejects with the server's refusal of the first
   * subscribe. Waits while the client is between connections.
   */
  readonly ready: Promise<Subscription>;
  /** Ends the subscription and tells the server (leaving presence); no callback runs afterwards. */
  unsubscribe(): void;
}

export class Client {
  constructor(url: string, options?: ClientOptions);
  readonly url: string;
  /** The current status ('idle' before connect()). */
  readonly status: Status | 'idle';
  /**
   * Starts connecting and resolves once connected the first time. Failed
   * attempts are retried with back-off (not rejected); it rejects with
   * 'closed' when close() is called first and 'unavailable' after
   * `maxAttempts`. Calling it again returns a promise for the same.
   */
  connect(): Promise<void>;
  /**
   * Subscribes to a stream (at most one subscription per stream and client:
   * else throws 'already_subscribed'). May be called before connect() or
   * while reconnecting: the subscribe goes out once connected.
   */
  subscribe<D = any, S = any>(stream: string, options?: SubscribeOptions<D, S>): Subscription;
  /**
   * Sends `{op:"command", ref, stream, type, data, id?}` and
   * resolves with the ack; rejects with an EngineError (see its codes).
   * `data` undefined is sent as {}.
   */
  command(stream: string, type: string, data?: unknown, options?: CommandOptions): Promise<Ack>;
  /** An application-level ping; resolves with the round trip in ms. Rejects 'disconnected' when not connected. */
  ping(options?: { timeout?: number }): Promise<number>;
  /**
   * Hands the server a fresh token for the current connection (`refresh`)
   * before the old one expires; resolves with its `exp` (undefined with auth
   * off). Later reconnects use it too, unless `token` is a function.
   */
  refresh(token: string): Promise<{ exp?: number }>;
  /** Closes for good: requests in flight reject with 'closed', subscriptions end, status 'closed'. */
  close(): void;
}

/** The reconnect wait for attempt n: random in [0, min(max, min·2ⁿ)). */
export function backoffDelay(n: number, min: number, max: number, random?: () => number): number;

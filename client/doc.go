// Package client is a Go client for the engine's /ws WebSocket protocol
// (see the WebSocket section of the protocol spec): subscriptions with
// catch-up, commands with acknowledgements, pings. End-to-end tests and the
// load tool use it; it imports only the standard library,
// github.com/coder/websocket and the events package (for the envelope).
//
// # Use
//
//	c, err := client.Dial(ctx, "ws://127.0.0.1:8080/ws", client.Options{Token: tok})
//	defer c.Close()
//	sub, err := c.Subscribe(ctx, "room:lobby", client.From(0), "ann", func(e events.Event) { … })
//	ack, err := c.Command(ctx, "room:lobby", "PostMessage", map[string]string{"user": "ann", "text": "hi"}, "msg-1")
//	if client.ErrorCode(err) == "conflict" { … }
//
// # What it owns and promises
//
// A Client owns one WebSocket connection at a time and replaces it when it
// is lost: closed by the server with 1001 (going away), 1008 (slow
// consumer) or any other code, dropped, or silent to keepalive pings. It
// waits before each attempt with exponential backoff and full jitter
// (Options.ReconnectMin/Max), forever unless Options.MaxAttempts is set;
// an upgrade refused with a 4xx is not retried. Dial itself tries once.
// State changes go to Options.OnState.
//
// Subscriptions survive reconnects exactly once: the client tracks the
// last version seen per subscription and re-subscribes from it on the new
// connection; versions already seen are dropped; a version that skips one
// makes it re-subscribe from the last seen version on the same connection.
// A handler therefore sees every version once, in order, with no gap,
// whatever the connection does. A live-only subscription (from nil)
// becomes "from the version the server reported" once confirmed.
//
// Versions only count within one store: each confirmation carries the
// server's store epoch (Subscription.Epoch), and every re-subscribe sends
// it back with from. When the server's data has been wiped, restored or
// replaced meanwhile, it refuses that resume (code epoch_changed) and the
// client starts the subscription over from 0 instead of resuming: the
// application gets an EpochChange (WithEpochChange) after the last event
// of the old store and before version 1 of the new one. To resume safely
// across restarts of the application itself, keep Epoch with Version and
// pass it to Subscribe with WithEpoch; a mismatch then fails Subscribe
// with an *Error of code CodeEpochChanged.
//
// Commands: Command waits for the ack or the error frame (*Error, code
// as in the spec). A command with an id (the server's idempotency key) is
// re-sent on the next connection when the reply was lost, and returns the
// first result; without an id a lost reply is ErrDisconnected, because the
// command may have been applied. A command not yet sent simply waits for
// the next connection. If the server closes with 1009 (a frame over its
// limit), requests in flight fail with ErrTooLarge and are not re-sent.
//
// Tokens: Options.Token is presented on the upgrade. The server closes a
// connection whose token expires (1008 "token expired") unless the
// application calls Refresh with a fresh token first; a refreshed token
// is also the one later reconnects present. An application that cannot
// refresh in time can set Options.TokenSource instead, which is asked for
// a token before every connection attempt, so that the reconnect after an
// expiry presents a fresh one. With only a static Token, the reconnect
// after an expiry is refused with 401 and the client fails (StateFailed).
//
// # Concurrency
//
// Every method is safe for concurrent use. Per connection there is one
// reader goroutine, which reads every frame in order and correlates
// replies to requests by ref through a map of pending requests, and one
// write path (a one-slot semaphore) that all writers share, so frames go
// out whole and in order. A keepalive goroutine pings while KeepAlive > 0.
// One connection goroutine per client watches the connection, reconnects,
// re-subscribes and calls OnState. Each subscription has a delivery
// goroutine that calls its handler, one event at a time, from an unbounded
// queue, so a slow handler never stalls the reader (replies keep flowing,
// and a handler may itself call Command or Unsubscribe). All of them
// belong to the client: Close performs a normal closure and returns only
// after every one has exited. Close must not be called from a handler or
// from OnState, which run on goroutines that Close waits for.
//
// The reconnect backoff is the pure function backoff; its randomness comes
// from Options.Rand. Timers use the real clock: the client has no other
// use for time.
package client

// Package transport is the engine's front end: the Fiber application with
// the generic routes (/streams/…, /ws), bearer-token authentication, rate
// and size limits, the one table that maps errors to protocol codes
// (errors.go), Prometheus metrics and graceful shutdown. It is the only
// package that imports Fiber and it knows no kind: whether a stream's kind
// exists is the runtime's answer (actors.API.Check), and routes that know
// kinds (the seed routes of package transport/seed) register through the
// Extension API (extension.go), which authenticates them like the rest.
//
// What a client sees (routes, frames, codes, limits, and every choice the
// contract leaves open) is documented once, in docs/protocol.md; who may
// use which route or op is in docs/security.md. This comment only states
// what a reader of the code needs beyond that.
//
// # Concurrency
//
// A Server is safe for concurrent use. Serve runs on the caller's
// goroutine; Shutdown may be called from any goroutine, once or more.
// HTTP handlers run on fasthttp's goroutines and copy every string and
// byte slice they take from *fiber.Ctx before it reaches an actor or
// another goroutine.
//
// Each WebSocket connection has exactly one reader (the handler
// goroutine) and at most one writer goroutine, which runs only while
// there is something to write: the push that finds the send queue idle
// starts it, and it ends when it finds the queue empty, so that an idle
// connection has one goroutine and no write buffer. The reader keeps the
// small stack it starts with: a subscribe and a token refresh, whose
// calls (the runtime's subscribe and catch-up, a signature check) go
// deeper, run on a short-lived goroutine the reader waits for, since a
// stack once grown is not shrunk while its reader is parked; a command
// is handed to the runtime from engineFrame once the frame's parsing
// and checks have returned, at a shallow depth. The writer owns every
// write (frames, the pings a timer queues, the pongs the reader queues,
// the close frame); everything else (replies, command lanes, the
// runtime's deliveries, the /live-score follower) hands it frames through
// the send queue (queue.go): a plain FIFO capped in frames and bytes that
// knows nothing of subscriptions or versions. The writer takes all that
// is queued at once and writes it with one write to the socket, framing
// the data frames itself (wswrite.go; no extension is negotiated, so the
// framing is plain RFC 6455). Pushing never blocks; a push over a cap
// closes the connection as a slow consumer. The reader paces the client's requests instead: while the
// queue is over half its caps it reads no further frame, so replies to a
// client's own requests never overflow it (commands in flight, at most
// MaxInflight, may still add their acks). Commands run in lanes, one per
// stream of a connection (lanes.go): on the actor runtime a command takes
// no goroutine of its own, its actor queues the ack, and one timer per
// connection keeps the command deadline. The runtime sees one actors.Sink
// per subscription (wsSub)
// whose Enqueue pushes the event (rendered later by the writer, with the
// endpoint's Render) and whose WaitRoom, which the runtime's catch-up
// reader waits on, returns once the queue is below half its caps: a
// catch-up goes at the client's pace and leaves the other half for live
// frames. When a subscription ends (unsubscribe, a resubscribe, the
// connection closing) its items still queued are marked, and the writer
// skips them. The handler returns only after the writer and every
// goroutine of the connection have ended, because the socket is closed
// as soon as it returns. The upgrade keeps nothing of the request (wsupgrade.go): not
// contrib/websocket's copies of its headers, cookies and query, nor
// fasthttp's request context and 4 KiB read buffer, which fasthttp holds
// until its hijack handler returns; that handler writes the 101 and
// returns at once, and the connection runs on a goroutine of its own,
// which closes the socket (the server keeps hijacked connections).
//
// Shutdown: /readyz turns 503; the listeners close; new requests, upgrades,
// commands and subscriptions get 503 unavailable; requests not received
// whole are not waited for (their reading ends at once: 400 and a closed
// connection, see conns.go); in-flight HTTP requests and WebSocket
// commands are answered; every WebSocket then gets the frames
// already queued and close 1001 "going away"; Shutdown returns when every
// handler and connection goroutine has ended (fasthttp's worker-pool
// janitor notices within a second). If its context ends first it cancels
// what still runs, drops the remaining connections without a close frame,
// waits for their goroutines and returns the context's error. The caller
// then stops the actors and closes the store.
//
// Metrics: the runtime reports engine_commands_total{kind,result} (result
// being one of the actors.Result* constants), engine_append_seconds and
// engine_active_actors through Metrics as its actors.Config.Observer;
// requests refused by the transport before reaching an actor are not
// commands and are not counted there.
package transport

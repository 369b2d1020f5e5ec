// Package transport is the engine's front end: the Fiber application with
// every HTTP route and WebSocket endpoint of docs/protocol.md, bearer-token
// auth, rate limits, body and frame limits, the one table that maps errors
// to protocol codes (errors.go), Prometheus metrics and graceful shutdown.
// It is the only package that imports Fiber. It talks to the actors only
// through actors.API and reads the log only through Log.
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
// goroutine) and one writer goroutine. The writer owns every write, the
// ping ticker and the close frame; everything else (replies, command
// lanes, the runtime's deliveries, the /live-score follower) hands it
// frames through the send queue (queue.go): a plain FIFO capped in frames
// and bytes that knows nothing of subscriptions or versions. Pushing
// never blocks; a push over a cap closes the connection as a slow
// consumer. The reader paces the client's requests instead: while the
// queue is over half its caps it reads no further frame, so replies to a
// client's own requests never overflow it (commands in flight, at most
// MaxInflight, may still add their acks). The runtime sees one actors.Sink per subscription (wsSub)
// whose Enqueue pushes the event (rendered later by the writer, with the
// endpoint's Render) and whose WaitRoom, which the runtime's catch-up
// reader waits on, returns once the queue is below half its caps: a
// catch-up goes at the client's pace and leaves the other half for live
// frames. When a subscription ends (unsubscribe, a resubscribe, the
// connection closing) its items still queued are marked, and the writer
// skips them. The handler returns only after the writer and every
// goroutine of the connection have ended, because contrib/websocket
// recycles the *websocket.Conn for the next client as soon as it returns.
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
// # Choices where the protocol is silent
//
// HTTP:
//   - A known path with another method is 404 not_found (the protocol has
//     no 405). A plain GET on a WebSocket path is 400 bad_request.
//   - A request body without Content-Type is read as JSON; a declared type
//     other than application/json or */*+json is 415. Bodies are decoded
//     strictly: unknown fields, wrong types and trailing data are 400.
//     POST /order/{item} and POST /update-score take no body.
//   - Command bodies: "type" is required; "data" absent or null means {};
//     data that is not an object is 400.
//   - If-Match takes a version bare (3), quoted ("3") or weak (W/"3"); "*"
//     means any version; anything else is 400. Command replies and state
//     reads carry ETag: "<version>".
//   - Idempotency-Key (1-128 visible ASCII characters) is honoured by every
//     route that runs a command. On POST /orders and POST /order/{item} it
//     also derives the order id, so that a retry lands on the same order.
//   - GET /streams/{s}/events: from defaults to 0; limit defaults to 100
//     and larger values than 1000 are clamped to 1000; limit < 1 is 400;
//     next is the last version returned, or from when none is. A stream of
//     a known kind with no events is 200 with no events; an unknown kind is
//     400 (as on every stream route).
//   - Epochs (see Epochs below): the state of GET /streams/{s} gets an
//     "epoch" member appended to the runtime's JSON object, and the page
//     of GET /streams/{s}/events an "epoch" next to "next". A page read
//     with ?from=N&epoch=E where E is not the store's epoch is 409
//     epoch_changed; ?epoch= without from, or empty, is not checked.
//   - A 500 has code "internal" and a fixed detail; its cause is logged with
//     the request id. A stream whose stored events its kind cannot fold
//     (actors.ErrCorruptStream) is one, over HTTP and /ws alike. 401 carries WWW-Authenticate: Bearer; 429 carries
//     Retry-After (seconds until a token is available); 503 Retry-After: 1.
//   - Other problems' detail, and error frames' message, is text written
//     for the client: the ClientMessage of the error that decided the code
//     (events.Refusal, made with events.Refuse, the decider's Invalid,
//     Conflict, Forbidden and UnknownCommand, newClientError, badRequest,
//     ClientError), or a fixed sentence per code. An error's Error(),
//     with the context the transport and the runtime wrap around it, goes
//     to the log only. See "What a client reads" in errors.go.
//   - X-Request-Id: a client's value of 1-128 visible ASCII characters is
//     kept, any other is replaced by a random one; the response echoes it
//     and the request's log line carries it with method, path, status,
//     duration and remote address.
//   - GET /readyz answers {"status":"ready"}, or a 503 problem while
//     starting or draining. /healthz, /readyz and /metrics need no token,
//     are never throttled and still answer while draining.
//   - POST /order/{item} (the item percent-decoded) waits up to
//     Config.OrderTimeout (30 s) and then answers 503 (the order goes on); an
//     order cancelled meanwhile is 409 conflict; a kitchen or cook step that
//     failed for good is 500.
//   - A request's headers and body must arrive within
//     Config.HTTPReadTimeout (5 s) of its first byte; otherwise 400
//     bad_request and the connection is closed. Idle keep-alive
//     connections are closed after 2 minutes.
//   - A body over Config.BodyLimit is read and answered 413 too_large on a
//     connection that stays usable; a body over a hard cap (4 × BodyLimit,
//     at least BodyLimit + 256 KiB) is refused by fasthttp unread, with 413
//     and a closed connection, which a client still sending may see as a
//     reset.
//   - No CORS headers are sent.
//
// Auth (Config.Auth.JWTSecret set): every route but the probes, including
// the seed routes and WebSocket upgrades, needs an HS256 token with a
// "sub"; exp, nbf and iat are checked against Config.Now. HTTP takes it
// from Authorization only, upgrades also from ?token=. The optional
// "streams" claim lists path.Match patterns ("room:*", "game:main");
// absent means every stream, [] none. A stream outside it is 403 (HTTP and
// /ws); /live-score only sends games it allows; /chat-room needs room:lobby.
// Commands run with the token's sub as decider.Command.User; /chat-room
// speaks as sub and refuses (403) a different ?user=; a /ws subscribe with
// a different "user" is forbidden.
//
// Auth fails closed. The public routes are listed once (publicRoutes in
// server.go); every other route is registered through Server.get,
// Server.post or Server.websocket (Routes for extensions), which
// authenticate first. With auth off, authentication yields an explicit
// anonymous principal that may touch every stream and runs commands as no
// user; a handler reached without authentication finds no principal, and
// every stream check refuses it 401 unauthorized. TestEveryRouteAuthenticates
// sends every registered route and WebSocket path a request without a
// token with auth on and fails on any answer but 401 from a route that is
// not public.
//
// Rate limit (Config.RateLimit): a token bucket per client IP (the socket's
// remote address; proxy headers are not trusted) for HTTP requests,
// WebSocket upgrades, /ws frames other than ping and /chat-room frames. A
// throttled WebSocket frame gets an error (rate_limited) and the
// connection stays open.
//
// WebSocket, all paths: an upgrade whose Origin is not in
// Config.AllowedOrigins gets a 403 problem; a request without Origin is
// not a browser's and is accepted. Messages over Config.ReadLimit close
// with 1009. A send queue over Config.SendQueueFrames or
// Config.SendQueueBytes closes with 1008 "slow consumer" without sending
// what was queued. The server pings every PingInterval; any frame, ping or
// pong from the peer extends its deadline by PongTimeout, past which the
// connection is dropped without a close frame. A connection whose setup
// fails closes with 1013 (unavailable) or 1011, the reason being the error
// code. engine_connections counts open WebSockets.
//
// Closing is lingering: from the moment the server decides to close (an
// overflow, a frame over ReadLimit, shutdown) nothing more the peer sends
// is dispatched; after the close frame the reader keeps reading and
// discarding until the peer's close frame or EOF, at most CloseLinger and
// CloseLingerBytes, so that a peer still sending reads the close code
// instead of a reset (closing a socket with unread data resets it).
//
// Limits: Config.MaxConnections WebSockets in all and
// Config.MaxConnectionsPerIP from one client address, counted from the
// accepted upgrade request (before the 101, so concurrent upgrades cannot
// overshoot) to the handler's end; beyond them the upgrade is refused,
// 503 unavailable (the server's) or 429 limit_exceeded (the address's).
//
// /chat: a text frame X comes back as "You said: X"; a binary frame comes
// back unchanged.
//
// /chat-room: the user is the token's sub, else ?user=, else "anonymous";
// the connection joins room:lobby's presence as that user. Its subscription
// starts once the handshake is done and before its first frame is read,
// so a client's own messages always come back to it. Each text frame is a
// PostMessage, sent in order; a refused one is answered to its sender only,
// as the text "error: <code>: <message>". Binary frames are refused the same
// way. Only MessagePosted events are relayed ("user: text"); presence is
// not sent.
//
// /live-score: delivery starts at the log's head read during the
// handshake, so every score update made after the handshake completes is
// sent; "game" is the game's id without "game:". Client frames are
// ignored.
//
// /ws:
//   - Frames must be text; a binary frame is an error (bad_request).
//   - Frames are decoded strictly (unknown fields, wrong types: bad_request).
//   - "ref" must be a string of at most 64 characters (code points); it is
//     echoed verbatim, "" included, and "ref": null is no ref. A frame that
//     is not valid JSON, or whose ref is invalid, gets an error without ref;
//     any other error carries the frame's ref.
//   - subscribe: a second subscribe to the same stream replaces the first
//     (a resume with a new "from"). A connection holds at most
//     Config.MaxSubscriptions subscriptions; one more is refused with
//     limit_exceeded before anything is subscribed. A "from" beyond the current version
//     delivers nothing until events beyond it. "user" has at most 64
//     characters. A room's newcomer gets a presence frame with the current
//     members after its catch-up (the runtime's choice); presence frames of
//     subscribed rooms are forwarded whether or not the client joined.
//     "from" is passed to the runtime, whose subscription reads the
//     catch-up from the log paced by the client (see Concurrency), so a
//     backlog longer than the send queue does not overflow it; events
//     appended meanwhile are read too, and the subscription goes live
//     once it has caught up, with no gap and no duplicate. A catch-up
//     that cannot read the log ends like a slow consumer: close 1008
//     "slow consumer" (resume with from).
//   - unsubscribe of a stream not subscribed still answers unsubscribed; no
//     event of the stream follows the unsubscribed frame.
//   - command: "data" absent means {}; "id" has at most 128 visible ASCII
//     characters. A connection's commands to one stream run one at a time
//     in the order received; commands to different streams run
//     concurrently, at most Config.MaxInflight (256) at once, beyond which
//     the connection stops reading until one is answered. The ack of a
//     no-op or of a repeated id carries the stream's version as the runtime
//     reports it.
//   - subscribe may carry "epoch" (a string). With "from" and an epoch
//     that is not the store's, the reply is an error epoch_changed and
//     nothing changes: no subscription is made, and one the connection
//     already has to the stream stays. Without "from" the epoch is not
//     checked. subscribed carries the store's "epoch"; ack does not.
//   - Error frames use the HTTP table's codes; "message" is the problem's
//     detail.
//
// Epochs: every reply that tells a client a version also tells it the
// store's epoch (Log.Epoch, i.e. events.Store.Epoch), an id that stays
// the same for the life of the store's data and changes when the data is
// new (a wiped data directory, an import into a fresh store). Versions
// only mean something within one epoch, so a client resuming from a
// version sends the epoch it read it under; when that is not the current
// one the transport refuses the resume (409 / error frame epoch_changed,
// mapped in errors.go) instead of sending the new store's events after
// the client's old version, and the client starts over from 0.
//
// Metrics: the runtime reports engine_commands_total{kind,result} (result
// being one of the actors.Result* constants), engine_append_seconds and
// engine_active_actors through Metrics as its actors.Config.Observer;
// requests refused by the transport before reaching an actor are not
// commands and are not counted there.
package transport

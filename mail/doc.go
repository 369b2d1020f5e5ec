// Package mail delivers the email of a StepEmail step, through one of two
// senders behind one interface (Sender); Executor turns a Sender into the
// runtime's executor of decider.StepEmail:
//
//   - Outbox writes each message as an RFC 5322 file into a directory
//     (the engine's <data>/outbox/ when ENGINE_SMTP_URL is empty), named
//     by the step's key (OutboxFileName), written atomically.
//   - SMTP sends each message to a mail server over its own connection
//     (net/smtp): EHLO, STARTTLS when offered (or required, or implicit
//     TLS for smtps://), AUTH PLAIN when credentials are configured (only
//     over TLS or to localhost), MAIL FROM, RCPT TO, DATA, QUIT. Config
//     and ParseURL read ENGINE_SMTP_URL: smtp://user:pass@host:port
//     (STARTTLS, port 587) and smtps:// (implicit TLS, port 465), with
//     the sender, TLS mode, EHLO name and a per-send timeout as options.
//
// What it owns: the message format, the header policy, the Message-ID,
// the outbox file names and the classification of failures (a failure a
// retry cannot fix is marked decider.Permanent). It imports events and
// actors/decider and the standard library; it does not import actors,
// which runs its Executor like any other registered step executor.
//
// The message, the same from both senders: text/plain UTF-8,
// quoted-printable body, CRLF line endings, headers folded at 78
// characters, an RFC 2047 subject, Date, and Message-ID MessageID(key),
// derived from the step's key.
//
// Header policy, one for both senders (a single function builds and
// checks every header): a message whose To or Subject, or any other
// header value, holds CR, LF or another ASCII control character (a tab
// excepted), or whose To is not exactly one valid RFC 5322 address, is
// refused, never repaired. The error is permanent (decider.Permanent: the
// runtime does not retry it) and has ErrInvalidHeader in its chain. The check runs before any file is touched or connection made: a
// refused message writes no file and opens no connection. A configured sender
// (Outbox.From, Config.From) is held to the same rule.
//
// Errors: permanent (a retry will not help, the runtime does not retry)
// are policy refusals, an empty key, an unusable configuration and 5xx
// replies; transient (retried with back-off) are 4xx replies, network and
// file-system errors, timeouts and cancellation. The server's reply, when
// there was one, is in the chain as a *textproto.Error.
//
// Delivery guarantee: at most one message per key where the receiver can
// tell; a Send that returned nil has delivered (the file is in place, or
// the server accepted the message).
//
//   - Outbox: a key whose file exists is not written again, so repeating
//     a step (a retry, a replay after a crash) leaves exactly one file. A
//     reader sees the whole message or none. A write cut short by a kill
//     leaves a ".tmp-*.eml" file, which the next Outbox removes before
//     its first message.
//   - SMTP: Send returns nil only after the server accepted the message
//     (250 after DATA). A connection lost after the final "." but before
//     that reply leaves the outcome unknown; Send reports a transient
//     error and the runtime's retry sends the message again. SMTP
//     remembers nothing between calls, so a repeat after success sends
//     again too. Every copy carries the same Message-ID, so a receiver
//     that deduplicates by Message-ID (most mailbox providers and many
//     relays do) shows one message; one that does not may show two.
//
// Concurrency contract: an *Outbox (whose fields must not change after
// its first Send) and an *SMTP (immutable after NewSMTP) are safe for
// concurrent use. Outbox sends of distinct keys write distinct files;
// concurrent sends of one key still leave one file (the last rename wins,
// and the contents are the same but for Date). Every SMTP Send dials its
// own connection and shares nothing; it starts no goroutine beyond a
// context.AfterFunc that closes the connection when ctx ends, stopped
// before Send returns, so a stalled server never outlives the caller's
// context (or Config.Timeout). Neither sender keeps a goroutine after
// Send returns.
package mail

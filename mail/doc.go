// Package mail sends the email of a StepEmail step: SMTP to a real mail
// server (ENGINE_SMTP_URL), or Outbox, which only writes .eml files.
//
// What it owns:
//
//   - Config and ParseURL: smtp://user:pass@host:port (STARTTLS, port 587)
//     and smtps:// (implicit TLS, port 465), with the sender, TLS mode,
//     EHLO name and a per-send timeout as query options.
//   - SMTP.Send: one connection per message with net/smtp: EHLO, STARTTLS
//     when offered (or required, or implicit TLS), AUTH PLAIN when
//     credentials are configured (only over TLS or to localhost), MAIL
//     FROM, RCPT TO, DATA, QUIT.
//   - The message: an RFC 5322 text/plain UTF-8 message, quoted-printable,
//     CRLF line endings, RFC 2047 subject, Message-ID MessageID(key)
//     (the same id the outbox uses). CR or LF in the recipient or subject
//     is refused, never repaired: header injection is impossible.
//   - Error classification: IsPermanent for 5xx replies, invalid messages
//     and unusable configuration (a retry will not help); 4xx replies,
//     network errors, timeouts and cancellation are transient.
//
// Delivery guarantee: at least once per step attempt. Send returns nil
// only after the server accepted the message (250 after DATA). A
// connection lost after the final "." but before that reply leaves the
// outcome unknown; Send reports a transient error and the runtime's retry
// sends the message again. The copies share one Message-ID, derived from
// the step's idempotency key, so a receiver that deduplicates by
// Message-ID (most mailbox providers and many relays do) shows one
// message; one that does not may show two. Nothing is remembered between
// calls: unlike the outbox, a repeated step after success sends again, and
// the same Message-ID is what makes that harmless where it can be.
//
// Concurrency contract: an *SMTP is immutable after NewSMTP and safe for
// concurrent use; every Send dials its own connection and shares nothing.
// Send starts no goroutine of its own beyond a context.AfterFunc that
// closes the connection when ctx ends, stopped before Send returns, so a
// stalled server never outlives the caller's context (or Config.Timeout).
package mail

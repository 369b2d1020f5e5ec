// Package user is the user kind: a decider over "user:ID" with one
// background step, the welcome email.
//
// It owns the command SignUp {email, name}, the events UserSignedUp {email,
// name}, WelcomeEmailSent {}, StepFailed {step, error, attempts} and
// StepAttemptFailed {step, error, attempt}, the state, the pure functions
// Decide, Evolve, Steps, Complete, RecordAttempt and Attempts, and
// IDForEmail, which POST /signup uses to find the stream of an address. It
// imports only the events package: no I/O, no clock, no goroutines.
//
// Rules, from the protocol and where it is silent:
//
//   - email is trimmed of surrounding space and must then be a bare
//     address as net/mail parses it (no display name, no angle brackets), at
//     most 254 bytes; it is stored trimmed, with its case kept.
//   - name is 1–64 characters (runes) without control characters (it goes
//     into an email subject, where a newline would forge a header).
//   - One user per email: SignUp is valid only on the stream whose id is
//     IDForEmail of its address (the lower-cased, trimmed address hashed,
//     SHA-256, first 16 bytes in hex: 32 characters of [0-9a-f]); on any
//     other stream it is invalid (bad_request), whatever the route. A
//     second SignUp on a stream that has a user is a conflict, whatever
//     its data.
//   - Private makes user streams private to the holder of a verified email
//     (decider.Caller.Email) that maps to the stream, and to admins. With
//     auth off nobody is checked.
//   - The welcome step (StepEmail, key stream + "/welcome") is owed from
//     UserSignedUp until WelcomeEmailSent or StepFailed; welcome_email is
//     pending, done or failed (empty before the sign-up). A completion that
//     is not owed any more is a no-op.
//   - A failed attempt of the welcome step that the runtime will retry is
//     recorded as StepAttemptFailed (RecordAttempt); welcome_email stays
//     pending and the state's "attempts" field keeps {count, last_error,
//     first_at} per step, also after the step completes.
//   - Evolve is strict: an event the state cannot follow, unknown fields or
//     values of the wrong type make it fail (events.ErrInvalidEvent).
//
// Concurrency: pure functions; Evolve never modifies the map of the State it
// is given, so states may be shared between goroutines.
package user

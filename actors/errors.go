package actors

import "errors"

var (
	// ErrUnknownKind: the stream's kind is not served.
	ErrUnknownKind = errors.New("unknown stream kind")
	// ErrUnavailable: the runtime is stopping or the actor did not answer
	// in time.
	ErrUnavailable = errors.New("unavailable")
	// ErrIdempotencyMismatch: a command id that was used before for a
	// different command (type, data or expected version).
	ErrIdempotencyMismatch = errors.New("idempotency key reused for another command")
)

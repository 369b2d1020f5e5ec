package actors

import (
	"errors"
	"fmt"
)

var (
	// ErrUnknownKind: the stream's kind is not served.
	ErrUnknownKind = errors.New("unknown stream kind")
	// ErrUnavailable: the runtime is stopping or the actor did not answer
	// in time.
	ErrUnavailable = errors.New("unavailable")
	// ErrIdempotencyMismatch: a command id that was used before for a
	// different command (type, data or expected version).
	ErrIdempotencyMismatch = errors.New("idempotency key reused for another command")
	// ErrCorruptStream: a stream's stored history cannot be loaded, because
	// its kind cannot fold a stored event (Evolve fails or panics on it).
	// It is a server fault, never the caller's: the concrete error is a
	// *LoadError, which does not match the kind's own sentinels.
	ErrCorruptStream = errors.New("stream cannot be loaded")
)

// LoadError is a stream whose stored events its kind cannot fold. It
// matches ErrCorruptStream and nothing else: the kind's error (typically
// wrapping events.ErrInvalidEvent or decider.ErrUnknownEvent) describes
// the stored log, not the caller's request, so it must not be read as the
// caller's mistake. Cause keeps it for the log.
type LoadError struct {
	Stream  string
	Version uint64 // the version of the event that could not be folded
	Cause   error
}

func (e *LoadError) Error() string {
	return fmt.Sprintf("%s: %s version %d: %v", ErrCorruptStream, e.Stream, e.Version, e.Cause)
}

// Unwrap returns ErrCorruptStream, not Cause: see LoadError.
func (e *LoadError) Unwrap() error { return ErrCorruptStream }

package actors

import "errors"

var (
	// ErrUnknownKind: the stream's kind is not served.
	ErrUnknownKind = errors.New("unknown stream kind")
	// ErrUnavailable: the runtime is stopping or the actor did not answer
	// in time.
	ErrUnavailable = errors.New("unavailable")
)

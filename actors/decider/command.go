package decider

import (
	"encoding/json"
	"errors"
	"time"
)

// Errors a kind's Decide and Evolve return, wrapped with detail. Callers
// test with errors.Is; the transport maps each to one protocol code.
var (
	// ErrInvalid: a command fails validation (bad_request).
	ErrInvalid = errors.New("invalid command")
	// ErrConflict: a command not allowed in the stream's current state.
	ErrConflict = errors.New("conflict")
	// ErrForbidden: the authenticated user may not do that (forbidden).
	ErrForbidden = errors.New("forbidden")
	// ErrUnknownCommand: a kind does not know that command type.
	ErrUnknownCommand = errors.New("unknown command")
	// ErrUnknownEvent: a kind does not know that event type (a broken log).
	ErrUnknownEvent = errors.New("unknown event type")
)

// Command is what a client asks a stream's actor to do. The transport builds
// it; a kind's Decide turns it into events or an error.
type Command struct {
	// Stream is the target stream.
	Stream string
	// Type names the command, e.g. "PostMessage".
	Type string
	// Data is the command's JSON payload.
	Data json.RawMessage
	// ID is an optional idempotency key: a command repeated with the same ID
	// returns the first result and appends nothing.
	ID string
	// User is the authenticated user, empty when auth is off.
	User string
	// Time is when the command was received; deciders never read a clock.
	Time time.Time
}

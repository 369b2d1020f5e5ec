package decider

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/b6368a97/engine/events"
)

// Errors a kind's Decide and Evolve return. Callers test with errors.Is;
// the transport maps each to one protocol code. Decide refuses a command
// with Invalid, Conflict, Forbidden or UnknownCommand, whose message the
// client reads (see events.Refusal); an Evolve failure is the server's
// (the runtime reports a stored event it cannot fold as a corrupt stream)
// and may wrap them with any detail.
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

// Invalid refuses a command that fails validation (ErrInvalid). The
// message is for the client: one clause, e.g. "text must be 1-4096
// characters, got 0".
func Invalid(format string, args ...any) error { return events.Refuse(ErrInvalid, format, args...) }

// Conflict refuses a command the stream's state does not allow
// (ErrConflict), with a message for the client.
func Conflict(format string, args ...any) error { return events.Refuse(ErrConflict, format, args...) }

// Forbidden refuses a command the user may not give (ErrForbidden), with a
// message for the client.
func Forbidden(format string, args ...any) error {
	return events.Refuse(ErrForbidden, format, args...)
}

// UnknownCommand refuses a command type the kind does not know
// (ErrUnknownCommand).
func UnknownCommand(kind, typ string) error {
	return events.Refuse(ErrUnknownCommand, "%s streams have no command %q", kind, events.Clip(typ, 64))
}

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
	// User is the authenticated user, empty when auth is off
	// (Caller.User).
	User string
	// Caller is who sent the command, for a private kind's rule (see
	// Decider.Private); the zero Caller for the engine's own step commands.
	Caller Caller
	// Time is when the command was received; deciders never read a clock.
	Time time.Time
}

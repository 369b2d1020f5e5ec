package events

import (
	"errors"
	"fmt"
)

// Sentinel errors. Stores and kinds wrap them with detail; callers test with
// errors.Is. The transport maps each to one protocol code.
var (
	// ErrWrongExpectedVersion: the stream is not at the version the caller
	// expected. The concrete error is *WrongExpectedVersionError.
	ErrWrongExpectedVersion = errors.New("wrong expected version")
	// ErrInvalidStream: a stream id that does not parse.
	ErrInvalidStream = errors.New("invalid stream id")
	// ErrNoEvents: Append was given no events.
	ErrNoEvents = errors.New("no events to append")
	// ErrInvalidEvent: an event without id or type, or with data that is
	// not a JSON object.
	ErrInvalidEvent = errors.New("invalid event")
	// ErrTooLarge: an event over MaxEventSize.
	ErrTooLarge = errors.New("event too large")
	// ErrDuplicateID: some but not all of a batch's ids are stored already,
	// or they are stored on another stream: not a clean retry.
	ErrDuplicateID = errors.New("event id already used")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store closed")
	// ErrNotFound: nothing is stored under that name.
	ErrNotFound = errors.New("not found")
)

// Refusal is a refused request with a message written for the client that
// made it. It matches its Kind, one of the sentinels of this package or of
// package decider, which decides the protocol code. Message is one clause
// that reads on its own: what was wrong, in the protocol's terms (fields,
// streams, limits), without Go names, the sentinel's own text or the
// context that wrapping adds. Error() is "<Kind>: <Message>", as
// fmt.Errorf("%w: …") would print it, for logs.
//
// The transport never shows a client an error's Error(): a problem's
// detail and an error frame's message are the ClientMessage of the
// outermost error in the chain that has one and matches the code's
// sentinel, or else a fixed sentence per code. Wrapping a Refusal with
// context (fmt.Errorf("%s: %w", stream, err)) changes the log line only.
type Refusal struct {
	Kind    error
	Message string
}

// Refuse returns a *Refusal of kind with a formatted client message.
func Refuse(kind error, format string, args ...any) error {
	return &Refusal{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

func (e *Refusal) Error() string { return e.Kind.Error() + ": " + e.Message }
func (e *Refusal) Unwrap() error { return e.Kind }

// ClientMessage is the message for the client.
func (e *Refusal) ClientMessage() string { return e.Message }

// WrongExpectedVersionError says which version was expected and which one
// the stream is at. It matches ErrWrongExpectedVersion.
type WrongExpectedVersionError struct {
	Stream   string
	Expected ExpectedVersion
	Current  uint64
}

func (e *WrongExpectedVersionError) Error() string {
	return fmt.Sprintf("%s: expected version %s, stream is at %d", e.Stream, e.Expected, e.Current)
}

// ClientMessage is what the client reads (see Refusal).
func (e *WrongExpectedVersionError) ClientMessage() string {
	return fmt.Sprintf("expected version %d, the stream is at %d", int64(e.Expected), e.Current)
}

// Is makes errors.Is(err, ErrWrongExpectedVersion) hold.
func (e *WrongExpectedVersionError) Is(target error) bool { return target == ErrWrongExpectedVersion }

// CurrentVersion extracts the stream's current version from an error that
// matches ErrWrongExpectedVersion.
func CurrentVersion(err error) (uint64, bool) {
	var w *WrongExpectedVersionError
	if errors.As(err, &w) {
		return w.Current, true
	}
	return 0, false
}

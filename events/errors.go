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

package cluster

import (
	"encoding/json"
	"errors"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/b6368a97/engine/actors"
	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

// Every message between nodes is one generic envelope, JSON in a
// protobuf BytesValue (a type protoactor's remote already knows), so that
// kinds need no generated code: the stream names the kind, the command
// carries its type and JSON payload.

// Operations of an envelope.
const (
	opExecute   = "execute"   // a client's command
	opInternal  = "internal"  // a background step's command (engine authority)
	opState     = "state"     // a stream's state as a caller may read it
	opCheckRead = "checkread" // may a caller read a private stream
	opWake      = "wake"      // activate a stream owing background steps
	opPresence  = "presence"  // a node's local members of a room, to its owner
	opMembers   = "members"   // a room's members, from its owner to a node's hub
)

type envelope struct {
	Op     string `json:"op"`
	Stream string `json:"stream"`
	// Deadline is the caller's deadline (Unix milliseconds); 0: none.
	Deadline int64 `json:"deadline,omitempty"`

	// Commands.
	Type     string          `json:"type,omitempty"`
	Data     json.RawMessage `json:"data,omitempty"`
	ID       string          `json:"id,omitempty"`
	User     string          `json:"user,omitempty"`
	Time     time.Time       `json:"time,omitzero"`
	Expected int64           `json:"expected,omitempty"`

	// Reads and commands.
	Caller decider.Caller `json:"caller,omitzero"`

	// Presence.
	Node    string   `json:"node,omitempty"`
	HubID   string   `json:"hub,omitempty"`
	Members []string `json:"members,omitempty"`
	// Watching: the node has subscribers of the room, members or not.
	Watching bool `json:"watching,omitempty"`
}

type reply struct {
	// Moved: the node that received the request does not serve the stream
	// (it is stopping or has lost sight of the cluster's majority); the
	// caller retries, after the membership has settled.
	Moved bool `json:"moved,omitempty"`

	Err *wireError `json:"err,omitempty"`

	Version uint64          `json:"version,omitempty"`
	Events  []events.Event  `json:"events,omitempty"`
	JSON    json.RawMessage `json:"json,omitempty"`
}

// wireError carries an error class and the client's message across nodes,
// so that the caller's node answers the client exactly as the owner's
// runtime would have.
type wireError struct {
	Class   string `json:"class"`
	Message string `json:"message,omitempty"`
	// For wrong_expected_version.
	Expected int64  `json:"expected,omitempty"`
	Current  uint64 `json:"current,omitempty"`
}

// errorClasses: the sentinels a client's error table tells apart, most
// specific first (a LoadError is internal whatever it wraps).
var errorClasses = []struct {
	class string
	err   error
}{
	{"corrupt", actors.ErrCorruptStream},
	{"wrong_expected_version", events.ErrWrongExpectedVersion},
	{"invalid_stream", events.ErrInvalidStream},
	{"invalid", decider.ErrInvalid},
	{"unknown_command", decider.ErrUnknownCommand},
	{"invalid_event", events.ErrInvalidEvent},
	{"unknown_kind", actors.ErrUnknownKind},
	{"forbidden", decider.ErrForbidden},
	{"not_found", events.ErrNotFound},
	{"conflict", decider.ErrConflict},
	{"duplicate_id", events.ErrDuplicateID},
	{"idempotency_mismatch", actors.ErrIdempotencyMismatch},
	{"too_large", events.ErrTooLarge},
	{"unavailable", actors.ErrUnavailable},
	{"closed", events.ErrClosed},
}

type clientMessager interface{ ClientMessage() string }

func encodeError(err error) *wireError {
	if err == nil {
		return nil
	}
	var w *events.WrongExpectedVersionError
	if errors.As(err, &w) {
		return &wireError{Class: "wrong_expected_version", Expected: int64(w.Expected), Current: w.Current}
	}
	for _, c := range errorClasses {
		if errors.Is(err, c.err) {
			we := &wireError{Class: c.class}
			if m := messageOf(err, c.err); m != "" {
				we.Message = m
			}
			return we
		}
	}
	// Not a class a client tells apart: the owner logged the cause; the
	// client reads the generic internal message.
	return &wireError{Class: "internal"}
}

// messageOf is the ClientMessage of the outermost error in err's chain
// that matches kind.
func messageOf(err, kind error) string {
	for err != nil {
		if m, ok := err.(clientMessager); ok && errors.Is(err, kind) {
			if s := m.ClientMessage(); s != "" {
				return s
			}
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return ""
		}
		err = u.Unwrap()
	}
	return ""
}

// errInternal is an owner's error that clients do not tell apart.
var errInternal = errors.New("internal error on the stream's owner")

func decodeError(stream string, we *wireError) error {
	if we == nil {
		return nil
	}
	if we.Class == "wrong_expected_version" {
		return &events.WrongExpectedVersionError{Stream: stream, Expected: events.ExpectedVersion(we.Expected), Current: we.Current}
	}
	for _, c := range errorClasses {
		if c.class != we.Class {
			continue
		}
		if c.err == actors.ErrCorruptStream {
			return &actors.LoadError{Stream: stream, Cause: errInternal}
		}
		if we.Message == "" {
			return c.err
		}
		return events.Refuse(c.err, "%s", we.Message)
	}
	return errInternal
}

func pack(v any) (*wrapperspb.BytesValue, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return wrapperspb.Bytes(b), nil
}

package events

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Event is the one envelope of a stored event. It is the same on disk
// exports, on the WebSocket, in HTTP reads and in testdata/*.jsonl.
//
// When appending, callers fill ID, Type, Data and optionally Time and Meta;
// the store assigns Stream, Version and Position (and Time when it is zero).
type Event struct {
	// Stream is the owning stream, "<kind>:<id>".
	Stream string `json:"stream"`
	// Version is the event's place in its stream: 1, 2, 3 … with no gaps.
	Version uint64 `json:"version"`
	// Position is the event's place in the global log, strictly increasing
	// in commit order with no gaps.
	Position uint64 `json:"position"`
	// ID is unique across the store. Appending an event whose ID is already
	// stored is an idempotent retry (see Store.Append).
	ID string `json:"id"`
	// Type is the explicit event type name, e.g. "MessagePosted".
	Type string `json:"type"`
	// Time is when the event was recorded, UTC with millisecond precision.
	Time time.Time `json:"time"`
	// Data is the event's JSON payload (an object).
	Data json.RawMessage `json:"data"`
	// Meta carries tracing ids; both are optional.
	Meta Meta `json:"meta,omitzero"`
}

// Meta links an event to the message that caused it.
type Meta struct {
	Correlation string `json:"correlation,omitempty"`
	Causation   string `json:"causation,omitempty"`
}

// Limits on what a Store accepts.
const (
	// MaxEventSize bounds Size(e) for one event: 1 MiB.
	MaxEventSize = 1 << 20
	// MaxIDLength bounds Event.ID and Event.Type.
	MaxIDLength = 128
)

// Size is the number of bytes an event occupies for the MaxEventSize check:
// its id, type, data and meta.
func (e Event) Size() int {
	return len(e.ID) + len(e.Type) + len(e.Data) + len(e.Meta.Correlation) + len(e.Meta.Causation)
}

// Validate checks an event given to Append: a non-empty id and type of at
// most MaxIDLength bytes, data that is a JSON object (or empty, meaning {}),
// and the size limit. Errors match ErrInvalidEvent or ErrTooLarge.
func (e Event) Validate() error {
	switch {
	case e.ID == "":
		return fmt.Errorf("%w: empty id", ErrInvalidEvent)
	case len(e.ID) > MaxIDLength:
		return fmt.Errorf("%w: id longer than %d bytes", ErrInvalidEvent, MaxIDLength)
	case e.Type == "":
		return fmt.Errorf("%w: event %s: empty type", ErrInvalidEvent, e.ID)
	case len(e.Type) > MaxIDLength:
		return fmt.Errorf("%w: event %s: type longer than %d bytes", ErrInvalidEvent, e.ID, MaxIDLength)
	case e.Size() > MaxEventSize:
		return Refuse(ErrTooLarge, "an event of %d bytes is over the limit of %d", e.Size(), MaxEventSize)
	}
	if len(e.Data) > 0 && !validObject(e.Data) {
		return fmt.Errorf("%w: event %s: data is not a JSON object", ErrInvalidEvent, e.ID)
	}
	return nil
}

// StreamID is a parsed "<kind>:<id>".
type StreamID struct {
	Kind string
	ID   string
}

func (s StreamID) String() string { return s.Kind + ":" + s.ID }

// ParseStreamID splits and validates "<kind>:<id>": kind is 1–32 of [a-z],
// id is 1–64 of [A-Za-z0-9_.-]. It checks syntax only; whether a kind is
// served is the caller's business. Errors match ErrInvalidStream.
func ParseStreamID(s string) (StreamID, error) {
	kind, id, ok := strings.Cut(s, ":")
	if !ok {
		return StreamID{}, Refuse(ErrInvalidStream, "stream id %q is not <kind>:<id>", Clip(s, 80))
	}
	if len(kind) == 0 || len(kind) > 32 {
		return StreamID{}, Refuse(ErrInvalidStream, "stream id %q: the kind must be 1-32 letters", Clip(s, 80))
	}
	for i := 0; i < len(kind); i++ {
		if c := kind[i]; c < 'a' || c > 'z' {
			return StreamID{}, Refuse(ErrInvalidStream, "stream id %q: the kind must be lower-case letters", Clip(s, 80))
		}
	}
	if len(id) == 0 || len(id) > 64 {
		return StreamID{}, Refuse(ErrInvalidStream, "stream id %q: the id must be 1-64 characters", Clip(s, 80))
	}
	for i := 0; i < len(id); i++ {
		if !idChar(id[i]) {
			return StreamID{}, Refuse(ErrInvalidStream, "stream id %q: the id may hold only A-Z a-z 0-9 _ . -", Clip(s, 80))
		}
	}
	return StreamID{Kind: kind, ID: id}, nil
}

// ValidStreamID reports whether s parses.
func ValidStreamID(s string) bool {
	_, err := ParseStreamID(s)
	return err == nil
}

func idChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
}

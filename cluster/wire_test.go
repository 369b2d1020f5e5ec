package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/b6368a97/engine/actors"
	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

// An error crossing nodes keeps what a client's error table tells apart:
// its class and its client message.
func TestErrorsCrossNodesWithTheirClass(t *testing.T) {
	cases := []struct {
		err  error
		is   error
		msg  string
		more func(t *testing.T, got error)
	}{
		{err: decider.Invalid("text is empty"), is: decider.ErrInvalid, msg: "text is empty"},
		{err: fmt.Errorf("wrapped: %w", decider.Conflict("order is ready")), is: decider.ErrConflict, msg: "order is ready"},
		{err: decider.Forbidden("not yours"), is: decider.ErrForbidden, msg: "not yours"},
		{err: decider.UnknownCommand("room", "Dance"), is: decider.ErrUnknownCommand},
		{err: events.Refuse(events.ErrNotFound, "stream room:a has no events"), is: events.ErrNotFound, msg: "stream room:a has no events"},
		{err: events.Refuse(actors.ErrIdempotencyMismatch, "command id %q was used before", "k"), is: actors.ErrIdempotencyMismatch},
		{err: fmt.Errorf("%w: room:a: gone", actors.ErrUnavailable), is: actors.ErrUnavailable},
		{err: &actors.LoadError{Stream: "room:a", Version: 3, Cause: decider.ErrInvalid}, is: actors.ErrCorruptStream,
			more: func(t *testing.T, got error) {
				if errors.Is(got, decider.ErrInvalid) {
					t.Error("a corrupt stream reads as the caller's invalid request")
				}
			}},
		{err: &events.WrongExpectedVersionError{Stream: "room:a", Expected: events.Exactly(2), Current: 5}, is: events.ErrWrongExpectedVersion,
			more: func(t *testing.T, got error) {
				if v, ok := events.CurrentVersion(got); !ok || v != 5 {
					t.Errorf("current version %d, %v; want 5", v, ok)
				}
			}},
		{err: errors.New("disk on fire"), is: errInternal},
	}
	for _, c := range cases {
		t.Run(c.err.Error(), func(t *testing.T) {
			b, err := pack(&reply{Err: encodeError(c.err)})
			if err != nil {
				t.Fatal(err)
			}
			var rep reply
			if err := jsonUnmarshal(b.GetValue(), &rep); err != nil {
				t.Fatal(err)
			}
			got := decodeError("room:a", rep.Err)
			if !errors.Is(got, c.is) {
				t.Fatalf("decoded %v, which does not match %v", got, c.is)
			}
			if c.msg != "" {
				var m clientMessager
				if !errors.As(got, &m) || m.ClientMessage() != c.msg {
					t.Fatalf("client message of %v: want %q", got, c.msg)
				}
			}
			if c.more != nil {
				c.more(t, got)
			}
		})
	}
	if decodeError("room:a", encodeError(nil)) != nil {
		t.Fatal("no error decodes as an error")
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

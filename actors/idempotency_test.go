package actors

import (
	"encoding/json"
	"errors"
	"reflect"
	"sync"
	"testing"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

// A command id is a promise that the request is the same: a repeat with
// another type, other data or another expected version is refused, the way
// Stripe refuses a reused idempotency key; white space in the data does not
// make a command different.
func TestIdempotencyMismatch(t *testing.T) {
	r := rtStart(t, rtConfig(rtMemStore(t)))
	ctx := rtCtx(t)
	cmd := func(typ, data string) decider.Command {
		return decider.Command{Stream: "counter:m", Type: typ, ID: "k1", Data: json.RawMessage(data)}
	}
	first, err := r.Execute(ctx, cmd("IfBelow", `{"limit":5}`), events.AnyVersion)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		cmd      decider.Command
		expected events.ExpectedVersion
		mismatch bool
	}{
		{"same command", cmd("IfBelow", `{"limit":5}`), events.AnyVersion, false},
		{"same data, other spacing", cmd("IfBelow", "{ \"limit\" : 5 }"), events.AnyVersion, false},
		{"other data", cmd("IfBelow", `{"limit":6}`), events.AnyVersion, true},
		{"other type", cmd("Inc", `{"limit":5}`), events.AnyVersion, true},
		{"other expected version", cmd("IfBelow", `{"limit":5}`), events.Exactly(0), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := r.Execute(ctx, tt.cmd, tt.expected)
			if tt.mismatch {
				if !errors.Is(err, ErrIdempotencyMismatch) {
					t.Fatalf("Execute = %+v, %v; want ErrIdempotencyMismatch", res, err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(res, first) {
				t.Fatalf("Execute = %+v, %v; want the first result %+v", res, err, first)
			}
		})
	}
	if view, err := r.State(ctx, "counter:m", decider.Caller{}); err != nil || view.Version != 1 {
		t.Fatalf("State after the repeats = v%d, %v; want version 1", view.Version, err)
	}
}

// Within one batch (commands that queued behind the same append), the
// second use of an id with another command is refused too.
func TestIdempotencyMismatchInOneBatch(t *testing.T) {
	r := rtStart(t, rtConfig(rtMemStore(t)))
	ctx := rtCtx(t)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, data := range []string{`{"limit":5}`, `{"limit":6}`} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = r.Execute(ctx, decider.Command{Stream: "counter:b", Type: "IfBelow", ID: "k", Data: json.RawMessage(data)}, events.AnyVersion)
		}()
	}
	wg.Wait()
	mismatches := 0
	for _, err := range errs {
		switch {
		case errors.Is(err, ErrIdempotencyMismatch):
			mismatches++
		case err != nil:
			t.Fatalf("Execute: %v", err)
		}
	}
	if mismatches != 1 {
		t.Fatalf("errors %v: want exactly one ErrIdempotencyMismatch", errs)
	}
}

package order_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/actors/order"
	"github.com/b6368a97/engine/events"
)

func (h *history) retry(step, errText string, attempt int) *history {
	h.t.Helper()
	return h.apply(order.RecordAttempt(h.s, decider.StepResult{Step: step, Err: errText, Attempts: attempt, Time: t0}))
}

func TestRecordAttempt(t *testing.T) {
	tests := []struct {
		name      string
		build     func(*history)
		res       decider.StepResult
		wantEvent string // "" for no event
	}{
		{"first owed step", func(h *history) { h.place("ann@example.com") },
			decider.StepResult{Step: "kitchen", Err: "unavailable", Attempts: 1}, `{"step":"kitchen","error":"unavailable","attempt":1}`},
		{"a step that is not first", func(h *history) { h.place("ann@example.com") },
			decider.StepResult{Step: "receipt", Err: "451", Attempts: 1}, ""},
		{"a step not owed", func(h *history) { h.place("") },
			decider.StepResult{Step: "receipt", Err: "451", Attempts: 1}, ""},
		{"an attempt already recorded", func(h *history) { h.place("ann@example.com").retry("kitchen", "x", 2) },
			decider.StepResult{Step: "kitchen", Err: "x", Attempts: 2}, ""},
		{"success is not an attempt to record", func(h *history) { h.place("ann@example.com") },
			decider.StepResult{Step: "kitchen", Attempts: 1}, ""},
		{"the receipt once it is first", func(h *history) {
			h.place("ann@example.com").complete("kitchen", "").complete("cook", "").complete("ticket", "")
		}, decider.StepResult{Step: "receipt", Err: "451 4.3.0 busy", Attempts: 3}, `{"step":"receipt","error":"451 4.3.0 busy","attempt":3}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHistory(t)
			tc.build(h)
			evs, err := order.RecordAttempt(h.s, tc.res)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantEvent == "" {
				if len(evs) != 0 {
					t.Fatalf("got %v, want no event", evs)
				}
				return
			}
			if len(evs) != 1 || evs[0].Type != order.EventStepAttemptFailed || string(evs[0].Data) != tc.wantEvent {
				t.Fatalf("got %+v, want StepAttemptFailed %s", evs, tc.wantEvent)
			}
		})
	}
}

func TestAttemptsInState(t *testing.T) {
	h := newHistory(t).place("ann@example.com").complete("kitchen", "").complete("cook", "").complete("ticket", "")
	before := h.s.Steps
	h.retry("receipt", "451 first", 1)
	first := h.s.Attempts["receipt"].First
	h.retry("receipt", "451 second", 2)
	if h.s.Steps != before {
		t.Fatalf("steps changed by StepAttemptFailed: %+v -> %+v", before, h.s.Steps)
	}
	got := order.Attempts(h.s, "receipt")
	if got.Count != 2 || got.LastError != "451 second" || !got.First.Equal(first) || first.IsZero() {
		t.Fatalf("attempts = %+v (first %v)", got, first)
	}
	b, err := json.Marshal(h.s)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"attempts":{"receipt":{"count":2,"last_error":"451 second","first_at":"`) ||
		!strings.Contains(string(b), `"steps":{"kitchen":"done","cook":"done","receipt":"pending"}`) {
		t.Fatalf("state JSON %s", b)
	}
	// The history stays after the step completes (and a state without
	// attempts has no "attempts" field).
	h.complete("receipt", "")
	if h.s.Attempts["receipt"].Count != 2 || h.s.Steps.Receipt != order.Done {
		t.Fatalf("after the receipt: %+v", h.s)
	}
	b, _ = json.Marshal(newHistory(t).place("").s)
	if strings.Contains(string(b), "attempts") {
		t.Fatalf("state without attempts: %s", b)
	}
}

func TestEvolveStepAttemptFailed(t *testing.T) {
	placed := func() order.State { return newHistory(t).place("ann@example.com").s }
	tests := []struct {
		name  string
		state order.State
		data  string
	}{
		{"step not owed", newHistory(t).place("").s, `{"step":"receipt","error":"x","attempt":1}`},
		{"unknown step", placed(), `{"step":"dessert","error":"x","attempt":1}`},
		{"attempt 0", placed(), `{"step":"kitchen","error":"x","attempt":0}`},
		{"unknown field", placed(), `{"step":"kitchen","error":"x","attempt":1,"extra":1}`},
		{"attempt not after the recorded ones", newHistory(t).place("a@b.co").retry("kitchen", "x", 2).s, `{"step":"kitchen","error":"x","attempt":2}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := events.Event{Stream: stream, Version: tc.state.Version + 1, Time: t0.Add(time.Hour), Type: order.EventStepAttemptFailed, Data: json.RawMessage(tc.data)}
			if _, err := order.Evolve(tc.state, ev); !errors.Is(err, events.ErrInvalidEvent) {
				t.Fatalf("Evolve = %v, want ErrInvalidEvent", err)
			}
		})
	}
	t.Run("does not modify the given state", func(t *testing.T) {
		s := newHistory(t).place("a@b.co").retry("kitchen", "x", 1).s
		ev := events.Event{Stream: stream, Version: s.Version + 1, Time: t0, Type: order.EventStepAttemptFailed, Data: json.RawMessage(`{"step":"kitchen","error":"y","attempt":2}`)}
		if _, err := order.Evolve(s, ev); err != nil {
			t.Fatal(err)
		}
		if s.Attempts["kitchen"].Count != 1 {
			t.Fatalf("the old state's attempts changed: %+v", s.Attempts)
		}
	})
}

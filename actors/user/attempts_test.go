package user_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/actors/user"
	"github.com/b6368a97/engine/events"
)

func TestWelcomeAttempts(t *testing.T) {
	signed, err := signUp(t, user.Initial(stream), `{"email":"ann@example.com","name":"Ann"}`)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		res  decider.StepResult
		want string // data of the StepAttemptFailed, "" for none
	}{
		{"a failed attempt", decider.StepResult{Step: "welcome", Err: "451 busy", Attempts: 1}, `{"step":"welcome","error":"451 busy","attempt":1}`},
		{"another step", decider.StepResult{Step: "other", Err: "451", Attempts: 1}, ""},
		{"no error", decider.StepResult{Step: "welcome", Attempts: 1}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			evs, err := user.RecordAttempt(signed, tc.res)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.want == "" && len(evs) != 0:
				t.Fatalf("got %v, want none", evs)
			case tc.want != "" && (len(evs) != 1 || evs[0].Type != user.EventStepAttemptFailed || string(evs[0].Data) != tc.want):
				t.Fatalf("got %+v, want %s", evs, tc.want)
			}
		})
	}

	s := signed
	for i := 1; i <= 2; i++ {
		evs, err := user.RecordAttempt(s, decider.StepResult{Step: "welcome", Err: "451 busy", Attempts: i})
		if err != nil {
			t.Fatal(err)
		}
		s = apply(t, s, evs)
	}
	if s.WelcomeEmail != user.Pending {
		t.Fatalf("welcome_email = %q after failed attempts, want pending", s.WelcomeEmail)
	}
	if a := user.Attempts(s, "welcome"); a.Count != 2 || a.LastError != "451 busy" || a.First.IsZero() {
		t.Fatalf("attempts = %+v", a)
	}
	if evs, _ := user.RecordAttempt(s, decider.StepResult{Step: "welcome", Err: "again", Attempts: 2}); len(evs) != 0 {
		t.Fatalf("a recorded attempt recorded again: %v", evs)
	}
	done := apply(t, s, must(user.Complete(s, decider.StepResult{Step: "welcome", Attempts: 3})))
	if done.WelcomeEmail != user.Done || done.Attempts["welcome"].Count != 2 {
		t.Fatalf("after delivery: %+v", done)
	}
	// Not owed any more: an attempt event cannot follow.
	ev := events.Event{Stream: stream, Version: done.Version + 1, Type: user.EventStepAttemptFailed, Data: json.RawMessage(`{"step":"welcome","error":"x","attempt":3}`)}
	if _, err := user.Evolve(done, ev); !errors.Is(err, events.ErrInvalidEvent) {
		t.Fatalf("attempt after delivery: %v, want ErrInvalidEvent", err)
	}
}

func must(evs []events.Event, err error) []events.Event {
	if err != nil {
		panic(err)
	}
	return evs
}

package kinds_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/actors/kinds"
	"github.com/b6368a97/engine/events"
)

func TestRegistry(t *testing.T) {
	tests := []struct {
		name     string
		presence bool
		steps    bool
	}{
		{"room", true, false},
		{"game", false, false},
		{"order", false, true},
		{"user", false, true},
		{"kitchen", false, false},
	}
	all := kinds.All(kinds.Config{})
	if len(all) != len(tests) {
		t.Fatalf("All() has %d kinds, want %d", len(all), len(tests))
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if all[i].Name() != tt.name {
				t.Errorf("All()[%d] is %q", i, all[i].Name())
			}
			k, ok := kinds.ByName(tt.name)
			if !ok || k.Name() != tt.name {
				t.Fatalf("ByName(%q) = %v, %v", tt.name, k, ok)
			}
			if k.HasPresence() != tt.presence {
				t.Errorf("HasPresence = %v", k.HasPresence())
			}
			s := k.Initial(tt.name + ":x")
			b, err := k.MarshalState(s)
			if err != nil {
				t.Fatal(err)
			}
			var fields map[string]json.RawMessage
			if err := json.Unmarshal(b, &fields); err != nil {
				t.Fatal(err)
			}
			if string(fields["stream"]) != `"`+tt.name+`:x"` || string(fields["version"]) != "0" {
				t.Errorf("initial state = %s", b)
			}
			for f, v := range fields {
				if string(v) == "null" {
					t.Errorf("initial state has %s: null", f)
				}
			}
			back, err := k.UnmarshalState(b)
			if err != nil {
				t.Fatal(err)
			}
			if b2, _ := k.MarshalState(back); string(b2) != string(b) {
				t.Errorf("state does not round-trip: %s then %s", b, b2)
			}
			_, err = k.Decide(s, decider.Command{Stream: tt.name + ":x", Type: "NoSuchCommand", Time: time.Now()})
			if !errors.Is(err, decider.ErrUnknownCommand) {
				t.Errorf("unknown command: err = %v", err)
			}
			_, err = k.Evolve(s, events.Event{Stream: tt.name + ":x", Version: 1, Type: "NoSuchEvent", Data: json.RawMessage(`{}`)})
			if !errors.Is(err, decider.ErrUnknownEvent) {
				t.Errorf("unknown event: err = %v", err)
			}
			if !tt.steps {
				if _, err := k.Complete(s, decider.StepResult{Step: "x"}); err == nil {
					t.Error("Complete on a kind without steps succeeded")
				}
			}
		})
	}
	if _, ok := kinds.ByName("chat"); ok {
		t.Error(`ByName("chat") found a kind`)
	}
}

// TestPresence checks the room's WithMembers through the erased Kind, as
// the runtime calls it.
func TestPresence(t *testing.T) {
	k, _ := kinds.ByName("room")
	s := k.WithMembers(k.Initial("room:lobby"), []string{"bob", "ann"})
	b, err := k.MarshalState(s)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"stream":"room:lobby","version":0,"members":["ann","bob"],"messages":[]}`; string(b) != want {
		t.Errorf("state = %s, want %s", b, want)
	}
}

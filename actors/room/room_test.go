package room_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/actors/room"
	"github.com/b6368a97/engine/events"
)

var t0 = time.Date(2026, 11, 25, 16, 37, 55, 123_000_000, time.UTC)

func cmd(typ, data string) decider.Command {
	return decider.Command{Stream: "room:lobby", Type: typ, Data: json.RawMessage(data), Time: t0}
}

func post(user, text string) string {
	b, _ := json.Marshal(room.PostMessage{User: user, Text: text})
	return string(b)
}

func TestDecide(t *testing.T) {
	tests := []struct {
		name     string
		cmd      decider.Command
		authUser string
		wantErr  error
		want     string // the event's data
	}{
		{name: "valid", cmd: cmd("PostMessage", `{"user":"ann","text":"hi"}`), want: `{"user":"ann","text":"hi"}`},
		{name: "html is kept verbatim", cmd: cmd("PostMessage", `{"user":"ann","text":"<b>&</b>"}`), want: `{"user":"ann","text":"<b>&</b>"}`},
		{name: "user 1 char", cmd: cmd("PostMessage", post("a", "x")), want: post("a", "x")},
		{name: "user 64 chars", cmd: cmd("PostMessage", post(strings.Repeat("u", 64), "x")), want: post(strings.Repeat("u", 64), "x")},
		{name: "user 64 runes multibyte", cmd: cmd("PostMessage", post(strings.Repeat("é", 64), "x")), want: post(strings.Repeat("é", 64), "x")},
		{name: "user 65 chars", cmd: cmd("PostMessage", post(strings.Repeat("u", 65), "x")), wantErr: decider.ErrInvalid},
		{name: "user empty", cmd: cmd("PostMessage", post("", "x")), wantErr: decider.ErrInvalid},
		{name: "user missing", cmd: cmd("PostMessage", `{"text":"x"}`), wantErr: decider.ErrInvalid},
		{name: "user with newline", cmd: cmd("PostMessage", post("a\nb", "x")), wantErr: decider.ErrInvalid},
		{name: "text 4096 chars", cmd: cmd("PostMessage", post("ann", strings.Repeat("t", 4096))), want: post("ann", strings.Repeat("t", 4096))},
		{name: "text 4096 runes multibyte", cmd: cmd("PostMessage", post("ann", strings.Repeat("€", 4096))), want: post("ann", strings.Repeat("€", 4096))},
		{name: "text 4097 chars", cmd: cmd("PostMessage", post("ann", strings.Repeat("t", 4097))), wantErr: decider.ErrInvalid},
		{name: "text empty", cmd: cmd("PostMessage", post("ann", "")), wantErr: decider.ErrInvalid},
		{name: "text with newlines", cmd: cmd("PostMessage", post("ann", "a\nb")), want: post("ann", "a\nb")},
		{name: "invalid UTF-8", cmd: cmd("PostMessage", "{\"user\":\"ann\",\"text\":\"\xff\"}"), wantErr: decider.ErrInvalid},
		{name: "unknown field", cmd: cmd("PostMessage", `{"user":"ann","text":"hi","color":"red"}`), wantErr: decider.ErrInvalid},
		{name: "wrong type", cmd: cmd("PostMessage", `{"user":"ann","text":42}`), wantErr: decider.ErrInvalid},
		{name: "not an object", cmd: cmd("PostMessage", `["ann","hi"]`), wantErr: decider.ErrInvalid},
		{name: "null data", cmd: cmd("PostMessage", `null`), wantErr: decider.ErrInvalid},
		{name: "empty data", cmd: cmd("PostMessage", ``), wantErr: decider.ErrInvalid},
		{name: "trailing data", cmd: cmd("PostMessage", `{"user":"ann","text":"hi"} {}`), wantErr: decider.ErrInvalid},
		{name: "malformed JSON", cmd: cmd("PostMessage", `{"user":"ann",`), wantErr: decider.ErrInvalid},
		{name: "unknown command", cmd: cmd("DeleteMessage", `{}`), wantErr: decider.ErrUnknownCommand},
		{name: "auth: user taken from the token", cmd: cmd("PostMessage", `{"text":"hi"}`), authUser: "bob", want: `{"user":"bob","text":"hi"}`},
		{name: "auth: same user", cmd: cmd("PostMessage", `{"user":"bob","text":"hi"}`), authUser: "bob", want: `{"user":"bob","text":"hi"}`},
		{name: "auth: other user", cmd: cmd("PostMessage", `{"user":"ann","text":"hi"}`), authUser: "bob", wantErr: decider.ErrForbidden},
		{name: "auth: token user too long", cmd: cmd("PostMessage", `{"text":"hi"}`), authUser: strings.Repeat("b", 65), wantErr: decider.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.cmd
			c.User = tt.authUser
			evs, err := room.Decide(room.Initial("room:lobby"), c)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if evs != nil {
					t.Fatalf("events %v with an error", evs)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != 1 || evs[0].Type != room.EventMessagePosted {
				t.Fatalf("events = %+v", evs)
			}
			e := evs[0]
			if e.Stream != "" || e.Version != 0 || e.ID != "" || !e.Time.IsZero() {
				t.Errorf("Decide set more than Type and Data: %+v", e)
			}
			if string(e.Data) != tt.want {
				t.Errorf("data = %.200s, want %.200s", e.Data, tt.want)
			}
		})
	}
}

func posted(v uint64, user, text string) events.Event {
	return events.Event{Stream: "room:lobby", Version: v, Type: room.EventMessagePosted,
		Time: t0.Add(time.Duration(v) * time.Second), Data: json.RawMessage(post(user, text))}
}

func TestEvolve(t *testing.T) {
	tests := []struct {
		name    string
		ev      events.Event
		wantErr error
	}{
		{name: "message posted", ev: posted(1, "ann", "hi")},
		{name: "unknown event", ev: events.Event{Stream: "room:lobby", Version: 1, Type: "MessageDeleted", Data: json.RawMessage(`{}`)}, wantErr: decider.ErrUnknownEvent},
		{name: "unknown field", ev: events.Event{Stream: "room:lobby", Version: 1, Type: "MessagePosted", Data: json.RawMessage(`{"user":"a","text":"b","x":1}`)}, wantErr: events.ErrInvalidEvent},
		{name: "wrong type", ev: events.Event{Stream: "room:lobby", Version: 1, Type: "MessagePosted", Data: json.RawMessage(`{"user":1,"text":"b"}`)}, wantErr: events.ErrInvalidEvent},
		{name: "missing text", ev: events.Event{Stream: "room:lobby", Version: 1, Type: "MessagePosted", Data: json.RawMessage(`{"user":"a"}`)}, wantErr: events.ErrInvalidEvent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s0 := room.Initial("room:lobby")
			s, err := room.Evolve(s0, tt.ev)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := `{"stream":"room:lobby","version":1,"members":[],"messages":[{"version":1,"user":"ann","text":"hi","time":"2026-11-25T16:37:56.123Z"}]}`
			if got := mustJSON(t, s); got != want {
				t.Errorf("state = %s\nwant    %s", got, want)
			}
		})
	}
}

func TestEvolveKeepsLastMessages(t *testing.T) {
	for _, n := range []int{1, 99, 100, 101, 250} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			s := room.Initial("room:lobby")
			var states []room.State
			for v := 1; v <= n; v++ {
				var err error
				if s, err = room.Evolve(s, posted(uint64(v), "ann", fmt.Sprint("m", v))); err != nil {
					t.Fatal(err)
				}
				states = append(states, s)
			}
			want := min(n, room.MaxMessages)
			if len(s.Messages) != want {
				t.Fatalf("%d messages kept, want %d", len(s.Messages), want)
			}
			if first := s.Messages[0].Version; first != uint64(n-want+1) {
				t.Errorf("oldest kept message is version %d, want %d", first, n-want+1)
			}
			if last := s.Messages[len(s.Messages)-1]; last.Version != uint64(n) || last.Text != fmt.Sprint("m", n) {
				t.Errorf("newest message = %+v", last)
			}
			if s.Version != uint64(n) {
				t.Errorf("version = %d", s.Version)
			}
			// Evolve is pure: every intermediate state still holds what it
			// held when it was returned.
			for i, st := range states {
				v := i + 1
				if got := st.Messages[len(st.Messages)-1].Version; got != uint64(v) {
					t.Fatalf("state %d was changed by a later Evolve: last message is %d", v, got)
				}
			}
		})
	}
}

func TestMembers(t *testing.T) {
	s, err := room.Evolve(room.Initial("room:lobby"), posted(1, "ann", "hi"))
	if err != nil {
		t.Fatal(err)
	}
	in := []string{"cy", "ann", "bob", "ann"}
	got := room.WithMembers(s, in)
	if strings.Join(got.Members, ",") != "ann,bob,cy" {
		t.Errorf("members = %v", got.Members)
	}
	if strings.Join(in, ",") != "cy,ann,bob,ann" {
		t.Errorf("WithMembers modified its argument: %v", in)
	}
	if len(s.Members) != 0 {
		t.Errorf("WithMembers modified the state it was given: %v", s.Members)
	}
	// Evolve never sets presence.
	s2, err := room.Evolve(s, posted(2, "bob", "yo"))
	if err != nil {
		t.Fatal(err)
	}
	if len(s2.Members) != 0 {
		t.Errorf("Evolve set members: %v", s2.Members)
	}
	if js := mustJSON(t, room.WithMembers(s, nil)); !strings.Contains(js, `"members":[]`) {
		t.Errorf("nil members marshal as %s", js)
	}
}

func TestStateJSONHasNoNulls(t *testing.T) {
	for name, s := range map[string]room.State{"initial": room.Initial("room:x"), "zero": {}} {
		t.Run(name, func(t *testing.T) {
			js := mustJSON(t, s)
			if strings.Contains(js, "null") || !strings.Contains(js, `"members":[]`) || !strings.Contains(js, `"messages":[]`) {
				t.Errorf("state = %s", js)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestEvolveForks: Evolve appends in place for the newest state only; a
// state evolved twice (a failed append's tentative state, then the one the
// store took; two goroutines) gives two states that do not see each other.
func TestEvolveForks(t *testing.T) {
	for _, n := range []int{0, 1, 7, 99, 100, 150, 199, 200, 201} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			s := room.Initial("room:lobby")
			for v := 1; v <= n; v++ {
				var err error
				if s, err = room.Evolve(s, posted(uint64(v), "ann", fmt.Sprint("m", v))); err != nil {
					t.Fatal(err)
				}
			}
			before := mustJSON(t, s)
			results := make([]room.State, 4)
			var wg sync.WaitGroup
			for i := range results {
				wg.Go(func() {
					next, err := room.Evolve(s, posted(uint64(n+1), fmt.Sprint("u", i), "x"))
					if err != nil {
						t.Error(err)
						return
					}
					// One more on top, which may append in place.
					results[i], err = room.Evolve(next, posted(uint64(n+2), fmt.Sprint("u", i), "y"))
					if err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			if mustJSON(t, s) != before {
				t.Fatalf("the shared state changed")
			}
			for i, r := range results {
				m := r.Messages
				if len(m) != min(n+2, room.MaxMessages) || m[len(m)-2].User != fmt.Sprint("u", i) || m[len(m)-1].Text != "y" {
					t.Fatalf("fork %d: %d messages, last %+v", i, len(m), m[len(m)-2:])
				}
				// A caller's append does not write into the log.
				_ = append(r.Messages, room.Message{User: "intruder"})
			}
			for i, r := range results {
				if u := r.Messages[len(r.Messages)-1].User; u != fmt.Sprint("u", i) {
					t.Fatalf("fork %d sees %q", i, u)
				}
			}
		})
	}
}

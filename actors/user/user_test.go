package user_test

import (
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/actors/user"
	"github.com/b6368a97/engine/events"
)

// stream is ann@example.com's: user.IDForEmail of the address.
const stream = "user:71d4f55f72fa128dfb468a1a3901507c"

var t0 = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

func signUp(t *testing.T, s user.State, data string) (user.State, error) {
	t.Helper()
	evs, err := user.Decide(s, decider.Command{Stream: stream, Type: "SignUp", Data: json.RawMessage(data), Time: t0})
	if err != nil {
		return s, err
	}
	return apply(t, s, evs), nil
}

func apply(t *testing.T, s user.State, evs []events.Event) user.State {
	t.Helper()
	for _, e := range evs {
		e.Stream, e.Version, e.Time = stream, s.Version+1, t0
		var err error
		if s, err = user.Evolve(s, e); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func TestDecide(t *testing.T) {
	n64 := strings.Repeat("n", 64)
	tests := []struct {
		name    string
		signed  bool // a user signed up on the stream before
		typ     string
		data    string
		want    string
		wantErr error
	}{
		{name: "sign up", data: `{"email":"ann@example.com","name":"Ann"}`, want: `UserSignedUp {"email":"ann@example.com","name":"Ann"}`},
		{name: "email is trimmed, its stream found in any case", data: `{"email":"  Ann@Example.com ","name":"Ann"}`, want: `UserSignedUp {"email":"Ann@Example.com","name":"Ann"}`},
		{name: "name 64", data: `{"email":"ann@example.com","name":"` + n64 + `"}`, want: `UserSignedUp {"email":"ann@example.com","name":"` + n64 + `"}`},
		{name: "name 65", data: `{"email":"ann@example.com","name":"` + n64 + `x"}`, wantErr: decider.ErrInvalid},
		{name: "name empty", data: `{"email":"ann@example.com","name":""}`, wantErr: decider.ErrInvalid},
		{name: "name missing", data: `{"email":"ann@example.com"}`, wantErr: decider.ErrInvalid},
		{name: "name with CRLF", data: `{"email":"ann@example.com","name":"Ann\r\nBcc: x@y.z"}`, wantErr: decider.ErrInvalid},
		{name: "email missing", data: `{"name":"Ann"}`, wantErr: decider.ErrInvalid},
		{name: "email invalid", data: `{"email":"ann.example.com","name":"Ann"}`, wantErr: decider.ErrInvalid},
		{name: "email with display name", data: `{"email":"Ann <ann@example.com>","name":"Ann"}`, wantErr: decider.ErrInvalid},
		{name: "email not a string", data: `{"email":1,"name":"Ann"}`, wantErr: decider.ErrInvalid},
		{name: "unknown field", data: `{"email":"ann@example.com","name":"Ann","age":3}`, wantErr: decider.ErrInvalid},
		{name: "second sign-up", signed: true, data: `{"email":"ann@example.com","name":"Ann"}`, wantErr: decider.ErrConflict},
		{name: "second sign-up in another spelling", signed: true, data: `{"email":"ANN@example.com","name":"Ann"}`, wantErr: decider.ErrConflict},
		{name: "the email of another stream", data: `{"email":"bob@example.com","name":"Bob"}`, wantErr: decider.ErrInvalid},
		{name: "the email of another stream, signed up", signed: true, data: `{"email":"victim@example.com","name":"V"}`, wantErr: decider.ErrInvalid},
		{name: "unknown command", typ: "Rename", data: `{"name":"A"}`, wantErr: decider.ErrUnknownCommand},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := user.Initial(stream)
			if tt.signed {
				var err error
				if s, err = signUp(t, s, `{"email":"ann@example.com","name":"Ann"}`); err != nil {
					t.Fatal(err)
				}
			}
			typ := tt.typ
			if typ == "" {
				typ = "SignUp"
			}
			evs, err := user.Decide(s, decider.Command{Stream: stream, Type: typ, Data: json.RawMessage(tt.data), Time: t0})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != 1 {
				t.Fatalf("events = %+v", evs)
			}
			if got := evs[0].Type + " " + string(evs[0].Data); got != tt.want {
				t.Errorf("event = %s\nwant    %s", got, tt.want)
			}
		})
	}
}

func TestWelcomeStep(t *testing.T) {
	s, err := signUp(t, user.Initial(stream), `{"email":"ann@example.com","name":"Ann"}`)
	if err != nil {
		t.Fatal(err)
	}
	steps := user.Steps(s)
	if len(steps) != 1 {
		t.Fatalf("steps = %+v", steps)
	}
	w := steps[0]
	if w.Name != "welcome" || w.Key != "user:71d4f55f72fa128dfb468a1a3901507c/welcome" || w.Action != decider.StepEmail || w.Email == nil ||
		w.Email.To != "ann@example.com" || w.Email.Subject != "Welcome, Ann!" || !strings.Contains(w.Email.Body, "Hi Ann,") {
		t.Errorf("welcome step = %+v %+v", w, w.Email)
	}
	if got := user.Steps(user.Initial(stream)); len(got) != 0 {
		t.Errorf("steps before sign-up = %+v", got)
	}

	tests := []struct {
		name    string
		results []decider.StepResult
		want    string
	}{
		{name: "sent", results: []decider.StepResult{{Step: "welcome"}},
			want: `{"stream":"user:71d4f55f72fa128dfb468a1a3901507c","version":2,"email":"ann@example.com","name":"Ann","welcome_email":"done"}`},
		{name: "sent twice is a no-op", results: []decider.StepResult{{Step: "welcome"}, {Step: "welcome"}},
			want: `{"stream":"user:71d4f55f72fa128dfb468a1a3901507c","version":2,"email":"ann@example.com","name":"Ann","welcome_email":"done"}`},
		{name: "failed", results: []decider.StepResult{{Step: "welcome", Err: "smtp: 451", Attempts: 5}},
			want: `{"stream":"user:71d4f55f72fa128dfb468a1a3901507c","version":2,"email":"ann@example.com","name":"Ann","welcome_email":"failed","errors":{"welcome":"smtp: 451"}}`},
		{name: "sent after failing is a no-op", results: []decider.StepResult{{Step: "welcome", Err: "x", Attempts: 1}, {Step: "welcome"}},
			want: `{"stream":"user:71d4f55f72fa128dfb468a1a3901507c","version":2,"email":"ann@example.com","name":"Ann","welcome_email":"failed","errors":{"welcome":"x"}}`},
		{name: "unknown step is a no-op", results: []decider.StepResult{{Step: "receipt"}},
			want: `{"stream":"user:71d4f55f72fa128dfb468a1a3901507c","version":1,"email":"ann@example.com","name":"Ann","welcome_email":"pending"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := s
			for _, r := range tt.results {
				evs, err := user.Complete(st, r)
				if err != nil {
					t.Fatal(err)
				}
				st = apply(t, st, evs)
			}
			b, _ := json.Marshal(st)
			if string(b) != tt.want {
				t.Errorf("state = %s\nwant    %s", b, tt.want)
			}
			if len(user.Steps(st)) != 0 && st.WelcomeEmail != user.Pending {
				t.Errorf("a finished welcome step is still owed")
			}
		})
	}
	evs, err := user.Complete(s, decider.StepResult{Step: "welcome", Err: "x", Attempts: 3})
	if err != nil || len(evs) != 1 || string(evs[0].Data) != `{"step":"welcome","error":"x","attempts":3}` {
		t.Errorf("StepFailed = %+v, %v", evs, err)
	}
}

func TestEvolve(t *testing.T) {
	ev := func(typ, data string) events.Event { return events.Event{Type: typ, Data: json.RawMessage(data)} }
	signed := ev("UserSignedUp", `{"email":"a@b.c","name":"A"}`)
	tests := []struct {
		name    string
		evs     []events.Event
		wantErr error
	}{
		{name: "all events", evs: []events.Event{signed, ev("WelcomeEmailSent", `{}`)}},
		{name: "failed", evs: []events.Event{signed, ev("StepFailed", `{"step":"welcome","error":"x","attempts":2}`)}},
		{name: "signed up twice", evs: []events.Event{signed, signed}, wantErr: events.ErrInvalidEvent},
		{name: "welcome before sign-up", evs: []events.Event{ev("WelcomeEmailSent", `{}`)}, wantErr: events.ErrInvalidEvent},
		{name: "welcome twice", evs: []events.Event{signed, ev("WelcomeEmailSent", `{}`), ev("WelcomeEmailSent", `{}`)}, wantErr: events.ErrInvalidEvent},
		{name: "failed other step", evs: []events.Event{signed, ev("StepFailed", `{"step":"receipt","error":"x","attempts":2}`)}, wantErr: events.ErrInvalidEvent},
		{name: "missing name", evs: []events.Event{ev("UserSignedUp", `{"email":"a@b.c"}`)}, wantErr: events.ErrInvalidEvent},
		{name: "unknown field", evs: []events.Event{ev("UserSignedUp", `{"email":"a@b.c","name":"A","x":1}`)}, wantErr: events.ErrInvalidEvent},
		{name: "unknown event", evs: []events.Event{ev("UserDeleted", `{}`)}, wantErr: decider.ErrUnknownEvent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := user.Initial(stream)
			var err error
			for i, e := range tt.evs {
				e.Stream, e.Version = stream, uint64(i+1)
				if s, err = user.Evolve(s, e); err != nil {
					break
				}
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && s.Version != uint64(len(tt.evs)) {
				t.Errorf("version = %d", s.Version)
			}
		})
	}
}

func TestIDForEmail(t *testing.T) {
	valid := regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
	a, err := user.IDForEmail("ann@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if !valid.MatchString(a) || !events.ValidStreamID("user:"+a) {
		t.Errorf("id %q is not a valid stream id", a)
	}
	for _, same := range []string{"ANN@example.com", "  ann@EXAMPLE.com\t", "ann@example.com"} {
		if b, err := user.IDForEmail(same); err != nil || b != a {
			t.Errorf("IDForEmail(%q) = %q, %v; want %q", same, b, err, a)
		}
	}
	if b, _ := user.IDForEmail("bob@example.com"); b == a {
		t.Errorf("two addresses share id %q", a)
	}
	for _, bad := range []string{"", "ann", "Ann <ann@example.com>", strings.Repeat("a", 250) + "@x.io"} {
		if _, err := user.IDForEmail(bad); !errors.Is(err, decider.ErrInvalid) {
			t.Errorf("IDForEmail(%q) err = %v, want ErrInvalid", bad, err)
		}
	}
	// The id is part of recorded logs: it must never change.
	if a != "71d4f55f72fa128dfb468a1a3901507c" {
		t.Errorf("IDForEmail(ann@example.com) = %q changed", a)
	}
}

// A user stream is its verified address's: Private lets a caller through
// only when the email it carries maps to the stream.
func TestPrivate(t *testing.T) {
	s := user.Initial(stream)
	for _, tt := range []struct {
		name string
		c    decider.Caller
		want bool
	}{
		{"its address", decider.Caller{User: "ann", Email: "ann@example.com"}, true},
		{"its address in another spelling", decider.Caller{User: "x", Email: " ANN@Example.com"}, true},
		{"another address", decider.Caller{User: "bob", Email: "bob@example.com"}, false},
		{"no verified address", decider.Caller{User: "ann"}, false},
		{"a subject that looks like the id", decider.Caller{User: "71d4f55f72fa128dfb468a1a3901507c"}, false},
		{"an address that is not one", decider.Caller{User: "ann", Email: "Ann <ann@example.com>"}, false},
		{"nobody", decider.Caller{}, false},
	} {
		for _, a := range []decider.Access{decider.Read, decider.Write} {
			if got := user.Private(s, tt.c, a); got != tt.want {
				t.Errorf("%s, %s: %v, want %v", tt.name, a, got, tt.want)
			}
		}
	}
}

package actors

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

// rtSafe is a private kind: the first Put makes its caller the owner;
// only the owner may read the stream or Put again.
type rtSafe struct {
	Stream  string `json:"stream"`
	Version uint64 `json:"version"`
	Owner   string `json:"owner"`
	Puts    int    `json:"puts"`
}

func rtSafeKind(rule func(s rtSafe, c decider.Caller, a decider.Access) bool) decider.Kind {
	return decider.New(decider.Decider[rtSafe]{
		Name:    "safe",
		Initial: func(stream string) rtSafe { return rtSafe{Stream: stream} },
		Decide: func(s rtSafe, c decider.Command) ([]events.Event, error) {
			if c.Type != "Put" {
				return nil, decider.UnknownCommand("safe", c.Type)
			}
			data, _ := json.Marshal(map[string]string{"by": c.Caller.User})
			return []events.Event{{Type: "Put", Data: data}}, nil
		},
		Evolve: func(s rtSafe, e events.Event) (rtSafe, error) {
			var d struct{ By string }
			if err := json.Unmarshal(e.Data, &d); err != nil {
				return s, err
			}
			if s.Owner == "" {
				s.Owner = d.By
			}
			s.Puts++
			s.Version = e.Version
			return s, nil
		},
		Private: rule,
	})
}

func rtSafeRule(s rtSafe, c decider.Caller, a decider.Access) bool {
	if s.Owner == "" {
		return a == decider.Write
	}
	return s.Owner == c.User
}

func rtSafeConfig(t *testing.T, rule func(rtSafe, decider.Caller, decider.Access) bool) Config {
	cfg := rtConfig(rtMemStore(t))
	cfg.Kinds = append(cfg.Kinds, rtSafeKind(rule))
	return cfg
}

// An internal command is refused on Execute, the clients' entry point,
// whoever calls; the step that sends it gets through.
func TestInternalCommands(t *testing.T) {
	r := rtStart(t, rtConfig(rtMemStore(t)))
	for _, c := range []decider.Caller{{}, {Anonymous: true}, {User: "root", Admin: true}} {
		_, err := r.Execute(rtCtx(t), decider.Command{Stream: "tally:main", Type: "Record", Data: json.RawMessage(`{"order":"forged"}`), Caller: c}, events.AnyVersion)
		if !errors.Is(err, decider.ErrForbidden) {
			t.Fatalf("Record from a client %+v: %v, want forbidden", c, err)
		}
	}
	rtExec(t, r, "shop:1", "Place", `{}`)
	rtWaitFor(t, "the notify step", func() bool {
		_, err := r.State(rtCtx(t), "tally:main", decider.Caller{})
		return err == nil
	})
	if got := rtState[rtTally](t, r, "tally:main").Orders; got[0] != "shop:1" {
		t.Fatalf("tally %v", got)
	}
}

// A private kind's rule is applied to commands, state reads,
// subscriptions and CheckRead, except for anonymous callers and admins.
func TestPrivateStreams(t *testing.T) {
	r := rtStart(t, rtSafeConfig(t, rtSafeRule))
	ctx := rtCtx(t)
	ann, bob := decider.Caller{User: "ann"}, decider.Caller{User: "bob"}
	admin, anon := decider.Caller{User: "root", Admin: true}, decider.Caller{Anonymous: true}
	put := func(c decider.Caller, id string) error {
		_, err := r.Execute(ctx, decider.Command{Stream: "safe:a", Type: "Put", ID: id, Caller: c}, events.AnyVersion)
		return err
	}
	// Nobody reads a stream without an owner; anyone may write the first.
	if _, err := r.State(ctx, "safe:a", bob); !errors.Is(err, decider.ErrForbidden) {
		t.Fatalf("state of an ownerless stream: %v", err)
	}
	if err := put(ann, "k1"); err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{"ann": true, "root": true, "anon": true, "bob": false}
	for name, c := range map[string]decider.Caller{"ann": ann, "bob": bob, "root": admin, "anon": anon} {
		want := allowed[name]
		check := func(what string, err error) {
			t.Helper()
			if want && err != nil || !want && !errors.Is(err, decider.ErrForbidden) {
				t.Errorf("%s by %s: %v, want allowed %v", what, name, err, want)
			}
		}
		_, err := r.State(ctx, "safe:a", c)
		check("State", err)
		check("CheckRead", r.CheckRead(ctx, "safe:a", c))
		sub, err := r.Subscribe(ctx, SubscribeRequest{Stream: "safe:a", Caller: c, Sink: &rtSink{}})
		check("Subscribe", err)
		if sub != nil {
			sub.Cancel()
		}
		check("Execute", put(c, ""))
		// The reply to ann's command id is ann's: bob does not get it.
		_, err = r.Execute(ctx, decider.Command{Stream: "safe:a", Type: "Put", ID: "k1", Caller: c}, events.AnyVersion)
		check("Execute with ann's id", err)
	}
	// Shared kinds are not asked, and their streams never activate for it.
	if err := r.CheckRead(ctx, "counter:x", bob); err != nil {
		t.Fatal(err)
	}
}

// A rule that panics refuses, and the actor goes on.
func TestPrivateRulePanics(t *testing.T) {
	r := rtStart(t, rtSafeConfig(t, func(rtSafe, decider.Caller, decider.Access) bool { panic(fmt.Errorf("boom")) }))
	ctx := rtCtx(t)
	_, err := r.Execute(ctx, decider.Command{Stream: "safe:p", Type: "Put", Caller: decider.Caller{User: "ann"}}, events.AnyVersion)
	if err == nil || errors.Is(err, decider.ErrForbidden) {
		t.Fatalf("a panicking rule: %v, want an internal error", err)
	}
	if _, err := r.Execute(ctx, decider.Command{Stream: "safe:p", Type: "Put", Caller: decider.Caller{Anonymous: true}}, events.AnyVersion); err != nil {
		t.Fatal(err)
	}
}

package kinds_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/b6368a97/engine/actors"
	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/actors/kinds"
	"github.com/b6368a97/engine/events"
	"github.com/b6368a97/engine/events/memstore"
	"github.com/b6368a97/engine/mail"
)

// An order cancelled while it cooks must not wait for the cook step: the
// runtime stops the step the cancel made moot and releases the kitchen
// ticket at once. The cook time is an hour, so a runtime that waited for
// the cook step would never get there before the deadline.
func TestCancelWhileCookingReleasesTicketAtOnce(t *testing.T) {
	store := memstore.New()
	rt, err := actors.New(actors.Config{
		Store: store,
		Kinds: kinds.All(kinds.Config{CookTime: time.Hour}),
		Executors: map[string]actors.Executor{
			decider.StepWait:  actors.Wait,
			decider.StepEmail: mail.Executor(mail.NewOutbox(t.TempDir())),
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := rt.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	}()

	const stream = "order:moot"
	anon := decider.Caller{Anonymous: true} // a server with auth off
	place := decider.Command{Stream: stream, Type: "PlaceOrder", Data: json.RawMessage(`{"items":[{"name":"stew","qty":1}],"email":"a@example.com"}`), Caller: anon}
	if _, err := rt.Execute(ctx, place, events.AnyVersion); err != nil {
		t.Fatal(err)
	}
	type orderState struct {
		Status string            `json:"status"`
		Ticket string            `json:"ticket"`
		Steps  map[string]string `json:"steps"`
	}
	state := func() orderState {
		v, err := rt.State(ctx, stream, anon)
		if err != nil {
			t.Fatal(err)
		}
		var s orderState
		if err := json.Unmarshal(v.JSON, &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	waitFor := func(what string, cond func() bool) {
		for !cond() {
			select {
			case <-ctx.Done():
				t.Fatalf("timed out waiting for %s; order state %+v", what, state())
			case <-time.After(5 * time.Millisecond): // polling under the deadline above
			}
		}
	}
	waitFor("the order in the kitchen", func() bool { return state().Status == "in_kitchen" })

	if _, err := rt.Execute(ctx, decider.Command{Stream: stream, Type: "CancelOrder", Caller: anon}, events.AnyVersion); err != nil {
		t.Fatal(err)
	}
	waitFor("the ticket released", func() bool { return state().Ticket == "released" })

	s := state()
	if s.Status != "cancelled" || s.Steps["cook"] != "skipped" || s.Steps["receipt"] != "skipped" {
		t.Fatalf("after cancel: %+v", s)
	}
	v, err := rt.State(ctx, "kitchen:main", anon)
	if err != nil {
		t.Fatal(err)
	}
	var kitchen struct {
		Tickets []json.RawMessage `json:"tickets"`
	}
	if err := json.Unmarshal(v.JSON, &kitchen); err != nil {
		t.Fatal(err)
	}
	if len(kitchen.Tickets) != 0 {
		t.Fatalf("kitchen still has open tickets: %s", v.JSON)
	}
}

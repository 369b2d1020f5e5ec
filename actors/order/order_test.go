package order_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/actors/order"
	"github.com/b6368a97/engine/events"
)

const stream = "order:42"

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// history is a helper that applies events to a state as a store would:
// with the stream, the next version and a time.
type history struct {
	t *testing.T
	s order.State
}

func newHistory(t *testing.T) *history {
	return &history{t: t, s: order.Initial(stream)}
}

func (h *history) apply(evs []events.Event, err error) *history {
	h.t.Helper()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, e := range evs {
		e.Stream, e.Version, e.Time = stream, h.s.Version+1, t0.Add(time.Duration(h.s.Version)*time.Second)
		s, err := order.Evolve(h.s, e)
		if err != nil {
			h.t.Fatalf("evolve %s: %v", e.Type, err)
		}
		h.s = s
	}
	return h
}

func (h *history) do(typ, data string) *history {
	h.t.Helper()
	return h.apply(order.Decide(h.s, decider.Command{Stream: stream, Type: typ, Data: json.RawMessage(data), Time: t0}))
}

func (h *history) complete(step, errText string) *history {
	h.t.Helper()
	return h.apply(order.Complete(h.s, decider.StepResult{Step: step, Err: errText, Attempts: 5, Time: t0}))
}

func (h *history) place(email string) *history {
	h.t.Helper()
	d := `{"items":[{"name":"coffee","qty":2},{"name":"bagel","qty":1}]`
	if email != "" {
		d += `,"email":"` + email + `"`
	}
	return h.do("PlaceOrder", d+"}")
}

func items(n, qty int, name string) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`{"name":%q,"qty":%d}`, name, qty)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func TestDecide(t *testing.T) {
	n64, n65 := strings.Repeat("n", 64), strings.Repeat("n", 65)
	tests := []struct {
		name    string
		history func(*history)
		typ     string
		data    string
		want    string // "Type data"
		wantErr error
	}{
		{name: "place", typ: "PlaceOrder", data: `{"items":[{"name":"tea","qty":1}]}`, want: `OrderPlaced {"items":[{"name":"tea","qty":1}]}`},
		{name: "place with email", typ: "PlaceOrder", data: `{"items":[{"name":"tea","qty":1}],"email":"ann@example.com"}`, want: `OrderPlaced {"items":[{"name":"tea","qty":1}],"email":"ann@example.com"}`},
		{name: "0 items", typ: "PlaceOrder", data: `{"items":[]}`, wantErr: decider.ErrInvalid},
		{name: "items missing", typ: "PlaceOrder", data: `{}`, wantErr: decider.ErrInvalid},
		{name: "items null", typ: "PlaceOrder", data: `{"items":null}`, wantErr: decider.ErrInvalid},
		{name: "1 item", typ: "PlaceOrder", data: `{"items":` + items(1, 1, "tea") + `}`, want: `OrderPlaced {"items":` + items(1, 1, "tea") + `}`},
		{name: "50 items", typ: "PlaceOrder", data: `{"items":` + items(50, 99, "tea") + `}`, want: `OrderPlaced {"items":` + items(50, 99, "tea") + `}`},
		{name: "51 items", typ: "PlaceOrder", data: `{"items":` + items(51, 1, "tea") + `}`, wantErr: decider.ErrInvalid},
		{name: "qty 0", typ: "PlaceOrder", data: `{"items":` + items(1, 0, "tea") + `}`, wantErr: decider.ErrInvalid},
		{name: "qty 1", typ: "PlaceOrder", data: `{"items":` + items(1, 1, "tea") + `}`, want: `OrderPlaced {"items":` + items(1, 1, "tea") + `}`},
		{name: "qty 99", typ: "PlaceOrder", data: `{"items":` + items(1, 99, "tea") + `}`, want: `OrderPlaced {"items":` + items(1, 99, "tea") + `}`},
		{name: "qty 100", typ: "PlaceOrder", data: `{"items":` + items(1, 100, "tea") + `}`, wantErr: decider.ErrInvalid},
		{name: "qty -1", typ: "PlaceOrder", data: `{"items":` + items(1, -1, "tea") + `}`, wantErr: decider.ErrInvalid},
		{name: "qty 1.5", typ: "PlaceOrder", data: `{"items":[{"name":"tea","qty":1.5}]}`, wantErr: decider.ErrInvalid},
		{name: "qty string", typ: "PlaceOrder", data: `{"items":[{"name":"tea","qty":"1"}]}`, wantErr: decider.ErrInvalid},
		{name: "qty missing", typ: "PlaceOrder", data: `{"items":[{"name":"tea"}]}`, wantErr: decider.ErrInvalid},
		{name: "name 64", typ: "PlaceOrder", data: `{"items":` + items(1, 1, n64) + `}`, want: `OrderPlaced {"items":` + items(1, 1, n64) + `}`},
		{name: "name 65", typ: "PlaceOrder", data: `{"items":` + items(1, 1, n65) + `}`, wantErr: decider.ErrInvalid},
		{name: "name empty", typ: "PlaceOrder", data: `{"items":` + items(1, 1, "") + `}`, wantErr: decider.ErrInvalid},
		{name: "name with newline", typ: "PlaceOrder", data: `{"items":[{"name":"a\nb","qty":1}]}`, wantErr: decider.ErrInvalid},
		{name: "item unknown field", typ: "PlaceOrder", data: `{"items":[{"name":"tea","qty":1,"size":"L"}]}`, wantErr: decider.ErrInvalid},
		{name: "unknown field", typ: "PlaceOrder", data: `{"items":[{"name":"tea","qty":1}],"table":4}`, wantErr: decider.ErrInvalid},
		{name: "email with display name", typ: "PlaceOrder", data: `{"items":[{"name":"tea","qty":1}],"email":"Ann <ann@example.com>"}`, wantErr: decider.ErrInvalid},
		{name: "email in brackets", typ: "PlaceOrder", data: `{"items":[{"name":"tea","qty":1}],"email":"<ann@example.com>"}`, wantErr: decider.ErrInvalid},
		{name: "email with space", typ: "PlaceOrder", data: `{"items":[{"name":"tea","qty":1}],"email":" ann@example.com"}`, wantErr: decider.ErrInvalid},
		{name: "email without @", typ: "PlaceOrder", data: `{"items":[{"name":"tea","qty":1}],"email":"ann"}`, wantErr: decider.ErrInvalid},
		{name: "email too long", typ: "PlaceOrder", data: `{"items":[{"name":"tea","qty":1}],"email":"` + strings.Repeat("a", 250) + `@x.io"}`, wantErr: decider.ErrInvalid},
		{name: "email not a string", typ: "PlaceOrder", data: `{"items":[{"name":"tea","qty":1}],"email":true}`, wantErr: decider.ErrInvalid},
		{name: "place twice", history: func(h *history) { h.place("") }, typ: "PlaceOrder", data: `{"items":[{"name":"tea","qty":1}]}`, wantErr: decider.ErrConflict},
		{name: "place after cancel", history: func(h *history) { h.place("").do("CancelOrder", `{}`) }, typ: "PlaceOrder", data: `{"items":[{"name":"tea","qty":1}]}`, wantErr: decider.ErrConflict},
		{name: "cancel placed", history: func(h *history) { h.place("") }, typ: "CancelOrder", data: `{}`, want: `OrderCancelled {}`},
		{name: "cancel without data", history: func(h *history) { h.place("") }, typ: "CancelOrder", data: ``, want: `OrderCancelled {}`},
		{name: "cancel in kitchen", history: func(h *history) { h.place("").complete("kitchen", "") }, typ: "CancelOrder", data: `{}`, want: `OrderCancelled {}`},
		{name: "cancel after kitchen failed", history: func(h *history) { h.place("").complete("kitchen", "down") }, typ: "CancelOrder", data: `{}`, want: `OrderCancelled {}`},
		{name: "cancel ready", history: func(h *history) { h.place("").complete("kitchen", "").complete("cook", "") }, typ: "CancelOrder", data: `{}`, wantErr: decider.ErrConflict},
		{name: "cancel twice", history: func(h *history) { h.place("").do("CancelOrder", `{}`) }, typ: "CancelOrder", data: `{}`, wantErr: decider.ErrConflict},
		{name: "cancel nothing", typ: "CancelOrder", data: `{}`, wantErr: decider.ErrConflict},
		{name: "cancel with a reason", history: func(h *history) { h.place("") }, typ: "CancelOrder", data: `{"reason":"late"}`, wantErr: decider.ErrInvalid},
		{name: "unknown command", typ: "RefundOrder", data: `{}`, wantErr: decider.ErrUnknownCommand},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHistory(t)
			if tt.history != nil {
				tt.history(h)
			}
			evs, err := order.Decide(h.s, decider.Command{Stream: stream, Type: tt.typ, Data: json.RawMessage(tt.data), Time: t0})
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
				t.Errorf("event = %.300s\nwant    %.300s", got, tt.want)
			}
		})
	}
}

// view is the part of the state the sequence tests check.
func view(s order.State) string {
	errs := ""
	for _, k := range []string{"kitchen", "cook", "ticket", "receipt"} {
		if e, ok := s.Errors[k]; ok {
			errs += " " + k + "!" + e
		}
	}
	return fmt.Sprintf("%s k=%s c=%s r=%s t=%s%s", s.Status, s.Steps.Kitchen, s.Steps.Cook, s.Steps.Receipt, s.Ticket, errs)
}

func owed(s order.State) string {
	var names []string
	for _, st := range order.Steps(s) {
		names = append(names, st.Name)
	}
	return strings.Join(names, ",")
}

func TestStepSequences(t *testing.T) {
	type stage struct {
		do   func(*history)
		view string
		owed string
	}
	place := func(email string) func(*history) { return func(h *history) { h.place(email) } }
	ok := func(step string) func(*history) { return func(h *history) { h.complete(step, "") } }
	fail := func(step string) func(*history) { return func(h *history) { h.complete(step, "boom") } }
	cancel := func(h *history) { h.do("CancelOrder", `{}`) }
	tests := []struct {
		name   string
		stages []stage
	}{
		{name: "with email: kitchen, cook, ticket, receipt", stages: []stage{
			{place("ann@example.com"), "placed k=pending c=pending r=pending t=none", "kitchen,cook,receipt"},
			{ok("kitchen"), "in_kitchen k=done c=pending r=pending t=open", "cook,receipt"},
			{ok("cook"), "ready k=done c=done r=pending t=releasing", "ticket,receipt"},
			{ok("ticket"), "ready k=done c=done r=pending t=released", "receipt"},
			{ok("receipt"), "ready k=done c=done r=done t=released", ""},
		}},
		{name: "without email the receipt is skipped", stages: []stage{
			{place(""), "placed k=pending c=pending r=skipped t=none", "kitchen,cook"},
			{ok("kitchen"), "in_kitchen k=done c=pending r=skipped t=open", "cook"},
			{ok("cook"), "ready k=done c=done r=skipped t=releasing", "ticket"},
			{ok("ticket"), "ready k=done c=done r=skipped t=released", ""},
		}},
		{name: "cancelled before the kitchen", stages: []stage{
			{place("ann@example.com"), "placed k=pending c=pending r=pending t=none", "kitchen,cook,receipt"},
			{cancel, "cancelled k=skipped c=skipped r=skipped t=releasing", "ticket"},
			{ok("kitchen"), "cancelled k=skipped c=skipped r=skipped t=releasing", "ticket"}, // late: a no-op
			{ok("ticket"), "cancelled k=skipped c=skipped r=skipped t=released", ""},
		}},
		{name: "cancelled in the kitchen releases the ticket", stages: []stage{
			{place(""), "placed k=pending c=pending r=skipped t=none", "kitchen,cook"},
			{ok("kitchen"), "in_kitchen k=done c=pending r=skipped t=open", "cook"},
			{cancel, "cancelled k=done c=skipped r=skipped t=releasing", "ticket"},
			{ok("cook"), "cancelled k=done c=skipped r=skipped t=releasing", "ticket"}, // late: a no-op
			{ok("ticket"), "cancelled k=done c=skipped r=skipped t=released", ""},
		}},
		{name: "kitchen fails", stages: []stage{
			{place("ann@example.com"), "placed k=pending c=pending r=pending t=none", "kitchen,cook,receipt"},
			{fail("kitchen"), "placed k=failed c=skipped r=skipped t=releasing kitchen!boom", "ticket"},
			{ok("ticket"), "placed k=failed c=skipped r=skipped t=released kitchen!boom", ""},
			{cancel, "cancelled k=failed c=skipped r=skipped t=released kitchen!boom", ""},
		}},
		{name: "cook fails", stages: []stage{
			{place("ann@example.com"), "placed k=pending c=pending r=pending t=none", "kitchen,cook,receipt"},
			{ok("kitchen"), "in_kitchen k=done c=pending r=pending t=open", "cook,receipt"},
			{fail("cook"), "in_kitchen k=done c=failed r=skipped t=releasing cook!boom", "ticket"},
			{ok("ticket"), "in_kitchen k=done c=failed r=skipped t=released cook!boom", ""},
		}},
		{name: "receipt fails", stages: []stage{
			{place("ann@example.com"), "placed k=pending c=pending r=pending t=none", "kitchen,cook,receipt"},
			{ok("kitchen"), "in_kitchen k=done c=pending r=pending t=open", "cook,receipt"},
			{ok("cook"), "ready k=done c=done r=pending t=releasing", "ticket,receipt"},
			{ok("ticket"), "ready k=done c=done r=pending t=released", "receipt"},
			{fail("receipt"), "ready k=done c=done r=failed t=released receipt!boom", ""},
		}},
		{name: "ticket fails", stages: []stage{
			{place(""), "placed k=pending c=pending r=skipped t=none", "kitchen,cook"},
			{cancel, "cancelled k=skipped c=skipped r=skipped t=releasing", "ticket"},
			{fail("ticket"), "cancelled k=skipped c=skipped r=skipped t=failed ticket!boom", ""},
			{ok("ticket"), "cancelled k=skipped c=skipped r=skipped t=failed ticket!boom", ""}, // not owed: no-op
		}},
		{name: "duplicate completions are no-ops", stages: []stage{
			{place(""), "placed k=pending c=pending r=skipped t=none", "kitchen,cook"},
			{ok("kitchen"), "in_kitchen k=done c=pending r=skipped t=open", "cook"},
			{ok("kitchen"), "in_kitchen k=done c=pending r=skipped t=open", "cook"},
			{fail("kitchen"), "in_kitchen k=done c=pending r=skipped t=open", "cook"},
			{ok("nonsense"), "in_kitchen k=done c=pending r=skipped t=open", "cook"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHistory(t)
			for i, st := range tt.stages {
				st.do(h)
				if got := view(h.s); got != st.view {
					t.Fatalf("stage %d: state %q\nwant          %q", i, got, st.view)
				}
				if got := owed(h.s); got != st.owed {
					t.Fatalf("stage %d: owed %q, want %q", i, got, st.owed)
				}
			}
		})
	}
}

func TestStepDetails(t *testing.T) {
	h := newHistory(t).place("ann@example.com")
	steps := order.Steps(h.s)
	if len(steps) != 3 {
		t.Fatalf("steps = %+v", steps)
	}
	k := steps[0]
	if k.Name != "kitchen" || k.Key != "order:42/kitchen" || k.Action != decider.StepCommand ||
		k.Target != "kitchen:main" || k.Command != "AddTicket" ||
		string(k.Data) != `{"order":"order:42","items":[{"name":"coffee","qty":2},{"name":"bagel","qty":1}]}` {
		t.Errorf("kitchen step = %+v data %s", k, k.Data)
	}
	if c := steps[1]; c.Name != "cook" || c.Key != "order:42/cook" || c.Action != decider.StepWait {
		t.Errorf("cook step = %+v", c)
	}
	r := steps[2]
	if r.Name != "receipt" || r.Key != "order:42/receipt" || r.Action != decider.StepEmail || r.Email == nil ||
		r.Email.To != "ann@example.com" || r.Email.Subject != "Your receipt for order 42" ||
		!strings.Contains(r.Email.Body, "2 × coffee") || !strings.Contains(r.Email.Body, "1 × bagel") {
		t.Errorf("receipt step = %+v %+v", r, r.Email)
	}
	h.complete("kitchen", "").complete("cook", "")
	tk := order.Steps(h.s)[0]
	if tk.Name != "ticket" || tk.Key != "order:42/ticket" || tk.Action != decider.StepCommand ||
		tk.Target != "kitchen:main" || tk.Command != "CloseTicket" || string(tk.Data) != `{"order":"order:42"}` {
		t.Errorf("ticket step = %+v data %s", tk, tk.Data)
	}
}

func TestComplete(t *testing.T) {
	placed := newHistory(t).place("ann@example.com").s
	tests := []struct {
		name    string
		res     decider.StepResult
		want    string
		wantErr error
	}{
		{name: "kitchen ok", res: decider.StepResult{Step: "kitchen"}, want: `KitchenNotified {}`},
		{name: "kitchen failed", res: decider.StepResult{Step: "kitchen", Err: "kitchen unavailable", Attempts: 5},
			want: `StepFailed {"step":"kitchen","error":"kitchen unavailable","attempts":5}`},
		{name: "long error is clipped", res: decider.StepResult{Step: "kitchen", Err: strings.Repeat("é", 400), Attempts: 2},
			want: `StepFailed {"step":"kitchen","error":"` + strings.Repeat("é", 254) + `…","attempts":2}`},
		{name: "cook before kitchen", res: decider.StepResult{Step: "cook"}, wantErr: decider.ErrConflict},
		{name: "receipt before kitchen", res: decider.StepResult{Step: "receipt"}, wantErr: decider.ErrConflict},
		{name: "ticket not owed", res: decider.StepResult{Step: "ticket"}},
		{name: "unknown step", res: decider.StepResult{Step: "dessert"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := order.Complete(placed, tt.res)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == "" {
				if len(evs) != 0 {
					t.Fatalf("want no events, got %+v", evs)
				}
				return
			}
			if len(evs) != 1 {
				t.Fatalf("events = %+v", evs)
			}
			if got := evs[0].Type + " " + string(evs[0].Data); got != tt.want {
				t.Errorf("event = %.200s\nwant    %.200s", got, tt.want)
			}
		})
	}
}

func TestEvolve(t *testing.T) {
	ev := func(typ, data string) events.Event {
		return events.Event{Type: typ, Data: json.RawMessage(data)}
	}
	placedEv := ev("OrderPlaced", `{"items":[{"name":"tea","qty":1}],"email":"a@b.c"}`)
	tests := []struct {
		name    string
		evs     []events.Event
		want    string
		wantErr error
	}{
		{name: "placed", evs: []events.Event{placedEv},
			want: `{"stream":"order:42","version":1,"items":[{"name":"tea","qty":1}],"email":"a@b.c","status":"placed","steps":{"kitchen":"pending","cook":"pending","receipt":"pending"},"ticket":"none"}`},
		{name: "every event", evs: []events.Event{placedEv, ev("KitchenNotified", `{}`), ev("OrderReady", `{}`), ev("TicketReleased", `{}`), ev("ReceiptSent", `{}`)},
			want: `{"stream":"order:42","version":5,"items":[{"name":"tea","qty":1}],"email":"a@b.c","status":"ready","steps":{"kitchen":"done","cook":"done","receipt":"done"},"ticket":"released"}`},
		{name: "cancelled and failed", evs: []events.Event{placedEv, ev("OrderCancelled", `{}`), ev("StepFailed", `{"step":"ticket","error":"x","attempts":3}`)},
			want: `{"stream":"order:42","version":3,"items":[{"name":"tea","qty":1}],"email":"a@b.c","status":"cancelled","steps":{"kitchen":"skipped","cook":"skipped","receipt":"skipped"},"ticket":"failed","errors":{"ticket":"x"}}`},
		{name: "placed twice", evs: []events.Event{placedEv, placedEv}, wantErr: events.ErrInvalidEvent},
		{name: "placed without items", evs: []events.Event{ev("OrderPlaced", `{"items":[]}`)}, wantErr: events.ErrInvalidEvent},
		{name: "ready before kitchen", evs: []events.Event{placedEv, ev("OrderReady", `{}`)}, wantErr: events.ErrInvalidEvent},
		{name: "kitchen before placed", evs: []events.Event{ev("KitchenNotified", `{}`)}, wantErr: events.ErrInvalidEvent},
		{name: "receipt before ready", evs: []events.Event{placedEv, ev("ReceiptSent", `{}`)}, wantErr: events.ErrInvalidEvent},
		{name: "ticket released when not releasing", evs: []events.Event{placedEv, ev("TicketReleased", `{}`)}, wantErr: events.ErrInvalidEvent},
		{name: "cancel before placed", evs: []events.Event{ev("OrderCancelled", `{}`)}, wantErr: events.ErrInvalidEvent},
		{name: "cancel after ready", evs: []events.Event{placedEv, ev("KitchenNotified", `{}`), ev("OrderReady", `{}`), ev("OrderCancelled", `{}`)}, wantErr: events.ErrInvalidEvent},
		{name: "failed step not owed", evs: []events.Event{placedEv, ev("StepFailed", `{"step":"cook","error":"x","attempts":1}`), ev("StepFailed", `{"step":"cook","error":"x","attempts":1}`)}, wantErr: events.ErrInvalidEvent},
		{name: "failed unknown step", evs: []events.Event{placedEv, ev("StepFailed", `{"step":"dessert","error":"x","attempts":1}`)}, wantErr: events.ErrInvalidEvent},
		{name: "data on KitchenNotified", evs: []events.Event{placedEv, ev("KitchenNotified", `{"x":1}`)}, wantErr: events.ErrInvalidEvent},
		{name: "wrong type", evs: []events.Event{ev("OrderPlaced", `{"items":"tea"}`)}, wantErr: events.ErrInvalidEvent},
		{name: "unknown event", evs: []events.Event{ev("OrderEaten", `{}`)}, wantErr: decider.ErrUnknownEvent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := order.Initial(stream)
			var err error
			for i, e := range tt.evs {
				e.Stream, e.Version = stream, uint64(i+1)
				if s, err = order.Evolve(s, e); err != nil {
					break
				}
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(s)
			if string(b) != tt.want {
				t.Errorf("state = %s\nwant    %s", b, tt.want)
			}
		})
	}
}

func TestEvolveIsPure(t *testing.T) {
	h := newHistory(t).place("").complete("kitchen", "boom")
	before := h.s
	h.complete("ticket", "again")
	if before.Errors["ticket"] != "" || len(before.Errors) != 1 || before.Ticket != order.TicketReleasing {
		t.Errorf("an earlier state changed: %+v", before)
	}
	if b, _ := json.Marshal(order.State{}); !strings.Contains(string(b), `"items":[]`) {
		t.Errorf("zero state = %s", b)
	}
}

// PlaceOrder records who placed the order; an OrderPlaced without a user
// (older logs, auth off) still folds, to an order with no owner.
func TestOwner(t *testing.T) {
	evs, err := order.Decide(order.Initial(stream), decider.Command{Stream: stream, Type: "PlaceOrder",
		Data: json.RawMessage(`{"items":[{"name":"tea","qty":1}]}`), User: "ann", Time: t0})
	if err != nil || len(evs) != 1 || string(evs[0].Data) != `{"items":[{"name":"tea","qty":1}],"user":"ann"}` {
		t.Fatalf("OrderPlaced by ann = %+v, %v", evs, err)
	}
	h := newHistory(t).apply(evs, nil)
	if h.s.User != "ann" {
		t.Fatalf("owner %q", h.s.User)
	}
	if b, _ := json.Marshal(h.s); !strings.Contains(string(b), `"user":"ann"`) {
		t.Errorf("state %s does not show the owner", b)
	}
	old := newHistory(t).apply([]events.Event{{Type: "OrderPlaced", Data: json.RawMessage(`{"items":[{"name":"tea","qty":1}]}`)}}, nil)
	if old.s.User != "" || old.s.Status != order.StatusPlaced {
		t.Fatalf("an OrderPlaced without user: %+v", old.s)
	}
	if b, _ := json.Marshal(old.s); strings.Contains(string(b), `"user"`) {
		t.Errorf("state %s shows an owner it has not", b)
	}
}

// An order is its owner's; before it is placed anyone may place it and
// nobody read it; an order without an owner is nobody's (admins only,
// which the runtime decides before asking).
func TestPrivate(t *testing.T) {
	placedBy := func(user string) order.State {
		evs, err := order.Decide(order.Initial(stream), decider.Command{Stream: stream, Type: "PlaceOrder",
			Data: json.RawMessage(`{"items":[{"name":"tea","qty":1}]}`), User: user, Time: t0})
		return newHistory(t).apply(evs, err).s
	}
	ann, bob, nobody := decider.Caller{User: "ann"}, decider.Caller{User: "bob"}, decider.Caller{}
	for _, tt := range []struct {
		name string
		s    order.State
		c    decider.Caller
		a    decider.Access
		want bool
	}{
		{"owner reads", placedBy("ann"), ann, decider.Read, true},
		{"owner commands", placedBy("ann"), ann, decider.Write, true},
		{"another user reads", placedBy("ann"), bob, decider.Read, false},
		{"another user commands", placedBy("ann"), bob, decider.Write, false},
		{"nobody reads", placedBy("ann"), nobody, decider.Read, false},
		{"unplaced: anyone places", order.Initial(stream), bob, decider.Write, true},
		{"unplaced: nobody reads", order.Initial(stream), bob, decider.Read, false},
		{"no owner: not read", placedBy(""), ann, decider.Read, false},
		{"no owner: not commanded", placedBy(""), nobody, decider.Write, false},
	} {
		if got := order.Private(tt.s, tt.c, tt.a); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

package kitchen_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/actors/kitchen"
	"github.com/b6368a97/engine/events"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func cmd(typ, data string) decider.Command {
	return decider.Command{Stream: kitchen.MainStream, Type: typ, Data: json.RawMessage(data), Time: t0}
}

func ev(v uint64, typ, data string) events.Event {
	return events.Event{Stream: kitchen.MainStream, Version: v, Type: typ, Data: json.RawMessage(data), Time: t0}
}

func fold(t *testing.T, evs ...events.Event) kitchen.State {
	t.Helper()
	s := kitchen.Initial(kitchen.MainStream)
	for _, e := range evs {
		var err error
		if s, err = kitchen.Evolve(s, e); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// items returns n items as JSON, each with quantity qty.
func items(n, qty int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`{"name":"dish %d","qty":%d}`, i, qty)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func TestDecide(t *testing.T) {
	open := []events.Event{ev(1, "TicketAdded", `{"order":"order:1","items":[{"name":"tea","qty":1}]}`)}
	tests := []struct {
		name    string
		history []events.Event
		cmd     decider.Command
		want    string // "Type data", or "" for a no-op
		wantErr error
	}{
		{name: "add", cmd: cmd("AddTicket", `{"order":"order:1","items":[{"name":"tea","qty":2}]}`), want: `TicketAdded {"order":"order:1","items":[{"name":"tea","qty":2}]}`},
		{name: "add 50 items", cmd: cmd("AddTicket", `{"order":"order:1","items":`+items(50, 99)+`}`), want: `TicketAdded {"order":"order:1","items":` + items(50, 99) + `}`},
		{name: "add 51 items", cmd: cmd("AddTicket", `{"order":"order:1","items":`+items(51, 1)+`}`), wantErr: decider.ErrInvalid},
		{name: "add no items", cmd: cmd("AddTicket", `{"order":"order:1","items":[]}`), wantErr: decider.ErrInvalid},
		{name: "add qty 0", cmd: cmd("AddTicket", `{"order":"order:1","items":`+items(1, 0)+`}`), wantErr: decider.ErrInvalid},
		{name: "add qty 100", cmd: cmd("AddTicket", `{"order":"order:1","items":`+items(1, 100)+`}`), wantErr: decider.ErrInvalid},
		{name: "add name 65", cmd: cmd("AddTicket", `{"order":"order:1","items":[{"name":"`+strings.Repeat("n", 65)+`","qty":1}]}`), wantErr: decider.ErrInvalid},
		{name: "add not an order", cmd: cmd("AddTicket", `{"order":"room:1","items":[{"name":"tea","qty":1}]}`), wantErr: decider.ErrInvalid},
		{name: "add bad order id", cmd: cmd("AddTicket", `{"order":"order:a b","items":[{"name":"tea","qty":1}]}`), wantErr: decider.ErrInvalid},
		{name: "add unknown field", cmd: cmd("AddTicket", `{"order":"order:1","items":[{"name":"tea","qty":1,"hot":true}]}`), wantErr: decider.ErrInvalid},
		{name: "add again is a no-op", history: open, cmd: cmd("AddTicket", `{"order":"order:1","items":[{"name":"tea","qty":1}]}`)},
		{name: "add another", history: open, cmd: cmd("AddTicket", `{"order":"order:2","items":[{"name":"tea","qty":1}]}`), want: `TicketAdded {"order":"order:2","items":[{"name":"tea","qty":1}]}`},
		{name: "close", history: open, cmd: cmd("CloseTicket", `{"order":"order:1"}`), want: `TicketClosed {"order":"order:1"}`},
		{name: "close not open is a no-op", history: open, cmd: cmd("CloseTicket", `{"order":"order:2"}`)},
		{name: "close on an empty kitchen is a no-op", cmd: cmd("CloseTicket", `{"order":"order:2"}`)},
		{name: "close missing order", cmd: cmd("CloseTicket", `{}`), wantErr: decider.ErrInvalid},
		{name: "close wrong type", cmd: cmd("CloseTicket", `{"order":1}`), wantErr: decider.ErrInvalid},
		{name: "unknown command", cmd: cmd("Cook", `{}`), wantErr: decider.ErrUnknownCommand},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := kitchen.Decide(fold(t, tt.history...), tt.cmd)
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
					t.Fatalf("want a no-op, got %+v", evs)
				}
				return
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

func TestEvolve(t *testing.T) {
	add := func(v uint64, order string) events.Event {
		return ev(v, "TicketAdded", `{"order":"`+order+`","items":[{"name":"tea","qty":1}]}`)
	}
	closed := func(v uint64, order string) events.Event {
		return ev(v, "TicketClosed", `{"order":"`+order+`"}`)
	}
	tests := []struct {
		name    string
		evs     []events.Event
		want    []string // open orders
		wantErr error
	}{
		{name: "none", want: []string{}},
		{name: "added in order", evs: []events.Event{add(1, "order:3"), add(2, "order:1"), add(3, "order:2")}, want: []string{"order:3", "order:1", "order:2"}},
		{name: "close the middle one", evs: []events.Event{add(1, "order:3"), add(2, "order:1"), add(3, "order:2"), closed(4, "order:1")}, want: []string{"order:3", "order:2"}},
		{name: "close all", evs: []events.Event{add(1, "order:1"), closed(2, "order:1")}, want: []string{}},
		{name: "re-add after close", evs: []events.Event{add(1, "order:1"), closed(2, "order:1"), add(3, "order:1")}, want: []string{"order:1"}},
		{name: "add twice", evs: []events.Event{add(1, "order:1"), add(2, "order:1")}, wantErr: events.ErrInvalidEvent},
		{name: "close not open", evs: []events.Event{closed(1, "order:1")}, wantErr: events.ErrInvalidEvent},
		{name: "no items", evs: []events.Event{ev(1, "TicketAdded", `{"order":"order:1","items":[]}`)}, wantErr: events.ErrInvalidEvent},
		{name: "unknown field", evs: []events.Event{ev(1, "TicketClosed", `{"order":"order:1","why":"x"}`)}, wantErr: events.ErrInvalidEvent},
		{name: "unknown event", evs: []events.Event{ev(1, "TicketLost", `{}`)}, wantErr: decider.ErrUnknownEvent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := kitchen.Initial(kitchen.MainStream)
			var states []kitchen.State
			var err error
			for _, e := range tt.evs {
				if s, err = kitchen.Evolve(s, e); err != nil {
					break
				}
				states = append(states, s)
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
			got := []string{}
			for _, tk := range s.Tickets {
				got = append(got, tk.Order)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("open = %v, want %v", got, tt.want)
			}
			if s.Version != uint64(len(tt.evs)) || s.Stream != kitchen.MainStream {
				t.Errorf("stream %s version %d", s.Stream, s.Version)
			}
			b, _ := json.Marshal(s)
			if strings.Contains(string(b), "null") {
				t.Errorf("state = %s", b)
			}
			// Earlier states are unchanged by later events.
			for i, st := range states {
				if st.Version != uint64(i+1) {
					t.Errorf("state %d has version %d", i+1, st.Version)
				}
			}
			if len(states) >= 4 && len(states[2].Tickets) != 3 {
				t.Errorf("closing changed an earlier state: %+v", states[2].Tickets)
			}
		})
	}
}

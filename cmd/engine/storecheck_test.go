//go:build integration || soak

package main

// The check of a store read back after a run under load, shared by the
// crash test (integration_crash_test.go) and the soak test (soak_test.go):
// what the clients know of their commands (crashCmd, by command id) against
// what engine export prints.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/b6368a97/engine/events"
	"github.com/b6368a97/engine/mail"
)

// exportStore reads the whole store in dir with the stopped engine's
// export command.
func exportStore(t *testing.T, bin, dir string) []events.Event {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(bin, "export", "-data", dir)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("engine export: %v\n%s", err, errb.Bytes())
	}
	var evs []events.Event
	dec := events.NewDecoder(&out)
	for {
		ev, err := dec.Next()
		if errors.Is(err, io.EOF) {
			return evs
		}
		if err != nil {
			t.Fatalf("engine export: %v", err)
		}
		evs = append(evs, ev)
	}
}

// Kinds of the commands the load sends.
const (
	crashMessage = "message" // PostMessage over the WebSocket
	crashOrder   = "order"   // POST /orders
	crashUser    = "user"    // POST /signup
)

// crashCmd is one command of the load, known by its id: the WebSocket
// command id or the HTTP Idempotency-Key.
type crashCmd struct {
	kind   string
	stream string // the room; the order or user stream once a reply named it
	path   string // HTTP: the route and body, to send the command again
	body   string
	acked  bool
}

// crashStore is the engine's store read back after the last stop.
type crashStore struct {
	streams map[string][]events.Event // by stream, in version order
	byCause map[string][]events.Event // by Meta.Causation (a command id), when set
	events  int
}

// readCrashLog indexes the exported log, checking that positions run 1..M
// with no gap, ids are unique and every stream's versions run 1..N.
func readCrashLog(t *testing.T, evs []events.Event) *crashStore {
	t.Helper()
	errorf := cappedErrorf(t)
	s := &crashStore{streams: map[string][]events.Event{}, byCause: map[string][]events.Event{}, events: len(evs)}
	ids := make(map[string]bool, len(evs))
	for i, ev := range evs {
		if ev.Position != uint64(i+1) {
			errorf("event %d of the log (%s v%d) has position %d, want %d", i+1, ev.Stream, ev.Version, ev.Position, i+1)
		}
		if ids[ev.ID] {
			errorf("id %s is stored twice (%s v%d)", ev.ID, ev.Stream, ev.Version)
		}
		ids[ev.ID] = true
		have := s.streams[ev.Stream]
		if want := uint64(len(have) + 1); ev.Version != want {
			errorf("%s: version %d where %d was due (a gap or a repeat)", ev.Stream, ev.Version, want)
		}
		s.streams[ev.Stream] = append(have, ev)
		if c := ev.Meta.Causation; c != "" {
			s.byCause[c] = append(s.byCause[c], ev)
		}
	}
	return s
}

// cappedErrorf reports the first 30 errors of a check; a broken invariant
// tends to break it thousands of times.
func cappedErrorf(t *testing.T) func(format string, args ...any) {
	n := 0
	return func(format string, args ...any) {
		t.Helper()
		switch n++; {
		case n <= 30:
			t.Errorf(format, args...)
		case n == 31:
			t.Error("… more errors of this check not shown")
		}
	}
}

// crashStats are the numbers of a run.
type crashStats struct {
	acked, messages, orders, users int
	unacked, unackedStored         int
	events                         int
}

// checkCausations: every command of this load appends one event, and every
// step command one kitchen event, so each causation names exactly one
// event, and only commands the clients or the orders' steps sent.
func checkCausations(t *testing.T, s *crashStore, cmds map[string]crashCmd) {
	t.Helper()
	errorf := cappedErrorf(t)
	for cause, evs := range s.byCause {
		_, known := cmds[cause]
		if !known && !strings.HasSuffix(cause, "/kitchen") && !strings.HasSuffix(cause, "/ticket") {
			errorf("%s v%d: caused by %q, which no client sent", evs[0].Stream, evs[0].Version, cause)
		}
		if len(evs) != 1 {
			var at []string
			for _, ev := range evs {
				at = append(at, fmt.Sprintf("%s v%d", ev.Stream, ev.Version))
			}
			errorf("command %s is stored %d times: %s", cause, len(evs), strings.Join(at, ", "))
		}
	}
	for stream, evs := range s.streams {
		if strings.HasPrefix(stream, "room:") || stream == "kitchen:main" {
			for _, ev := range evs {
				if ev.Meta.Causation == "" {
					errorf("%s v%d (%s) has no causation", stream, ev.Version, ev.Type)
				}
			}
		}
	}
}

// checkMessages: an acknowledged message is stored once, in its room,
// with its text; an unacknowledged one at most once.
func checkMessages(t *testing.T, s *crashStore, cmds map[string]crashCmd, st *crashStats) {
	t.Helper()
	errorf := cappedErrorf(t)
	texts := map[string]int{}
	for stream, evs := range s.streams {
		if !strings.HasPrefix(stream, "room:") {
			continue
		}
		for _, ev := range evs {
			var d struct{ Text string }
			if err := json.Unmarshal(ev.Data, &d); err != nil || ev.Type != "MessagePosted" {
				errorf("%s v%d: %s %s", stream, ev.Version, ev.Type, ev.Data)
			}
			if texts[d.Text]++; texts[d.Text] == 2 {
				errorf("message %q is stored twice", d.Text)
			}
		}
	}
	for id, c := range cmds {
		if c.kind != crashMessage {
			continue
		}
		evs := s.byCause[id]
		switch {
		case c.acked:
			st.messages++
			if len(evs) != 1 || texts[id] != 1 {
				errorf("acknowledged message %s is stored %d times (%d by its text)", id, len(evs), texts[id])
			}
		default:
			st.unacked++
			if len(evs) > 0 {
				st.unackedStored++
			}
		}
		for _, ev := range evs {
			if ev.Stream != c.stream {
				errorf("message %s sent to %s is stored in %s", id, c.stream, ev.Stream)
			}
		}
	}
}

// The events an order and a user end with, step attempts left out.
var (
	crashOrderEvents = []string{"OrderPlaced", "KitchenNotified", "OrderReady", "TicketReleased", "ReceiptSent"}
	crashUserEvents  = []string{"UserSignedUp", "WelcomeEmailSent"}
)

// checkOwedSteps: every order and user (all acknowledged after settle) is
// stored once, on the stream its reply named, and has recorded each step
// once; the kitchen holds one ticket added and closed per order, nothing
// else; no other order or user exists.
func checkOwedSteps(t *testing.T, s *crashStore, cmds map[string]crashCmd, st *crashStats) {
	t.Helper()
	errorf := cappedErrorf(t)
	owners := map[string]string{} // stream → key
	for key, c := range cmds {
		if c.kind != crashOrder && c.kind != crashUser {
			continue
		}
		if !c.acked {
			errorf("%s %s was never acknowledged", c.kind, key)
			continue
		}
		owners[c.stream] = key
		want := crashUserEvents
		if c.kind == crashOrder {
			st.orders++
			want = crashOrderEvents
		} else {
			st.users++
		}
		if evs := s.byCause[key]; len(evs) != 1 || evs[0].Stream != c.stream || evs[0].Type != want[0] {
			errorf("%s %s (%s): %d events caused: %v", c.kind, key, c.stream, len(evs), evs)
		}
		var got []string
		for _, ev := range s.streams[c.stream] {
			if ev.Type != "StepAttemptFailed" {
				got = append(got, ev.Type)
			}
		}
		if !slices.Equal(got, want) {
			errorf("%s (key %s) holds %v, want %v", c.stream, key, got, want)
		}
		if c.kind == crashOrder {
			for cause, typ := range map[string]string{c.stream + "/kitchen": "TicketAdded", c.stream + "/ticket": "TicketClosed"} {
				if evs := s.byCause[cause]; len(evs) != 1 || evs[0].Stream != "kitchen:main" || evs[0].Type != typ {
					errorf("%s: the kitchen holds %v for %s, want one %s", c.stream, evs, cause, typ)
				}
			}
		}
	}
	for stream := range s.streams {
		if strings.HasPrefix(stream, "order:") || strings.HasPrefix(stream, "user:") {
			if _, ok := owners[stream]; !ok {
				errorf("%s is stored, but no reply named it", stream)
			}
		}
	}
	if n, want := len(s.streams["kitchen:main"]), 2*st.orders; n != want {
		errorf("kitchen:main holds %d events, want %d (one ticket added and closed per order)", n, want)
	}
}

// checkOutbox: one email per order and per user, and no other.
func checkOutbox(t *testing.T, dataDir string, cmds map[string]crashCmd) {
	t.Helper()
	errorf := cappedErrorf(t)
	dir := filepath.Join(dataDir, "outbox")
	want := map[string]bool{}
	for _, c := range cmds {
		switch c.kind {
		case crashOrder:
			want[mail.OutboxFileName(c.stream+"/receipt")] = true
		case crashUser:
			want[mail.OutboxFileName(c.stream+"/welcome")] = true
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var temps int
	for _, de := range entries {
		switch name := de.Name(); {
		case strings.HasPrefix(name, ".tmp-"):
			temps++ // a write cut by a kill; the step wrote the message again
		case want[name]:
			delete(want, name)
		default:
			errorf("the outbox holds %s, which no order or user owes", name)
		}
	}
	for name := range want {
		errorf("the outbox lacks %s", name)
	}
	if temps > 0 {
		t.Logf("the outbox holds %d temporary files left by kills", temps)
	}
}

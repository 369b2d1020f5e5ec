package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/b6368a97/engine/client"
	"github.com/b6368a97/engine/events"
	"github.com/b6368a97/engine/mail"
)

// dialClient connects the Go client to the engine's /ws; it is closed when
// the test ends.
func (e *engine) dialClient(t *testing.T, opts client.Options) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	c, err := client.Dial(ctx, e.ws+"/ws", opts)
	if err != nil {
		t.Fatalf("dial /ws: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestE2EWSSubscribeWhileAppending(t *testing.T) {
	const (
		stream    = "room:busy"
		writers   = 10
		perWriter = 100
		total     = writers * perWriter
	)
	e := startEngine(t, t.TempDir())

	// Writers on their own connections, so that the actor sees concurrent
	// commands (one connection's commands to a stream run one at a time).
	acks := newCollector[uint64]()
	errs := make(chan error, writers)
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	for w := range writers {
		c := e.dialClient(t, client.Options{})
		go func() {
			for i := range perWriter {
				text := fmt.Sprintf("w%d-%d", w, i)
				ack, err := c.Command(ctx, stream, "PostMessage", map[string]string{"user": fmt.Sprintf("w%d", w), "text": text}, text)
				if err != nil {
					errs <- err
					return
				}
				acks.add(ack.Version)
			}
			errs <- nil
		}()
	}

	// Subscribe from 0 once the log has a head start, so that the catch-up
	// races with live appends.
	acks.waitFor(t, "100 acks", func(v []uint64) bool { return len(v) >= 100 })
	sub := e.dialRaw(t, "/ws", nil)
	sub.writeJSON(t, map[string]any{"op": "subscribe", "stream": stream, "from": 0, "ref": "sub"})
	f := sub.nextFrame(t)
	if f.Op != "subscribed" || refString(f.Ref) != "sub" || f.Stream != stream {
		t.Fatalf("first frame after subscribe: %+v", f)
	}
	t.Logf("subscribed at version %d", f.Version)

	seenText := map[string]bool{}
	seenID := map[string]bool{}
	var want uint64 = 1
	for want <= total {
		f := sub.nextFrame(t)
		switch f.Op {
		case "presence":
			continue
		case "event":
		default:
			t.Fatalf("unexpected frame %+v", f)
		}
		if f.Stream != stream || f.Version != want {
			t.Fatalf("event %s v%d, want %s v%d (a gap, a duplicate or out of order)", f.Stream, f.Version, stream, want)
		}
		var d struct{ User, Text string }
		if err := json.Unmarshal(f.Data, &d); err != nil {
			t.Fatal(err)
		}
		if seenText[d.Text] || seenID[f.ID] {
			t.Fatalf("v%d repeats message %q (id %s)", f.Version, d.Text, f.ID)
		}
		seenText[d.Text], seenID[f.ID] = true, true
		want++
	}
	for range writers {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(e2eTimeout):
			t.Fatal("a writer did not finish")
		}
	}
	// Nothing follows the last event: the next frame is the pong.
	sub.writeJSON(t, map[string]any{"op": "ping", "ref": "p"})
	if f := sub.nextFrame(t); f.Op != "pong" || refString(f.Ref) != "p" {
		t.Fatalf("after the last event: %+v, want the pong", f)
	}
	got := acks.snapshot()
	slices.Sort(got)
	for i, v := range got {
		if v != uint64(i+1) {
			t.Fatalf("acks: version %d at rank %d; want every version 1..%d acked once", v, i, total)
		}
	}
	if len(got) != total {
		t.Fatalf("%d acks, want %d", len(got), total)
	}
	if v, err := e.m.Store().StreamVersion(ctx, stream); err != nil || v != total {
		t.Fatalf("stored version %d, %v; want %d", v, err, total)
	}
}

// reopen opens a new Main on the data directory and address of a closed
// one. The address was just released; the listen is retried while the
// kernel still holds it.
func reopen(t *testing.T, dir, addr string, opts ...engineOption) *engine {
	t.Helper()
	deadline := time.Now().Add(e2eTimeout)
	retry := time.NewTicker(50 * time.Millisecond)
	defer retry.Stop()
	for {
		logs := &syncBuffer{}
		m := newMain(dir, logs, append(opts, func(m *Main) { m.Config.Addr = addr })...)
		ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
		err := m.Open(ctx)
		cancel()
		if err == nil {
			return newEngine(t, m, logs)
		}
		if !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			t.Fatalf("reopen on %s: %v\n%s", addr, err, logs.String())
		}
		t.Logf("reopen: %v; retrying", err)
		<-retry.C
	}
}

// snapshotStreams reads the states of streams and the whole log.
func (e *engine) snapshotStreams(t *testing.T, streams []string) (map[string]string, []events.Event) {
	t.Helper()
	states := map[string]string{}
	for _, s := range streams {
		states[s] = string(e.state(s))
	}
	return states, e.allEvents()
}

func TestE2ERestartKeepsStateAndClientResumes(t *testing.T) {
	dir := t.TempDir()
	e1 := startEngine(t, dir)
	addr := e1.addr

	states := newCollector[client.StateChange]()
	c := e1.dialClient(t, client.Options{
		ReconnectMin: 10 * time.Millisecond,
		ReconnectMax: 100 * time.Millisecond,
		OnState:      states.add,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*e2eTimeout)
	defer cancel()
	seen := newCollector[events.Event]()
	sub, err := c.Subscribe(ctx, "room:lobby", client.From(0), "", seen.add)
	if err != nil {
		t.Fatal(err)
	}
	post := func(text string) uint64 {
		t.Helper()
		ack, err := c.Command(ctx, "room:lobby", "PostMessage", map[string]string{"user": "ann", "text": text}, "msg-"+text)
		if err != nil {
			t.Fatalf("post %q: %v", text, err)
		}
		return ack.Version
	}
	for i := 1; i <= 5; i++ {
		if v := post(fmt.Sprint(i)); v != uint64(i) {
			t.Fatalf("message %d acked at version %d", i, v)
		}
	}
	seen.waitFor(t, "versions 1-5", func(evs []events.Event) bool { return len(evs) >= 5 })

	// Streams of every kind, with their background steps finished, so that
	// a restart has nothing left to do that would change them.
	e1.command("game:final", "UpdateScore", map[string]any{"team": "home", "score": 2})
	e1.command("game:final", "EndGame", map[string]any{})
	r := e1.do("POST", "/signup", []byte(`{"email":"bob@example.com","name":"Bob"}`), nil)
	if r.status != http.StatusAccepted {
		t.Fatalf("signup: %s", r)
	}
	var su struct{ User string }
	if err := json.Unmarshal(r.body, &su); err != nil {
		t.Fatal(err)
	}
	r = e1.do("POST", "/orders", []byte(`{"items":[{"name":"soup","qty":2}],"email":"bob@example.com"}`), nil)
	if r.status != http.StatusAccepted {
		t.Fatalf("order: %s", r)
	}
	var ord struct{ Order string }
	if err := json.Unmarshal(r.body, &ord); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the welcome email", func() (bool, error) {
		s, err := e1.stateField(su.User, "welcome_email")
		return s == "done", err
	})
	eventually(t, "the order's receipt", func() (bool, error) {
		s, err := e1.stateField(ord.Order, "steps")
		return s == `{"kitchen":"done","cook":"done","receipt":"done"}`, err
	})
	eventually(t, "the kitchen ticket closed", func() (bool, error) {
		s, err := e1.stateField("kitchen:main", "tickets")
		return s == "[]", err
	})
	ctxPending, cancelPending := context.WithTimeout(ctx, e2eTimeout)
	defer cancelPending()
	eventually(t, "no pending background work", func() (bool, error) {
		p, err := e1.m.Store().Pending(ctxPending)
		return len(p) == 0, err
	})
	streams := []string{"room:lobby", "game:final", su.User, ord.Order, "kitchen:main"}
	wantStates, wantLog := e1.snapshotStreams(t, streams)

	if err := e1.close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	states.waitFor(t, "the client to notice the restart", func(s []client.StateChange) bool {
		return slices.ContainsFunc(s, func(c client.StateChange) bool { return c.State == client.StateDisconnected })
	})
	// A command issued while the server is away waits for the next
	// connection. It goes to a stream of its own, so that the comparisons
	// below do not depend on when it lands.
	during := make(chan error, 1)
	go func() {
		_, err := c.Command(ctx, "room:away", "PostMessage", map[string]string{"user": "ann", "text": "while away"}, "msg-away")
		during <- err
	}()

	e2 := reopen(t, dir, addr)
	gotStates, gotLog := e2.snapshotStreams(t, streams)
	for _, s := range streams {
		if gotStates[s] != wantStates[s] {
			t.Errorf("%s after the restart:\n%s\nbefore:\n%s", s, gotStates[s], wantStates[s])
		}
	}
	if len(gotLog) < len(wantLog) || !sameEvents(gotLog[:len(wantLog)], wantLog, true) {
		t.Errorf("the log changed across the restart: %d events before, %d after", len(wantLog), len(gotLog))
	}
	for _, ev := range gotLog[min(len(wantLog), len(gotLog)):] {
		if ev.Stream != "room:away" {
			t.Errorf("an event appeared across the restart: %+v", ev)
		}
	}
	// More messages from another writer, before or after the client is
	// back: the subscription must see each once.
	for i := 6; i <= 8; i++ {
		e2.command("room:lobby", "PostMessage", map[string]string{"user": "cy", "text": fmt.Sprint(i)})
	}
	select {
	case err := <-during:
		if err != nil {
			t.Fatalf("the command sent while the server was away: %v", err)
		}
	case <-time.After(e2eTimeout):
		t.Fatal("the command sent while the server was away was never acked")
	}
	states.waitFor(t, "the client to reconnect", func(s []client.StateChange) bool {
		return slices.ContainsFunc(s, func(c client.StateChange) bool { return c.State == client.StateReconnected })
	})
	evs := seen.waitFor(t, "versions 1-8", func(evs []events.Event) bool { return len(evs) >= 8 })
	for i, ev := range evs {
		if ev.Version != uint64(i+1) {
			t.Fatalf("the subscription saw versions %v, want 1..8 once each in order", versionsOf(evs))
		}
	}
	if sub.SubscribedAt() < 5 {
		t.Errorf("re-subscribed at version %d, want ≥ 5 (resume where it was)", sub.SubscribedAt())
	}
	if err := sub.Err(); err != nil {
		t.Errorf("subscription ended: %v", err)
	}
	// One more live event, and no duplicate of the earlier ones.
	e2.command("room:lobby", "PostMessage", map[string]string{"user": "cy", "text": "last"})
	evs = seen.waitFor(t, "version 9", func(evs []events.Event) bool { return len(evs) >= 9 })
	if len(evs) != 9 || evs[8].Version != 9 {
		t.Fatalf("the subscription saw versions %v, want 1..9", versionsOf(evs))
	}
	away := readEvents(t, e2, "room:away")
	if len(away) != 1 || away[0].ID == "" {
		t.Errorf("room:away holds %d events, want the one command sent while away", len(away))
	}
}

// readEvents reads one stream from the running engine's store.
func readEvents(t *testing.T, e *engine, stream string) []events.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	evs, err := e.m.Store().ReadStream(ctx, stream, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func versionsOf(evs []events.Event) []uint64 {
	v := make([]uint64, len(evs))
	for i, e := range evs {
		v[i] = e.Version
	}
	return v
}

// sameEvents compares two logs field by field; positions only when
// withPositions (an import assigns its own).
func sameEvents(a, b []events.Event, withPositions bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if !withPositions {
			x.Position, y.Position = 0, 0
		}
		if x.Stream != y.Stream || x.Version != y.Version || x.Position != y.Position || x.ID != y.ID ||
			x.Type != y.Type || !x.Time.Equal(y.Time) || x.Meta != y.Meta || !jsonBytesEqual(x.Data, y.Data) {
			return false
		}
	}
	return true
}

// jsonBytesEqual compares two JSON documents ignoring insignificant
// whitespace.
func jsonBytesEqual(a, b []byte) bool {
	var ca, cb bytes.Buffer
	if json.Compact(&ca, a) != nil || json.Compact(&cb, b) != nil {
		return bytes.Equal(a, b)
	}
	return bytes.Equal(ca.Bytes(), cb.Bytes())
}

func TestE2ERestartResumesBackgroundSteps(t *testing.T) {
	// Shut down while a welcome email is being sent and an order cooks:
	// both steps run again after the restart, and the email is sent once.
	dir := t.TempDir()
	outbox := filepath.Join(dir, "outbox")
	mailer := &heldMailer{inner: mail.NewOutbox(outbox), entered: make(chan string, 8), release: make(chan struct{})}
	e1 := startEngine(t, dir, func(m *Main) {
		m.Mailer = mailer
		m.Config.CookTime = time.Minute // never ready before the restart
	})
	t.Cleanup(mailer.open)
	r := e1.do("POST", "/signup", []byte(`{"email":"eve@example.com","name":"Eve"}`), nil)
	if r.status != http.StatusAccepted {
		t.Fatalf("signup: %s", r)
	}
	var su struct{ User string }
	if err := json.Unmarshal(r.body, &su); err != nil {
		t.Fatal(err)
	}
	r = e1.do("POST", "/orders", []byte(`{"items":[{"name":"stew","qty":1}]}`), nil)
	if r.status != http.StatusAccepted {
		t.Fatalf("order: %s", r)
	}
	var ord struct{ Order string }
	if err := json.Unmarshal(r.body, &ord); err != nil {
		t.Fatal(err)
	}
	select {
	case <-mailer.entered:
	case <-time.After(e2eTimeout):
		t.Fatal("the welcome email was never started")
	}
	eventually(t, "the order in the kitchen", func() (bool, error) {
		s, err := e1.stateField(ord.Order, "status")
		return s == "in_kitchen", err
	})
	if err := e1.close(); err != nil {
		t.Fatalf("close with steps in flight: %v", err)
	}

	e2 := reopen(t, dir, "127.0.0.1:0") // the real outbox, a short cook
	eventually(t, "the welcome email after the restart", func() (bool, error) {
		s, err := e2.stateField(su.User, "welcome_email")
		if s == "failed" {
			return false, fmt.Errorf("welcome_email failed: %s", e2.state(su.User))
		}
		return s == "done", err
	})
	eventually(t, "the order ready after the restart", func() (bool, error) {
		s, err := e2.stateField(ord.Order, "status")
		return s == "ready", err
	})
	files, err := filepath.Glob(filepath.Join(outbox, "*.eml"))
	if err != nil || len(files) != 1 {
		t.Fatalf("outbox holds %v (%v), want one email", files, err)
	}
	for _, ev := range e2.allEvents() {
		if ev.Type == "StepFailed" {
			t.Errorf("a step was recorded as failed by the shutdown: %s %s", ev.Stream, ev.Data)
		}
	}
}

package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/b6368a97/engine/events"
)

const waitLimit = 15 * time.Second

// waitUntil polls cond until it holds or the deadline passes. It runs on
// the test goroutine only.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			var b strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
			t.Fatalf("timed out waiting for %s; goroutines:\n%s", what, b.String())
		}
		<-tick.C
	}
}

// recorder collects what a subscription's handler sees.
type recorder struct {
	mu       sync.Mutex
	evs      []events.Event
	presence [][]string
}

func (r *recorder) handle(e events.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, e)
}

func (r *recorder) onPresence(m []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.presence = append(r.presence, m)
}

func (r *recorder) versions() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	v := make([]uint64, len(r.evs))
	for i, e := range r.evs {
		v[i] = e.Version
	}
	return v
}

func (r *recorder) lastPresence() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.presence) == 0 {
		return nil
	}
	return r.presence[len(r.presence)-1]
}

// states records OnState calls.
type states struct {
	mu  sync.Mutex
	all []StateChange
}

func (s *states) on(c StateChange) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.all = append(s.all, c)
}

func (s *states) count(st State) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.all {
		if c.State == st {
			n++
		}
	}
	return n
}

func (s *states) last(st State) StateChange {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.all) - 1; i >= 0; i-- {
		if s.all[i].State == st {
			return s.all[i]
		}
	}
	return StateChange{}
}

func seq(from, to uint64) []uint64 {
	var v []uint64
	for i := from; i <= to; i++ {
		v = append(v, i)
	}
	return v
}

// fastOptions reconnects within milliseconds so that tests with many
// reconnects stay quick.
func fastOptions(st *states) Options {
	o := Options{ReconnectMin: time.Millisecond, ReconnectMax: 10 * time.Millisecond}
	if st != nil {
		o.OnState = st.on
	}
	return o
}

func dial(t *testing.T, f *fakeServer, o Options) *Client {
	t.Helper()
	c, err := Dial(context.Background(), f.URL(), o)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	// A round trip: the server has registered the connection, so that
	// hooks such as DropAll see it.
	if err := c.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	return c
}

func subscribe(t *testing.T, c *Client, stream string, from *uint64, r *recorder, opts ...SubscribeOption) *Subscription {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	sub, err := c.Subscribe(ctx, stream, from, "", r.handle, opts...)
	if err != nil {
		t.Fatalf("Subscribe %s: %v", stream, err)
	}
	return sub
}

func TestSubscribeCatchUpThenLive(t *testing.T) {
	f := newFakeServer(t)
	c := dial(t, f, fastOptions(nil))
	tests := []struct {
		name     string
		existing int
		from     *uint64
		want     []uint64 // after 3 more appends
		atStart  uint64   // Version() right after Subscribe
	}{
		{"whole stream", 5, From(0), seq(1, 8), 0},
		{"from the middle", 5, From(3), seq(4, 8), 3},
		{"live only", 5, nil, seq(6, 8), 5},
		{"empty stream", 0, From(0), seq(1, 3), 0},
		{"empty stream live only", 0, nil, seq(1, 3), 0},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stream := fmt.Sprintf("room:catchup%d", i)
			for range tt.existing {
				f.Append(stream)
			}
			var r recorder
			sub := subscribe(t, c, stream, tt.from, &r)
			if got := sub.SubscribedAt(); got != uint64(tt.existing) {
				t.Errorf("SubscribedAt = %d, want %d", got, tt.existing)
			}
			if tt.from == nil {
				if got := sub.Version(); got != tt.atStart {
					t.Errorf("Version right after a live-only Subscribe = %d, want %d", got, tt.atStart)
				}
			}
			for range 3 {
				f.Append(stream)
			}
			last := tt.want[len(tt.want)-1]
			waitUntil(t, "the last event", func() bool { return sub.Version() == last })
			if got := r.versions(); !slices.Equal(got, tt.want) {
				t.Fatalf("handler saw %v, want %v", got, tt.want)
			}
		})
	}
}

// TestExactlyOnceAcrossReconnects drops the connection many times, in every
// way the server may, while events keep being appended, and checks that
// each subscription's handler saw every version once, in order: against a
// faithful server, and against a sloppy one whose catch-up overlaps what
// was already sent and which duplicates and loses live frames.
func TestExactlyOnceAcrossReconnects(t *testing.T) {
	const rounds, perRound = 25, 150
	for _, sloppy := range []bool{false, true} {
		t.Run(fmt.Sprintf("sloppy=%v", sloppy), func(t *testing.T) {
			f := newFakeServer(t, func(f *fakeServer) { f.sloppy = sloppy })
			var st states
			c := dial(t, f, fastOptions(&st))

			for range 50 {
				f.Append("room:busy")
				f.Append("game:busy")
			}
			var whole, live recorder
			subWhole := subscribe(t, c, "room:busy", From(0), &whole)
			subLive := subscribe(t, c, "game:busy", nil, &live)
			liveBase := subLive.Version()

			codes := []websocket.StatusCode{0, websocket.StatusGoingAway, websocket.StatusPolicyViolation}
			for round := range rounds {
				burst := make(chan struct{})
				go func() {
					defer close(burst)
					for range perRound {
						f.Append("room:busy")
						f.Append("game:busy")
						runtime.Gosched()
					}
				}()
				seen := subWhole.Version()
				waitUntil(t, "progress before the drop", func() bool { return subWhole.Version() > seen })
				// The new connection's subscriptions are in place on the
				// server, so the drop below hits a connection.
				waitUntil(t, "both subscriptions on the server", func() bool { _, _, n := f.Stats(); return n == 2 })
				f.DropAll(codes[round%len(codes)])
				<-burst
				waitUntil(t, fmt.Sprintf("reconnect %d", round+1), func() bool { return st.count(StateReconnected) > round })
			}
			// A last event after the chaos: with a sloppy server, the
			// previous one may have been lost and only a later one shows
			// the gap.
			f.Append("room:busy")
			f.Append("game:busy")

			total := uint64(50 + rounds*perRound + 1)
			waitUntil(t, "every event of room:busy", func() bool { return subWhole.Version() == total })
			waitUntil(t, "every event of game:busy", func() bool { return subLive.Version() == total })
			if got := whole.versions(); !slices.Equal(got, seq(1, total)) {
				t.Fatalf("room:busy: handler saw %d events, not exactly 1..%d in order (first mismatch at index %d)", len(got), total, firstMismatch(got, seq(1, total)))
			}
			if got := live.versions(); !slices.Equal(got, seq(liveBase+1, total)) {
				t.Fatalf("game:busy: handler saw %d events, not exactly %d..%d in order", len(got), liveBase+1, total)
			}
			if n := st.count(StateDisconnected); n < rounds {
				t.Errorf("%d disconnects reported, want at least %d", n, rounds)
			}
		})
	}
}

func firstMismatch(a, b []uint64) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestGapResubscribes: an event frame that never arrives is noticed at the
// next one, and the client re-subscribes from the last version it saw.
func TestGapResubscribes(t *testing.T) {
	f := newFakeServer(t)
	c := dial(t, f, fastOptions(nil))
	var r recorder
	sub := subscribe(t, c, "room:gap", From(0), &r)
	f.Append("room:gap")
	waitUntil(t, "version 1", func() bool { return sub.Version() == 1 })
	_, subscribesBefore, _ := f.Stats()

	f.SkipEvents("room:gap", 2)
	for range 5 {
		f.Append("room:gap")
	}
	waitUntil(t, "version 6", func() bool { return sub.Version() == 6 })
	if got := r.versions(); !slices.Equal(got, seq(1, 6)) {
		t.Fatalf("handler saw %v, want 1..6", got)
	}
	if _, subscribes, _ := f.Stats(); subscribes != subscribesBefore+1 {
		t.Errorf("server saw %d subscribes after the gap, want 1 re-subscribe", subscribes-subscribesBefore)
	}
}

func TestCommand(t *testing.T) {
	f := newFakeServer(t)
	c := dial(t, f, fastOptions(nil))
	ctx := context.Background()
	tests := []struct {
		name     string
		stream   string
		typ      string
		id       string
		wantAck  Ack
		wantCode string
	}{
		{"ack", "room:cmd", "PostMessage", "", Ack{"room:cmd", 1}, ""},
		{"second ack", "room:cmd", "PostMessage", "", Ack{"room:cmd", 2}, ""},
		{"with id", "room:cmd", "PostMessage", "k1", Ack{"room:cmd", 3}, ""},
		{"same id again is deduplicated", "room:cmd", "PostMessage", "k1", Ack{"room:cmd", 3}, ""},
		{"conflict", "room:cmd", "Reject", "", Ack{}, "conflict"},
		{"bad stream", "nope", "PostMessage", "", Ack{}, "bad_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ack, err := c.Command(ctx, tt.stream, tt.typ, map[string]string{"user": "ann", "text": "hi"}, tt.id)
			if tt.wantCode != "" {
				var e *Error
				if !errors.As(err, &e) || e.Code != tt.wantCode {
					t.Fatalf("err = %v, want *Error with code %q", err, tt.wantCode)
				}
				if ErrorCode(err) != tt.wantCode {
					t.Errorf("ErrorCode = %q", ErrorCode(err))
				}
				return
			}
			if err != nil {
				t.Fatalf("Command: %v", err)
			}
			if ack != tt.wantAck {
				t.Fatalf("ack = %+v, want %+v", ack, tt.wantAck)
			}
		})
	}
	if got := len(f.Log("room:cmd")); got != 3 {
		t.Errorf("room:cmd holds %d events, want 3", got)
	}
	var data map[string]string
	if err := json.Unmarshal(f.Log("room:cmd")[0].Data, &data); err != nil || data["text"] != "hi" {
		t.Errorf("stored data = %s, %v", f.Log("room:cmd")[0].Data, err)
	}
}

// TestCommandAfterLostAck: the server applies the command and the
// connection dies before the ack. With an id the client sends it again on
// the next connection and gets the first result; without one it reports
// ErrDisconnected rather than risk applying it twice.
func TestCommandAfterLostAck(t *testing.T) {
	tests := []struct {
		name    string
		id      string
		wantErr error
	}{
		{"with id: retried, applied once", "order-1", nil},
		{"without id: ErrDisconnected", "", ErrDisconnected},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeServer(t)
			var st states
			c := dial(t, f, fastOptions(&st))
			stream := fmt.Sprintf("order:lost%d", i)
			f.LoseAck("PlaceOrder", 1)
			ack, err := c.Command(context.Background(), stream, "PlaceOrder", nil, tt.id)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
			} else if err != nil || ack != (Ack{stream, 1}) {
				t.Fatalf("Command = %+v, %v; want version 1", ack, err)
			}
			// Either way the server applied it exactly once.
			if n := len(f.Log(stream)); n != 1 {
				t.Fatalf("server log holds %d events, want 1", n)
			}
			// And the client is usable again on a new connection.
			ack, err = c.Command(context.Background(), stream, "PlaceOrder", nil, "")
			if err != nil || ack.Version != 2 {
				t.Fatalf("next Command = %+v, %v", ack, err)
			}
			if accepts, _, _ := f.Stats(); accepts != 2 {
				t.Errorf("server accepted %d connections, want 2", accepts)
			}
		})
	}
}

// TestTooLargeIsNotRetried: a frame over the server's limit closes the
// connection with 1009; repeating it would fail the same way, so even a
// command with an id returns ErrTooLarge.
func TestTooLargeIsNotRetried(t *testing.T) {
	f := newFakeServer(t, func(f *fakeServer) { f.readLimit = 1024 })
	var st states
	c := dial(t, f, fastOptions(&st))
	big := map[string]string{"text": strings.Repeat("x", 4096)}
	_, err := c.Command(context.Background(), "room:big", "PostMessage", big, "big-1")
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	if n := len(f.Log("room:big")); n != 0 {
		t.Fatalf("server log holds %d events, want 0", n)
	}
	if ack, err := c.Command(context.Background(), "room:big", "PostMessage", nil, ""); err != nil || ack.Version != 1 {
		t.Fatalf("small Command after the 1009 = %+v, %v", ack, err)
	}
}

func TestReconnectsOnServerClose(t *testing.T) {
	tests := []struct {
		name string
		code websocket.StatusCode // 0: the TCP connection just dies
	}{
		{"abnormal", 0},
		{"going away", websocket.StatusGoingAway},
		{"slow consumer", websocket.StatusPolicyViolation},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeServer(t)
			var st states
			c := dial(t, f, fastOptions(&st))
			stream := fmt.Sprintf("game:close%d", i)
			var r recorder
			sub := subscribe(t, c, stream, From(0), &r)
			f.Append(stream)
			waitUntil(t, "version 1", func() bool { return sub.Version() == 1 })

			f.DropAll(tt.code)
			waitUntil(t, "reconnect", func() bool { return st.count(StateReconnected) == 1 })
			if tt.code != 0 {
				if got := websocket.CloseStatus(st.last(StateDisconnected).Err); got != tt.code {
					t.Errorf("disconnect cause %v has status %v, want %v", st.last(StateDisconnected).Err, got, tt.code)
				}
			}
			f.Append(stream)
			waitUntil(t, "version 2", func() bool { return sub.Version() == 2 })
			if got := r.versions(); !slices.Equal(got, seq(1, 2)) {
				t.Fatalf("handler saw %v", got)
			}
			if err := c.Ping(context.Background()); err != nil {
				t.Fatalf("Ping after reconnect: %v", err)
			}
		})
	}
}

// TestWaitsForConnection: between connections a command not yet sent and a
// new subscription wait for the next connection instead of failing, and
// each takes effect once.
func TestWaitsForConnection(t *testing.T) {
	f := newFakeServer(t)
	var st states
	c := dial(t, f, fastOptions(&st))
	f.Append("room:w")
	f.refuse.Store(true)
	f.DropAll(websocket.StatusGoingAway)
	waitUntil(t, "the disconnect", func() bool { return st.count(StateDisconnected) == 1 })

	type result struct {
		ack Ack
		sub *Subscription
		err error
	}
	cmd, subd := make(chan result, 1), make(chan result, 1)
	var r recorder
	go func() {
		ack, err := c.Command(context.Background(), "room:w", "PostMessage", nil, "")
		cmd <- result{ack: ack, err: err}
	}()
	go func() {
		sub, err := c.Subscribe(context.Background(), "room:w", From(0), "", r.handle)
		subd <- result{sub: sub, err: err}
	}()
	// Refused upgrades are retried (a 503 is passing); let a few fail.
	waitUntil(t, "refused attempts", func() bool { return f.refused.Load() >= 3 })
	if st.count(StateReconnected) != 0 || st.count(StateFailed) != 0 {
		t.Fatal("the client reconnected or gave up while upgrades were refused")
	}
	f.refuse.Store(false)

	cr, sr := <-cmd, <-subd
	if cr.err != nil || cr.ack.Version != 2 {
		t.Fatalf("Command = %+v, %v; want version 2", cr.ack, cr.err)
	}
	if sr.err != nil {
		t.Fatalf("Subscribe: %v", sr.err)
	}
	waitUntil(t, "both events", func() bool { return sr.sub.Version() == 2 })
	if got := r.versions(); !slices.Equal(got, seq(1, 2)) {
		t.Fatalf("handler saw %v", got)
	}
	if n := len(f.Log("room:w")); n != 2 {
		t.Fatalf("log holds %d events, want 2", n)
	}
}

// TestKeepAliveDropsSilentConnection: a server that stops answering
// WebSocket pings is dropped and replaced.
func TestKeepAliveDropsSilentConnection(t *testing.T) {
	f := newFakeServer(t)
	var st states
	o := fastOptions(&st)
	o.KeepAlive = 20 * time.Millisecond
	c := dial(t, f, o)
	var r recorder
	sub := subscribe(t, c, "room:k", From(0), &r)
	f.mute.Store(true)
	waitUntil(t, "the keepalive to drop the connection", func() bool { return st.count(StateDisconnected) >= 1 })
	f.mute.Store(false)
	waitUntil(t, "reconnect", func() bool { return st.count(StateReconnected) >= 1 })
	f.Append("room:k")
	waitUntil(t, "the event on the new connection", func() bool { return sub.Version() == 1 })
}

func TestPing(t *testing.T) {
	f := newFakeServer(t)
	c := dial(t, f, fastOptions(nil))
	for range 3 {
		if err := c.Ping(context.Background()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	}
}

func TestPresence(t *testing.T) {
	f := newFakeServer(t)
	ann := dial(t, f, fastOptions(nil))
	bob := dial(t, f, fastOptions(nil))
	ctx := context.Background()
	var r recorder
	if _, err := ann.Subscribe(ctx, "room:p", nil, "ann", r.handle, WithPresence(r.onPresence)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "ann present", func() bool { return slices.Equal(r.lastPresence(), []string{"ann"}) })
	bobSub, err := bob.Subscribe(ctx, "room:p", nil, "bob", nil)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "bob joins", func() bool { return slices.Equal(r.lastPresence(), []string{"ann", "bob"}) })
	if err := bobSub.Unsubscribe(ctx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "bob leaves", func() bool { return slices.Equal(r.lastPresence(), []string{"ann"}) })
}

func TestUnsubscribe(t *testing.T) {
	f := newFakeServer(t)
	c := dial(t, f, fastOptions(nil))
	ctx := context.Background()
	var r recorder
	sub := subscribe(t, c, "room:u", From(0), &r)
	if _, err := c.Subscribe(ctx, "room:u", nil, "", r.handle); !errors.Is(err, ErrAlreadySubscribed) {
		t.Fatalf("second Subscribe: err = %v, want ErrAlreadySubscribed", err)
	}
	f.Append("room:u")
	waitUntil(t, "version 1", func() bool { return sub.Version() == 1 })
	if err := sub.Unsubscribe(ctx); err != nil {
		t.Fatalf("Unsubscribe: %v", err)
	}
	select {
	case <-sub.Done():
	case <-time.After(waitLimit):
		t.Fatal("Done not closed after Unsubscribe")
	}
	if err := sub.Err(); err != nil {
		t.Errorf("Err after Unsubscribe = %v", err)
	}
	if _, _, n := f.Stats(); n != 0 {
		t.Fatalf("server still has %d subscribers", n)
	}
	f.Append("room:u")

	// Subscribing again works, and the first handler saw nothing more.
	var r2 recorder
	sub2 := subscribe(t, c, "room:u", From(1), &r2)
	waitUntil(t, "version 2 on the new subscription", func() bool { return sub2.Version() == 2 })
	if got := r.versions(); !slices.Equal(got, []uint64{1}) {
		t.Fatalf("unsubscribed handler saw %v", got)
	}
}

func TestSubscribeRefused(t *testing.T) {
	f := newFakeServer(t)
	c := dial(t, f, fastOptions(nil))
	var r recorder
	_, err := c.Subscribe(context.Background(), "no-kind", From(0), "", r.handle)
	if ErrorCode(err) != "bad_request" {
		t.Fatalf("err = %v, want bad_request", err)
	}
	// The refused stream is not left registered.
	if _, err := c.Subscribe(context.Background(), "no-kind", From(0), "", r.handle); ErrorCode(err) != "bad_request" {
		t.Fatalf("second try: err = %v, want bad_request again", err)
	}
}

// TestHandlerMayCallClient: handlers run off the reader goroutine, so a
// handler may wait for a reply without deadlocking the connection.
func TestHandlerMayCallClient(t *testing.T) {
	f := newFakeServer(t)
	c := dial(t, f, fastOptions(nil))
	errs := make(chan error, 10)
	var sub *Subscription
	sub, err := c.Subscribe(context.Background(), "room:echo", From(0), "", func(e events.Event) {
		if e.Version < 5 {
			_, err := c.Command(context.Background(), "room:echo", "PostMessage", nil, "")
			errs <- err
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	f.Append("room:echo")
	waitUntil(t, "the chain of 5", func() bool { return sub.Version() == 5 })
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("Command from the handler: %v", err)
		}
	}
}

func TestToken(t *testing.T) {
	f := newFakeServer(t, func(f *fakeServer) { f.token = "s3cret" })
	if _, err := Dial(context.Background(), f.URL(), fastOptions(nil)); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("Dial without token: err = %v, want a 401 refusal", err)
	}
	o := fastOptions(nil)
	o.Token = "s3cret"
	c := dial(t, f, o)
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	f := newFakeServer(t)
	var st states
	o := fastOptions(&st)
	o.MaxAttempts = 3
	c := dial(t, f, o)
	f.Close()
	select {
	case <-c.Done():
	case <-time.After(waitLimit):
		t.Fatal("client did not give up")
	}
	if c.Err() == nil || errors.Is(c.Err(), ErrClosed) {
		t.Fatalf("Err = %v, want the reason it gave up", c.Err())
	}
	if st.count(StateFailed) != 1 {
		t.Errorf("StateFailed reported %d times", st.count(StateFailed))
	}
	if _, err := c.Command(context.Background(), "room:x", "PostMessage", nil, "k"); err == nil {
		t.Fatal("Command on a failed client succeeded")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestCloseFailsWaitingCalls(t *testing.T) {
	f := newFakeServer(t)
	c := dial(t, f, fastOptions(nil))
	var r recorder
	sub := subscribe(t, c, "room:c", From(0), &r)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	<-sub.Done()
	if !errors.Is(sub.Err(), ErrClosed) {
		t.Errorf("subscription Err = %v, want ErrClosed", sub.Err())
	}
	if _, err := c.Command(context.Background(), "room:c", "PostMessage", nil, ""); !errors.Is(err, ErrClosed) {
		t.Errorf("Command after Close: %v", err)
	}
	if _, err := c.Subscribe(context.Background(), "room:d", nil, "", r.handle); !errors.Is(err, ErrClosed) {
		t.Errorf("Subscribe after Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestCloseLeavesNoGoroutines runs a client through subscriptions,
// commands and reconnects, closes it and the server, and waits for the
// goroutine count to come back to where it was.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	base := runtime.NumGoroutine()
	f := newFakeServer(t)
	var st states
	o := fastOptions(&st)
	o.KeepAlive = time.Hour // the keepalive goroutine runs, and must stop too
	c, err := Dial(context.Background(), f.URL(), o)
	if err != nil {
		t.Fatal(err)
	}
	var r1, r2 recorder
	subscribe(t, c, "room:g1", From(0), &r1)
	sub2 := subscribe(t, c, "room:g2", nil, &r2)
	if _, err := c.Command(context.Background(), "room:g1", "PostMessage", nil, "x"); err != nil {
		t.Fatal(err)
	}
	f.DropAll(websocket.StatusGoingAway)
	waitUntil(t, "reconnect", func() bool { return st.count(StateReconnected) == 1 })
	if err := sub2.Unsubscribe(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if st.count(StateClosed) != 1 {
		t.Errorf("StateClosed reported %d times", st.count(StateClosed))
	}
	f.Close()
	deadline := time.Now().Add(waitLimit)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			var b strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), base, b.String())
		}
		<-tick.C
	}
}

func TestBackoff(t *testing.T) {
	const base, max = 100 * time.Millisecond, 5 * time.Second
	ceilings := []time.Duration{
		100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		1600 * time.Millisecond, 3200 * time.Millisecond, 5 * time.Second, 5 * time.Second,
	}
	t.Run("ceiling doubles up to max", func(t *testing.T) {
		for n, want := range ceilings {
			// r just under 1 gives (almost) the ceiling.
			got := backoff(n, base, max, 1-1e-12)
			if got > want || got < want-time.Microsecond {
				t.Errorf("backoff(%d, r→1) = %v, want %v", n, got, want)
			}
		}
	})
	t.Run("huge attempt numbers do not overflow", func(t *testing.T) {
		for _, n := range []int{62, 63, 64, 1000, 1 << 30} {
			if got := backoff(n, base, max, 0.5); got != max/2 {
				t.Errorf("backoff(%d, 0.5) = %v, want %v", n, got, max/2)
			}
		}
	})
	t.Run("full jitter scales with r", func(t *testing.T) {
		tests := []struct {
			r    float64
			want time.Duration
		}{{0, 0}, {0.25, 200 * time.Millisecond}, {0.5, 400 * time.Millisecond}, {0.75, 600 * time.Millisecond}}
		for _, tt := range tests {
			if got := backoff(3, base, max, tt.r); got != tt.want {
				t.Errorf("backoff(3, %v) = %v, want %v", tt.r, got, tt.want)
			}
		}
	})
	t.Run("default jitter source spreads the waits", func(t *testing.T) {
		var o Options
		o.setDefaults()
		seen := map[time.Duration]bool{}
		for range 200 {
			d := backoff(4, base, max, o.Rand())
			if d < 0 || d >= ceilings[4] {
				t.Fatalf("backoff(4) = %v, outside [0, %v)", d, ceilings[4])
			}
			seen[d] = true
		}
		if len(seen) < 150 {
			t.Errorf("only %d distinct waits in 200 draws", len(seen))
		}
	})
}

func TestEncodeData(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want string
		err  bool
	}{
		{"nil", nil, `{}`, false},
		{"map", map[string]int{"score": 2}, `{"score":2}`, false},
		{"raw", json.RawMessage(`{"a":1}`), `{"a":1}`, false},
		{"bytes", []byte(`{"b":2}`), `{"b":2}`, false},
		{"empty raw", json.RawMessage(nil), `{}`, false},
		{"invalid raw", json.RawMessage(`{`), "", true},
		{"unencodable", func() {}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := encodeData(tt.in)
			if (err != nil) != tt.err {
				t.Fatalf("err = %v", err)
			}
			if !tt.err && string(got) != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// TestDecodeEventFrame: an event frame is the envelope flattened next to
// "op"; decoding it gives back the envelope field for field.
func TestDecodeEventFrame(t *testing.T) {
	want := events.Event{
		Stream: "room:lobby", Version: 3, Position: 1042, ID: "0192f0c4", Type: "MessagePosted",
		Time: time.Date(2026, 11, 25, 16, 37, 55, 123e6, time.UTC), Data: json.RawMessage(`{"user":"ann","text":"hi"}`),
		Meta: events.Meta{Correlation: "c1", Causation: "c2"},
	}
	tests := []struct {
		name  string
		frame []byte
	}{
		{"from the events codec", eventFrame(want)},
		{"as the spec writes it", []byte(`{"op":"event","stream":"room:lobby","version":3,"position":1042,"id":"0192f0c4","type":"MessagePosted",` +
			`"time":"2026-11-25T16:37:55.123Z","data":{"user":"ann","text":"hi"},"meta":{"correlation":"c1","causation":"c2"}}`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f inFrame
			if err := json.Unmarshal(tt.frame, &f); err != nil {
				t.Fatal(err)
			}
			got := f.event()
			if f.Op != opEvent || got.Stream != want.Stream || got.Version != want.Version || got.Position != want.Position ||
				got.ID != want.ID || got.Type != want.Type || !got.Time.Equal(want.Time) || string(got.Data) != string(want.Data) || got.Meta != want.Meta {
				t.Fatalf("decoded %+v from %s, want %+v", got, tt.frame, want)
			}
		})
	}
}

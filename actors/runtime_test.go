package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
	"github.com/b6368a97/engine/mail"
)

func TestConfigValidate(t *testing.T) {
	store := rtMemStore(t)
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"minimal", Config{Store: store, Kinds: rtKinds()}, true},
		{"no store", Config{Kinds: rtKinds()}, false},
		{"no kinds", Config{Store: store}, false},
		{"nil kind", Config{Store: store, Kinds: []decider.Kind{nil}}, false},
		{"kind twice", Config{Store: store, Kinds: []decider.Kind{rtCounterKind(), rtCounterKind()}}, false},
		{"bad kind name", Config{Store: store, Kinds: []decider.Kind{decider.New(decider.Decider[int]{Name: "Bad-Name"})}}, false},
		{"negative idle", Config{Store: store, Kinds: rtKinds(), IdleTimeout: -1}, false},
		{"negative attempts", Config{Store: store, Kinds: rtKinds(), StepAttempts: -1}, false},
		{"negative max actors", Config{Store: store, Kinds: rtKinds(), MaxActors: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if _, err := New(tt.cfg); (err == nil) != tt.ok {
				t.Fatalf("New() error = %v, want ok=%v", err, tt.ok)
			}
		})
	}
	cfg := Config{Store: store, Kinds: rtKinds()}.withDefaults()
	if cfg.SnapshotEvery != 1000 || cfg.IdleTimeout != 10*time.Minute ||
		cfg.StepAttempts != 5 || cfg.StepBackoff != 200*time.Millisecond || cfg.MaxActors != 100_000 || cfg.Logger == nil || cfg.Now == nil || cfg.Observer == nil {
		t.Fatalf("defaults not applied: %+v", cfg)
	}
}

func TestExecute(t *testing.T) {
	obs := &rtObserver{}
	cfg := rtConfig(rtMemStore(t))
	cfg.Observer = obs
	r := rtStart(t, cfg)
	ctx := rtCtx(t)
	rtExec(t, r, "counter:a", "Add", `{"by":2}`) // version 1

	tests := []struct {
		name     string
		cmd      decider.Command
		expected events.ExpectedVersion
		wantErr  error
		wantVer  uint64
		wantEvs  int
	}{
		{"append", decider.Command{Stream: "counter:a", Type: "Inc"}, events.AnyVersion, nil, 2, 1},
		{"two events", decider.Command{Stream: "counter:a", Type: "AddTwice", Data: json.RawMessage(`{"by":1}`)}, events.AnyVersion, nil, 4, 2},
		{"expected version matches", decider.Command{Stream: "counter:a", Type: "Inc"}, events.Exactly(4), nil, 5, 1},
		{"expected version behind", decider.Command{Stream: "counter:a", Type: "Inc"}, events.Exactly(3), events.ErrWrongExpectedVersion, 0, 0},
		{"no stream on existing", decider.Command{Stream: "counter:a", Type: "Inc"}, events.NoStream, events.ErrWrongExpectedVersion, 0, 0},
		{"no stream on new", decider.Command{Stream: "counter:new", Type: "Inc"}, events.NoStream, nil, 1, 1},
		{"noop", decider.Command{Stream: "counter:a", Type: "Noop"}, events.AnyVersion, nil, 5, 0},
		{"decide conflict", decider.Command{Stream: "counter:a", Type: "Reject"}, events.AnyVersion, decider.ErrConflict, 0, 0},
		{"decide invalid", decider.Command{Stream: "counter:a", Type: "Add", Data: json.RawMessage(`{"by":0}`)}, events.AnyVersion, decider.ErrInvalid, 0, 0},
		{"unknown command", decider.Command{Stream: "counter:a", Type: "Frobnicate"}, events.AnyVersion, decider.ErrUnknownCommand, 0, 0},
		{"decide panics", decider.Command{Stream: "counter:a", Type: "Panic"}, events.AnyVersion, errAny, 0, 0},
		{"after the panic", decider.Command{Stream: "counter:a", Type: "Inc"}, events.AnyVersion, nil, 6, 1},
		{"unknown kind", decider.Command{Stream: "nosuch:a", Type: "Inc"}, events.AnyVersion, ErrUnknownKind, 0, 0},
		{"invalid stream", decider.Command{Stream: "counter", Type: "Inc"}, events.AnyVersion, events.ErrInvalidStream, 0, 0},
		{"invalid expected", decider.Command{Stream: "counter:a", Type: "Inc"}, events.ExpectedVersion(-5), decider.ErrInvalid, 0, 0},
		{"command id too long", decider.Command{Stream: "counter:a", Type: "Inc", ID: strings.Repeat("k", 129)}, events.AnyVersion, decider.ErrInvalid, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := r.Execute(ctx, tt.cmd, tt.expected)
			switch {
			case tt.wantErr == errAny:
				if err == nil {
					t.Fatalf("Execute = %+v, want an error", res)
				}
				return
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Execute error = %v, want %v", err, tt.wantErr)
				}
				return
			case err != nil:
				t.Fatalf("Execute: %v", err)
			}
			if res.Version != tt.wantVer || len(res.Events) != tt.wantEvs || res.Stream != tt.cmd.Stream {
				t.Fatalf("Execute = version %d with %d events on %q, want version %d with %d events", res.Version, len(res.Events), res.Stream, tt.wantVer, tt.wantEvs)
			}
			for i, e := range res.Events {
				if e.Version != tt.wantVer-uint64(len(res.Events)-1-i) || e.Position == 0 || e.ID == "" || e.Time.IsZero() || e.Stream != tt.cmd.Stream {
					t.Fatalf("event %d not as stored: %+v", i, e)
				}
			}
		})
	}
	// The wrong-expected-version error carries the current version.
	_, err := r.Execute(ctx, decider.Command{Stream: "counter:a", Type: "Inc"}, events.Exactly(1))
	if cur, ok := events.CurrentVersion(err); !ok || cur != 6 {
		t.Fatalf("CurrentVersion(%v) = %d, %v; want 6", err, cur, ok)
	}
	if s := rtState[rtCounter](t, r, "counter:a"); s.N != 2+1+1+1+1+1 || s.Version != 6 {
		t.Fatalf("state = %+v, want n 7 at version 6", s)
	}
	if got := obs.result(ResultOK); got < 5 {
		t.Fatalf("observer saw %d ok commands, want at least 5", got)
	}
	if obs.result(ResultRejected) < 4 || obs.result(ResultNoop) != 1 || obs.result(ResultWrongExpect) < 2 {
		t.Fatalf("observer results = %v", obs.results)
	}
}

// errAny marks a table case that only needs some error.
var errAny = errors.New("any error")

func TestExecuteUsesClockAndMeta(t *testing.T) {
	at := time.Date(2026, 11, 25, 16, 37, 55, 123456789, time.UTC)
	cfg := rtConfig(rtMemStore(t))
	cfg.Now = func() time.Time { return at }
	r := rtStart(t, cfg)
	res, err := r.Execute(rtCtx(t), decider.Command{Stream: "counter:a", Type: "AddTwice", Data: json.RawMessage(`{"by":1}`), ID: "k1"}, events.AnyVersion)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range res.Events {
		if !e.Time.Equal(at.Truncate(time.Millisecond)) {
			t.Errorf("event %d time = %v, want the clock's %v", i, e.Time, at)
		}
		if e.ID != derivedID("counter:a", "k1", i) || e.Meta.Causation != "k1" || e.Meta.Correlation != "k1" {
			t.Errorf("event %d id/meta = %s %+v", i, e.ID, e.Meta)
		}
	}
	res, err = r.Execute(rtCtx(t), decider.Command{Stream: "counter:a", Type: "Inc"}, events.AnyVersion)
	if err != nil {
		t.Fatal(err)
	}
	if e := res.Events[0]; e.Meta.Causation != "" || e.Meta.Correlation != e.ID || len(e.ID) != 36 || e.ID[14] != '7' {
		t.Errorf("event without command id: id %s meta %+v, want a UUIDv7 correlating itself", e.ID, e.Meta)
	}
}

func TestIdempotentCommands(t *testing.T) {
	store := rtMemStore(t)
	ctx := rtCtx(t)
	cmd := func(id, typ, data string) decider.Command {
		return decider.Command{Stream: "counter:i", Type: typ, ID: id, Data: json.RawMessage(data)}
	}
	cfg := rtConfig(store)
	cfg.IdempotencyWindow = 2
	r := rtStart(t, cfg)

	first, err := r.Execute(ctx, cmd("a", "IfBelow", `{"limit":1}`), events.AnyVersion)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("repeat returns the first result", func(t *testing.T) {
		again, err := r.Execute(ctx, cmd("a", "IfBelow", `{"limit":1}`), events.AnyVersion)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(again, first) {
			t.Fatalf("repeat = %+v, want %+v", again, first)
		}
	})
	rtExec(t, r, "counter:i", "Inc", "")
	t.Run("after the stream moved on, where Decide would now refuse", func(t *testing.T) {
		again, err := r.Execute(ctx, cmd("a", "IfBelow", `{"limit":1}`), events.AnyVersion)
		if err != nil {
			t.Fatalf("repeat: %v", err)
		}
		if !reflect.DeepEqual(again, first) {
			t.Fatalf("repeat = %+v, want %+v", again, first)
		}
	})
	t.Run("repeat with another expected version is another command", func(t *testing.T) {
		if again, err := r.Execute(ctx, cmd("a", "IfBelow", `{"limit":1}`), events.NoStream); !errors.Is(err, ErrIdempotencyMismatch) {
			t.Fatalf("repeat = %+v, %v; want ErrIdempotencyMismatch", again, err)
		}
	})
	t.Run("repeat ignores that its expected version is stale now", func(t *testing.T) {
		view, err := r.State(ctx, "counter:i", decider.Caller{})
		if err != nil {
			t.Fatal(err)
		}
		at := events.Exactly(view.Version)
		once, err := r.Execute(ctx, cmd("x", "Inc", ""), at)
		if err != nil {
			t.Fatal(err)
		}
		again, err := r.Execute(ctx, cmd("x", "Inc", ""), at)
		if err != nil || !reflect.DeepEqual(again, once) {
			t.Fatalf("repeat = %+v, %v; want the first result %+v", again, err, once)
		}
	})
	noop, err := r.Execute(ctx, cmd("n", "Noop", ""), events.AnyVersion)
	if err != nil {
		t.Fatal(err)
	}
	rtExec(t, r, "counter:i", "Inc", "")
	t.Run("a no-op repeats as a no-op", func(t *testing.T) {
		again, err := r.Execute(ctx, cmd("n", "Noop", ""), events.AnyVersion)
		if err != nil || !reflect.DeepEqual(again, noop) {
			t.Fatalf("repeat = %+v, %v; want %+v", again, err, noop)
		}
	})
	two, err := r.Execute(ctx, cmd("b", "AddTwice", `{"by":5}`), events.AnyVersion)
	if err != nil {
		t.Fatal(err)
	}
	// The window holds two ids: "c" and "d" push "b" out, so its repeat is
	// recognised by the store (same derived ids, Duplicate).
	for _, id := range []string{"c", "d"} {
		if _, err := r.Execute(ctx, cmd(id, "Inc", ""), events.AnyVersion); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("forgotten by the window, recognised by the store", func(t *testing.T) {
		again, err := r.Execute(ctx, cmd("b", "AddTwice", `{"by":5}`), events.AnyVersion)
		if err != nil || !reflect.DeepEqual(again, two) {
			t.Fatalf("repeat = %+v, %v; want %+v", again, err, two)
		}
	})
	before := rtState[rtCounter](t, r, "counter:i")
	rtStop(t, r)

	t.Run("after a restart", func(t *testing.T) {
		r2 := rtStart(t, rtConfig(store))
		again, err := r2.Execute(ctx, cmd("a", "IfBelow", `{"limit":1}`), events.AnyVersion)
		if err != nil || !reflect.DeepEqual(again, first) {
			t.Fatalf("repeat after restart = %+v, %v; want %+v", again, err, first)
		}
		if s := rtState[rtCounter](t, r2, "counter:i"); s.Version != before.Version || s.N != before.N {
			t.Fatalf("state after repeats = %+v, want %+v", s, before)
		}
	})
}

// Acceptance 2: two runtimes on one store activate the same stream and
// race commands; no update is lost and no version is written twice.
func TestTwoRuntimesOneStore(t *testing.T) {
	for _, st := range []struct {
		name string
		open func(t *testing.T) events.Store
	}{
		{"memstore", func(t *testing.T) events.Store { return rtMemStore(t) }},
		{"pebblestore", func(t *testing.T) events.Store { return rtOpenPebble(t, t.TempDir()) }},
	} {
		t.Run(st.name, func(t *testing.T) {
			store := st.open(t)
			rts := []*Runtime{rtStart(t, rtConfig(store)), rtStart(t, rtConfig(store))}
			const workers, each = 4, 50
			ctx := rtCtx(t)
			var wg sync.WaitGroup
			var mu sync.Mutex
			var acked []events.Event
			conflicts := 0
			errs := make(chan error, len(rts)*workers)
			for _, r := range rts {
				for w := 0; w < workers; w++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := 0; i < each; {
							res, err := r.Execute(ctx, decider.Command{Stream: "counter:race", Type: "Inc"}, events.AnyVersion)
							if errors.Is(err, events.ErrWrongExpectedVersion) {
								// Lost the race twice: nothing was stored, so
								// retrying is the caller's right move.
								mu.Lock()
								conflicts++
								mu.Unlock()
								continue
							}
							if err != nil {
								errs <- err
								return
							}
							mu.Lock()
							acked = append(acked, res.Events...)
							mu.Unlock()
							i++
						}
					}()
				}
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatalf("Execute: %v", err)
			}
			total := len(rts) * workers * each
			stored, err := store.ReadStream(ctx, "counter:race", 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(stored) != total || len(acked) != total {
				t.Fatalf("stored %d events, acknowledged %d, want %d each", len(stored), len(acked), total)
			}
			ids := map[string]bool{}
			for i, e := range stored {
				if e.Version != uint64(i+1) {
					t.Fatalf("event %d has version %d", i, e.Version)
				}
				ids[e.ID] = true
			}
			versions := map[uint64]bool{}
			for _, e := range acked {
				if !ids[e.ID] || versions[e.Version] {
					t.Fatalf("acknowledged event %s v%d missing from the store or acknowledged twice", e.ID, e.Version)
				}
				versions[e.Version] = true
			}
			// A fresh activation (a third runtime) sees the exact count.
			r3 := rtStart(t, rtConfig(store))
			if s := rtState[rtCounter](t, r3, "counter:race"); s.N != total || s.Version != uint64(total) {
				t.Fatalf("state = n %d v %d, want %d", s.N, s.Version, total)
			}
			// A racing runtime catches up on its next command.
			for i, r := range rts {
				res := rtExec(t, r, "counter:race", "Inc", "")
				if res.Version != uint64(total+i+1) {
					t.Fatalf("runtime %d appended at version %d, want %d", i, res.Version, total+i+1)
				}
			}
			t.Logf("%d commands, %d reported conflicts retried by the callers", total, conflicts)
		})
	}
}

func TestSnapshotReplayEqualsFullReplay(t *testing.T) {
	store := rtMemStore(t)
	cfg := rtConfig(store)
	cfg.SnapshotEvery = 10
	r := rtStart(t, cfg)
	for i := 1; i <= 37; i++ {
		rtExec(t, r, "counter:s", "Add", fmt.Sprintf(`{"by":%d}`, i%7+1))
	}
	live, err := r.State(rtCtx(t), "counter:s", decider.Caller{})
	if err != nil {
		t.Fatal(err)
	}
	rtStop(t, r)

	snap, err := store.LoadSnapshot(rtCtx(t), "counter:s")
	if err != nil || snap.Version != 30 {
		t.Fatalf("snapshot = v%d, %v; want version 30", snap.Version, err)
	}
	// Full replay, by hand, from the first event.
	k := rtCounterKind()
	s := k.Initial("counter:s")
	for ev, err := range events.IterStream(rtCtx(t), store, "counter:s", 0) {
		if err != nil {
			t.Fatal(err)
		}
		if s, err = k.Evolve(s, ev); err != nil {
			t.Fatal(err)
		}
	}
	full, err := k.MarshalState(s)
	if err != nil {
		t.Fatal(err)
	}
	// A new runtime activates from the snapshot plus 7 events.
	r2 := rtStart(t, rtConfig(store))
	fromSnap, err := r2.State(rtCtx(t), "counter:s", decider.Caller{})
	if err != nil {
		t.Fatal(err)
	}
	if string(fromSnap.JSON) != string(full) || string(live.JSON) != string(full) || fromSnap.Version != 37 {
		t.Fatalf("states differ:\nsnapshot+tail %s\nfull replay   %s\nlive          %s", fromSnap.JSON, full, live.JSON)
	}
}

func TestStateOfUnknownStream(t *testing.T) {
	obs := &rtObserver{}
	cfg := rtConfig(rtMemStore(t))
	cfg.Observer = obs
	cfg.IdleTimeout = 20 * time.Millisecond
	r := rtStart(t, cfg)
	tests := []struct {
		stream string
		want   error
	}{
		{"counter:nobody", events.ErrNotFound},
		{"nosuch:x", ErrUnknownKind},
		{"no-colon", events.ErrInvalidStream},
	}
	for _, tt := range tests {
		t.Run(tt.stream, func(t *testing.T) {
			if _, err := r.State(rtCtx(t), tt.stream, decider.Caller{}); !errors.Is(err, tt.want) {
				t.Fatalf("State = %v, want %v", err, tt.want)
			}
		})
	}
	// The actor that answered does not stay around.
	rtWaitFor(t, "the actor of the unknown stream to passivate", func() bool {
		return obs.passivated.Load() == obs.activated.Load() && !r.rtActive("counter:nobody")
	})
}

// Acceptance 3: passivation then reactivation preserves state.
func TestPassivationPreservesState(t *testing.T) {
	obs := &rtObserver{}
	cfg := rtConfig(rtMemStore(t))
	cfg.Observer = obs
	cfg.IdleTimeout = 10 * time.Millisecond
	r := rtStart(t, cfg)
	rtExec(t, r, "counter:p", "Add", `{"by":3}`)
	rtWaitFor(t, "passivation", func() bool { return obs.passivated.Load() == 1 })
	if r.rtActive("counter:p") {
		t.Fatal("stream still registered after passivation")
	}
	res := rtExec(t, r, "counter:p", "Add", `{"by":4}`)
	if res.Version != 2 {
		t.Fatalf("version after reactivation = %d, want 2", res.Version)
	}
	if s := rtState[rtCounter](t, r, "counter:p"); s.N != 7 {
		t.Fatalf("state after reactivation = %+v, want n 7", s)
	}
	if got := obs.activated.Load(); got != 2 {
		t.Fatalf("%d activations, want 2", got)
	}
}

// Acceptance 3: a command that arrives while the actor passivates is
// answered. The two orders of the race are forced with hooks.
func TestCommandDuringPassivation(t *testing.T) {
	t.Run("queued before the actor retires", func(t *testing.T) {
		obs := &rtObserver{}
		cfg := rtConfig(rtMemStore(t))
		cfg.Observer = obs
		cfg.IdleTimeout = 5 * time.Millisecond
		r, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		deciding := make(chan struct{})
		release := make(chan struct{})
		queued := make(chan struct{}, 1)
		var once sync.Once
		r.hooks.idle = func(string) {
			once.Do(func() {
				close(deciding)
				<-release
			})
		}
		r.hooks.sent = func(_ string, msg any) {
			if m, ok := msg.(*execMsg); ok && m.cmd.ID == "late" {
				queued <- struct{}{}
			}
		}
		if err := r.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rtStop(t, r) })
		rtExec(t, r, "counter:q", "Inc", "")
		<-deciding // the actor has decided to passivate and waits in the hook
		reply := make(chan error, 1)
		go func() {
			_, err := r.Execute(context.Background(), decider.Command{Stream: "counter:q", Type: "Inc", ID: "late"}, events.AnyVersion)
			reply <- err
		}()
		<-queued // the command sits in the old actor's mailbox
		close(release)
		if err := <-reply; err != nil {
			t.Fatalf("command sent during passivation: %v", err)
		}
		if s := rtState[rtCounter](t, r, "counter:q"); s.N != 2 {
			t.Fatalf("state = %+v, want n 2", s)
		}
		if obs.activated.Load() != 1 {
			t.Fatalf("%d activations, want 1 (the actor stays for the queued command, so that requests are received in order)", obs.activated.Load())
		}
		rtWaitFor(t, "passivation after the queued command", func() bool { return obs.passivated.Load() == 1 })
	})
	t.Run("sent after the actor retired, before it stopped", func(t *testing.T) {
		obs := &rtObserver{}
		cfg := rtConfig(rtMemStore(t))
		cfg.Observer = obs
		cfg.IdleTimeout = 5 * time.Millisecond
		r, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		retired := make(chan struct{})
		release := make(chan struct{})
		var once sync.Once
		r.hooks.retired = func(string) {
			once.Do(func() {
				close(retired)
				<-release
			})
		}
		if err := r.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rtStop(t, r) })
		rtExec(t, r, "counter:q", "Inc", "")
		<-retired // the old actor is out of the registry but has not stopped
		reply := make(chan error, 1)
		go func() {
			_, err := r.Execute(context.Background(), decider.Command{Stream: "counter:q", Type: "Inc"}, events.AnyVersion)
			reply <- err
		}()
		// The new activation waits for the old one, which waits for us.
		rtWaitFor(t, "the new activation", func() bool { return obs.activated.Load() == 2 })
		select {
		case err := <-reply:
			t.Fatalf("answered before the old activation stopped: %v", err)
		default:
		}
		close(release)
		if err := <-reply; err != nil {
			t.Fatalf("command sent during passivation: %v", err)
		}
		if s := rtState[rtCounter](t, r, "counter:q"); s.N != 2 {
			t.Fatalf("state = %+v, want n 2", s)
		}
	})
}

func TestStopAnswersAndRefuses(t *testing.T) {
	base := runtime.NumGoroutine()
	func() {
		store := rtMemStore(t)
		cfg := rtConfig(store)
		setCook(&cfg, time.Hour) // a step that would never end by itself
		setMailer(&cfg, mail.NewOutbox(t.TempDir()))
		r, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		ctx := rtCtx(t)
		for i := 0; i < 20; i++ {
			rtExec(t, r, fmt.Sprintf("counter:g%d", i), "Inc", "")
		}
		rtExec(t, r, "shop:1", "Place", `{"email":"ann@example.com"}`)
		rtWaitFor(t, "the cook step", func() bool {
			return rtState[rtShop](t, r, "shop:1").Steps["notify"] == "done"
		})
		sink := &rtSink{}
		from := uint64(0)
		sub, err := r.Subscribe(ctx, SubscribeRequest{Stream: "room:x", From: &from, Member: "ann", Sink: sink})
		if err != nil {
			t.Fatal(err)
		}
		_ = sub
		if err := r.Stop(ctx); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if _, err := r.Execute(ctx, decider.Command{Stream: "counter:g1", Type: "Inc"}, events.AnyVersion); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Execute after Stop = %v, want ErrUnavailable", err)
		}
		if _, err := r.State(ctx, "counter:g1", decider.Caller{}); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("State after Stop = %v, want ErrUnavailable", err)
		}
		if _, err := r.Subscribe(ctx, SubscribeRequest{Stream: "room:x", Sink: sink}); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Subscribe after Stop = %v, want ErrUnavailable", err)
		}
		sub.Cancel() // after Stop: harmless
		if err := r.Stop(ctx); err != nil {
			t.Fatalf("second Stop: %v", err)
		}
		if s := rtShopState(t, store, "shop:1"); s.Steps["cook"] != "pending" {
			t.Fatalf("cook = %q after Stop, want still pending", s.Steps["cook"])
		}
		store.Close()
	}()
	rtGoroutinesBack(t, base)
}

// rtShopState folds a shop stream straight from the store.
func rtShopState(t *testing.T, store events.Store, stream string) rtShop {
	t.Helper()
	k := rtShopKind()
	s := k.Initial(stream)
	for ev, err := range events.IterStream(rtCtx(t), store, stream, 0) {
		if err != nil {
			t.Fatal(err)
		}
		if s, err = k.Evolve(s, ev); err != nil {
			t.Fatal(err)
		}
	}
	return s.(rtShop)
}

func TestExecuteCallerGone(t *testing.T) {
	r := rtStart(t, rtConfig(rtMemStore(t)))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := r.Execute(ctx, decider.Command{Stream: "counter:c", Type: "Inc"}, events.AnyVersion)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Execute with a done context = %v, want ErrUnavailable wrapping context.Canceled", err)
	}
	// Whatever the actor made of it, the stream still works.
	rtExec(t, r, "counter:c", "Inc", "")
}

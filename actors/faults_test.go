package actors

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

// rtFaultyStore fails chosen operations on demand.
type rtFaultyStore struct {
	events.Store
	failSnapshots atomic.Bool
	failReads     atomic.Bool
}

var errRtDisk = errors.New("disk on fire")

func (s *rtFaultyStore) SaveSnapshot(ctx context.Context, snap events.Snapshot) error {
	if s.failSnapshots.Load() {
		return errRtDisk
	}
	return s.Store.SaveSnapshot(ctx, snap)
}

func (s *rtFaultyStore) ReadStream(ctx context.Context, stream string, after uint64, limit int) ([]events.Event, error) {
	if s.failReads.Load() {
		return nil, errRtDisk
	}
	return s.Store.ReadStream(ctx, stream, after, limit)
}

func TestSnapshotFailureIsNotFatal(t *testing.T) {
	store := &rtFaultyStore{Store: rtMemStore(t)}
	store.failSnapshots.Store(true)
	cfg := rtConfig(store)
	cfg.SnapshotEvery = 2
	r := rtStart(t, cfg)
	for range 5 {
		rtExec(t, r, "counter:f", "Inc", "")
	}
	if _, err := store.LoadSnapshot(rtCtx(t), "counter:f"); !errors.Is(err, events.ErrNotFound) {
		t.Fatalf("LoadSnapshot = %v, want none saved", err)
	}
	store.failSnapshots.Store(false)
	rtExec(t, r, "counter:f", "Inc", "")
	// Snapshots are saved after the reply.
	rtWaitFor(t, "a snapshot at 6 once the store recovers", func() bool {
		snap, err := store.LoadSnapshot(rtCtx(t), "counter:f")
		return err == nil && snap.Version == 6
	})
}

func TestActivationFailure(t *testing.T) {
	store := &rtFaultyStore{Store: rtMemStore(t)}
	r := rtStart(t, rtConfig(store))
	rtExec(t, r, "counter:a", "Inc", "")
	store.failReads.Store(true)
	// A stream that is not active cannot load: the caller gets the error.
	_, err := r.Execute(rtCtx(t), decider.Command{Stream: "counter:b", Type: "Inc"}, events.AnyVersion)
	if !errors.Is(err, errRtDisk) {
		t.Fatalf("Execute on an unloadable stream = %v, want the store's error", err)
	}
	// An active stream does not read, so it keeps working.
	rtExec(t, r, "counter:a", "Inc", "")
	store.failReads.Store(false)
	// The failed activation retired itself: the next call loads afresh.
	rtWaitFor(t, "a fresh activation", func() bool {
		_, err := r.Execute(rtCtx(t), decider.Command{Stream: "counter:b", Type: "Inc"}, events.AnyVersion)
		return err == nil
	})
}

// Another writer of the same store moves a stream under an active actor:
// the actor reloads and decides once more; with an expected version from
// the caller the conflict is reported with the current version.
func TestConflictReloads(t *testing.T) {
	store := rtMemStore(t)
	r := rtStart(t, rtConfig(store))
	ctx := rtCtx(t)
	rtExec(t, r, "counter:x", "Inc", "")
	foreign := func(at uint64) {
		t.Helper()
		ev := events.Event{ID: newID(time.Now()), Type: "Added", Data: json.RawMessage(`{"by":10}`)}
		if _, err := store.Append(ctx, "counter:x", events.Exactly(at), []events.Event{ev}); err != nil {
			t.Fatal(err)
		}
	}
	foreign(1)
	if res := rtExec(t, r, "counter:x", "Inc", ""); res.Version != 3 {
		t.Fatalf("version after the conflict = %d, want 3", res.Version)
	}
	if s := rtState[rtCounter](t, r, "counter:x"); s.N != 12 {
		t.Fatalf("state = %+v, want the foreign event folded in (n 12)", s)
	}
	foreign(3)
	_, err := r.Execute(ctx, decider.Command{Stream: "counter:x", Type: "Inc"}, events.Exactly(3))
	if cur, ok := events.CurrentVersion(err); !ok || cur != 4 {
		t.Fatalf("Execute expecting 3 = %v, want a wrong expected version at 4", err)
	}
	if res, err := r.Execute(ctx, decider.Command{Stream: "counter:x", Type: "Inc"}, events.Exactly(4)); err != nil || res.Version != 5 {
		t.Fatalf("Execute expecting 4 = %+v, %v", res, err)
	}
}

func TestNoPassivationWhileBusy(t *testing.T) {
	tests := []struct {
		name   string
		stream string
		busy   func(t *testing.T, r *Runtime) (done func())
	}{
		{"subscriber", "counter:b", func(t *testing.T, r *Runtime) func() {
			sub, err := r.Subscribe(rtCtx(t), SubscribeRequest{Stream: "counter:b", Sink: &rtSink{}})
			if err != nil {
				t.Fatal(err)
			}
			return sub.Cancel
		}},
		{"running step", "shop:b", func(t *testing.T, r *Runtime) func() {
			rtExec(t, r, "shop:b", "Place", `{}`)
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obs := &rtObserver{}
			cfg := rtConfig(rtMemStore(t))
			cfg.Observer = obs
			cfg.IdleTimeout = 2 * time.Millisecond
			setCook(&cfg, time.Hour)
			r, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			kept := make(chan struct{}, 1)
			r.hooks.busy = func(s string) {
				if s == tt.stream {
					select {
					case kept <- struct{}{}:
					default:
					}
				}
			}
			if err := r.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { rtStop(t, r) })
			done := tt.busy(t, r)
			for range 3 { // three idle checks in a row keep it
				<-kept
			}
			if !r.rtActive(tt.stream) {
				t.Fatal("a busy stream was passivated")
			}
			if done != nil {
				done()
				rtWaitFor(t, "passivation once idle", func() bool { return !r.rtActive(tt.stream) })
			}
		})
	}
}

// A stored event its kind cannot fold makes the stream unloadable: every
// call gets a *LoadError matching ErrCorruptStream only, never the kind's
// sentinels (which would read as the caller's mistake), with the stream,
// the version and the kind's error as its cause.
func TestCorruptStream(t *testing.T) {
	for _, tt := range []struct {
		name  string
		ev    events.Event
		cause error
	}{
		{"unknown event type", events.Event{Type: "Exploded", Data: json.RawMessage(`{}`)}, decider.ErrUnknownEvent},
		{"event the kind refuses", events.Event{Type: "Added", Data: json.RawMessage(`{"by":"two"}`)}, nil},
		{"Evolve panics", events.Event{Type: "Added", Data: json.RawMessage(`{"by":-1}`)}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			store := rtMemStore(t)
			ctx := rtCtx(t)
			good := events.Event{ID: newID(time.Now()), Type: "Incremented", Data: json.RawMessage(`{}`)}
			tt.ev.ID = newID(time.Now())
			if _, err := store.Append(ctx, "counter:bad", events.NoStream, []events.Event{good, tt.ev}); err != nil {
				t.Fatal(err)
			}
			cfg := rtConfig(store)
			cfg.Kinds = []decider.Kind{panickyCounter{rtCounterKind()}}
			r := rtStart(t, cfg)
			check := func(what string, err error) {
				t.Helper()
				var le *LoadError
				switch {
				case !errors.Is(err, ErrCorruptStream) || !errors.As(err, &le):
					t.Fatalf("%s = %v, want a LoadError", what, err)
				case errors.Is(err, decider.ErrUnknownEvent), errors.Is(err, decider.ErrInvalid), errors.Is(err, events.ErrInvalidEvent):
					t.Fatalf("%s = %v matches a kind's sentinel", what, err)
				case le.Stream != "counter:bad" || le.Version != 2 || le.Cause == nil:
					t.Fatalf("%s: %+v, want stream counter:bad version 2 with a cause", what, le)
				case tt.cause != nil && !errors.Is(le.Cause, tt.cause):
					t.Fatalf("%s: cause %v, want %v", what, le.Cause, tt.cause)
				}
			}
			_, err := r.Execute(ctx, decider.Command{Stream: "counter:bad", Type: "Inc"}, events.AnyVersion)
			check("Execute", err)
			_, err = r.State(ctx, "counter:bad", decider.Caller{})
			check("State", err)
		})
	}
}

// panickyCounter is the counter kind whose Evolve panics on a negative
// Added.
type panickyCounter struct{ decider.Kind }

func (k panickyCounter) Evolve(s decider.State, e events.Event) (decider.State, error) {
	if e.Type == "Added" && string(e.Data) == `{"by":-1}` {
		panic("negative")
	}
	return k.Kind.Evolve(s, e)
}

package actors

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

// rtRetirements starts a runtime whose retired hook reports each
// retirement on the returned channel (IdleTimeout is an hour: nothing
// retires by the timer).
func rtRetirements(t *testing.T, cfg Config) (*Runtime, <-chan string) {
	t.Helper()
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	retired := make(chan string, 100)
	r.hooks.retired = func(s string) { retired <- s }
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rtStop(t, r) })
	return r, retired
}

// noRetirement fails if a retirement was reported.
func noRetirement(t *testing.T, retired <-chan string) {
	t.Helper()
	select {
	case s := <-retired:
		t.Fatalf("%s retired", s)
	default:
	}
}

// A request that leaves a stream without events (a read of a stream that
// does not exist, a rejected or no-op command, a cancelled subscription)
// costs no lasting actor: it retires as soon as it has answered, not after
// the idle timeout.
func TestEmptyStreamRetiresAtOnce(t *testing.T) {
	tests := []struct {
		name string
		call func(t *testing.T, r *Runtime, stream string)
	}{
		{"state read", func(t *testing.T, r *Runtime, stream string) {
			if _, err := r.State(rtCtx(t), stream, decider.Caller{}); !errors.Is(err, events.ErrNotFound) {
				t.Fatalf("State = %v, want not found", err)
			}
		}},
		{"rejected command", func(t *testing.T, r *Runtime, stream string) {
			_, err := r.Execute(rtCtx(t), decider.Command{Stream: stream, Type: "Reject"}, events.AnyVersion)
			if !errors.Is(err, decider.ErrConflict) {
				t.Fatalf("Execute = %v, want a conflict", err)
			}
		}},
		{"unknown command", func(t *testing.T, r *Runtime, stream string) {
			_, err := r.Execute(rtCtx(t), decider.Command{Stream: stream, Type: "Nope", ID: "k"}, events.AnyVersion)
			if !errors.Is(err, decider.ErrUnknownCommand) {
				t.Fatalf("Execute = %v, want unknown command", err)
			}
		}},
		{"wrong expected version", func(t *testing.T, r *Runtime, stream string) {
			_, err := r.Execute(rtCtx(t), decider.Command{Stream: stream, Type: "Inc"}, events.Exactly(3))
			if !errors.Is(err, events.ErrWrongExpectedVersion) {
				t.Fatalf("Execute = %v, want a wrong expected version", err)
			}
		}},
		{"no-op command", func(t *testing.T, r *Runtime, stream string) {
			if res, err := r.Execute(rtCtx(t), decider.Command{Stream: stream, Type: "Noop"}, events.AnyVersion); err != nil || res.Version != 0 {
				t.Fatalf("Execute = %+v, %v", res, err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obs := &rtObserver{}
			cfg := rtConfig(rtMemStore(t))
			cfg.Observer = obs
			r, retired := rtRetirements(t, cfg)
			tt.call(t, r, "counter:ghost")
			if s := <-retired; s != "counter:ghost" {
				t.Fatalf("%s retired", s)
			}
			if r.rtActive("counter:ghost") {
				t.Fatal("the stream is still registered")
			}
			// The next request activates it again, and it retires again.
			tt.call(t, r, "counter:ghost")
			<-retired
			if n := obs.activated.Load(); n != 2 {
				t.Fatalf("%d activations, want 2", n)
			}
		})
	}
}

// A stream with events, or one with a subscriber, keeps its actor; the
// subscriber's actor retires once it is gone.
func TestEmptyStreamKeptWhileUsed(t *testing.T) {
	r, retired := rtRetirements(t, rtConfig(rtMemStore(t)))
	ctx := rtCtx(t)

	rtExec(t, r, "counter:used", "Inc", "")
	if _, err := r.State(ctx, "counter:used", decider.Caller{}); err != nil { // after the append's afterMessage
		t.Fatal(err)
	}
	noRetirement(t, retired)
	if !r.rtActive("counter:used") {
		t.Fatal("a stream with events was passivated")
	}

	sub, err := r.Subscribe(ctx, SubscribeRequest{Stream: "counter:watched", Sink: &rtSink{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.State(ctx, "counter:watched", decider.Caller{}); !errors.Is(err, events.ErrNotFound) {
		t.Fatalf("State = %v, want not found", err)
	}
	noRetirement(t, retired)
	if !r.rtActive("counter:watched") {
		t.Fatal("a stream with a subscriber was passivated")
	}
	sub.Cancel()
	if s := <-retired; s != "counter:watched" {
		t.Fatalf("%s retired", s)
	}
}

// An empty stream's actor that decides to retire while a request is
// queued for it stays and serves it (no second activation), then retires.
func TestEmptyStreamRequestQueuedWhileRetiring(t *testing.T) {
	obs := &rtObserver{}
	cfg := rtConfig(rtMemStore(t))
	cfg.Observer = obs
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	deciding := make(chan struct{})
	release := make(chan struct{})
	queued := make(chan struct{})
	retired := make(chan string, 10)
	var once sync.Once
	r.hooks.idle = func(string) {
		once.Do(func() {
			close(deciding)
			<-release
		})
	}
	r.hooks.retired = func(s string) { retired <- s }
	var sent atomic.Int32
	r.hooks.sent = func(string, any) {
		if sent.Add(1) == 2 { // both reads are in the mailbox
			close(queued)
		}
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rtStop(t, r) })

	go func() {
		if _, err := r.State(context.Background(), "counter:ghost", decider.Caller{}); !errors.Is(err, events.ErrNotFound) {
			t.Errorf("first State = %v", err)
		}
	}()
	<-deciding // answered; the actor decided to retire and waits in the hook
	reply := make(chan error, 1)
	go func() {
		_, err := r.State(context.Background(), "counter:ghost", decider.Caller{})
		reply <- err
	}()
	<-queued // the second read sits in the same actor's mailbox
	close(release)
	if err := <-reply; !errors.Is(err, events.ErrNotFound) {
		t.Fatalf("second State = %v", err)
	}
	<-retired
	if n := obs.activated.Load(); n != 1 {
		t.Fatalf("%d activations, want 1: the queued read was served by the same actor", n)
	}
}

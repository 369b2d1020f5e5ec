package actors

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

// rtGateStore counts appends and can hold chosen ones (by ordinal) until
// the test releases them.
type rtGateStore struct {
	events.Store
	appends atomic.Int64
	mu      sync.Mutex
	gates   map[int64]rtGate
}

type rtGate struct{ entered, release chan struct{} }

func (s *rtGateStore) Append(ctx context.Context, stream string, exp events.ExpectedVersion, evs []events.Event) (events.AppendResult, error) {
	n := s.appends.Add(1)
	s.mu.Lock()
	g, ok := s.gates[n]
	s.mu.Unlock()
	if ok {
		close(g.entered)
		<-g.release
	}
	return s.Store.Append(ctx, stream, exp, evs)
}

// hold makes the append after the next `skip` ones wait.
func (s *rtGateStore) hold(skip int64) rtGate {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gates == nil {
		s.gates = map[int64]rtGate{}
	}
	g := rtGate{make(chan struct{}), make(chan struct{})}
	s.gates[s.appends.Load()+skip+1] = g
	return g
}

// rtQueue sends commands one at a time, each only once the previous one
// is in the actor's mailbox, so that their order there is known.
type rtQueue struct {
	t       *testing.T
	r       *Runtime
	sent    chan struct{}
	results []chan execReply
}

func newRtQueue(t *testing.T, r *Runtime) *rtQueue {
	q := &rtQueue{t: t, r: r, sent: make(chan struct{}, 1)}
	r.hooks.sent = func(_ string, msg any) {
		if m, ok := msg.(*execMsg); ok && m.ctx.Value(rtQueued{}) != nil {
			q.sent <- struct{}{}
		}
	}
	return q
}

// rtQueued marks the contexts of commands sent through an rtQueue.
type rtQueued struct{}

func (q *rtQueue) send(cmd decider.Command, exp events.ExpectedVersion) {
	ch := make(chan execReply, 1)
	q.results = append(q.results, ch)
	go func() {
		res, err := q.r.Execute(context.WithValue(context.Background(), rtQueued{}, true), cmd, exp)
		ch <- execReply{res, err}
	}()
	<-q.sent
}

func (q *rtQueue) reply(i int) execReply { return <-q.results[i] }

// rtBatchRuntime starts a runtime on a gated store, with an observer and
// a queue to send commands in a known order; window sets
// IdempotencyWindow when not 0.
func rtBatchRuntime(t *testing.T, window int) (*rtGateStore, *rtObserver, *Runtime, *rtQueue) {
	store := &rtGateStore{Store: rtMemStore(t)}
	obs := &rtObserver{}
	cfg := rtConfig(store)
	cfg.Observer = obs
	cfg.IdempotencyWindow = window
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	q := newRtQueue(t, r)
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rtStop(t, r) })
	return store, obs, r, q
}

func TestBatchedCommands(t *testing.T) {
	store, _, r, q := rtBatchRuntime(t, 0)
	const stream = "counter:hot"
	cmd := func(typ, data, id string) decider.Command {
		return decider.Command{Stream: stream, Type: typ, Data: json.RawMessage(data), ID: id}
	}

	g := store.hold(0)
	q.send(cmd("Inc", "", ""), events.AnyVersion) // 0: appends alone, held
	<-g.entered
	q.send(cmd("Inc", "", ""), events.AnyVersion)                // 1: v2
	q.send(cmd("Add", `{"by":5}`, "k1"), events.AnyVersion)      // 2: v3
	q.send(cmd("Add", `{"by":5}`, "k1"), events.AnyVersion)      // 3: repeat of 2
	q.send(cmd("IfBelow", `{"limit":3}`, ""), events.AnyVersion) // 4: n is 7: conflict
	q.send(cmd("Noop", "", ""), events.AnyVersion)               // 5: no-op at v3
	q.send(cmd("Inc", "", ""), events.Exactly(3))                // 6: v4
	q.send(cmd("Inc", "", ""), events.Exactly(1))                // 7: wrong expected version
	q.send(cmd("AddTwice", `{"by":2}`, ""), events.AnyVersion)   // 8: v5, v6
	close(g.release)

	want := []struct {
		version uint64
		events  int
		err     error
	}{
		{1, 1, nil}, {2, 1, nil}, {3, 1, nil}, {3, 1, nil}, {0, 0, decider.ErrConflict},
		{3, 0, nil}, {4, 1, nil}, {0, 0, events.ErrWrongExpectedVersion}, {6, 2, nil},
	}
	var got []execReply
	for i, w := range want {
		rep := q.reply(i)
		got = append(got, rep)
		if w.err != nil {
			if !errors.Is(rep.err, w.err) {
				t.Fatalf("command %d: error %v, want %v", i, rep.err, w.err)
			}
			continue
		}
		if rep.err != nil || rep.res.Version != w.version || len(rep.res.Events) != w.events {
			t.Fatalf("command %d = v%d with %d events, %v; want v%d with %d events", i, rep.res.Version, len(rep.res.Events), rep.err, w.version, w.events)
		}
	}
	if !reflect.DeepEqual(got[3].res, got[2].res) {
		t.Fatalf("the repeated id got %+v, the first %+v", got[3].res, got[2].res)
	}
	if cur, _ := events.CurrentVersion(got[7].err); cur != 4 {
		t.Fatalf("wrong expected version reports current %d, want 4 (the version within the batch)", cur)
	}
	if n := store.appends.Load(); n != 2 {
		t.Fatalf("%d appends, want 2: the first command, then one for the batch", n)
	}
	if s := rtState[rtCounter](t, r, stream); s.N != 1+1+5+1+2+2 || s.Version != 6 {
		t.Fatalf("state = %+v", s)
	}
	// The repeat stays idempotent after the batch.
	if res, err := r.Execute(rtCtx(t), cmd("Add", `{"by":5}`, "k1"), events.AnyVersion); err != nil || !reflect.DeepEqual(res, got[2].res) {
		t.Fatalf("repeat after the batch = %+v, %v", res, err)
	}

	t.Run("a conflicting batch runs command by command", func(t *testing.T) {
		first, batch := store.hold(0), store.hold(1)
		start := len(q.results)
		q.send(cmd("Inc", "", ""), events.AnyVersion) // v7, held
		<-first.entered
		q.send(cmd("Inc", "", ""), events.AnyVersion)
		q.send(cmd("Inc", "", ""), events.AnyVersion)
		q.send(cmd("Inc", "", ""), events.AnyVersion)
		q.send(cmd("Inc", "", ""), events.Exactly(10)) // matches within the batch only
		close(first.release)
		<-batch.entered
		// Another writer appends while the batch's append waits.
		foreign := events.Event{ID: newID(time.Now()), Type: "Added", Data: json.RawMessage(`{"by":100}`)}
		if _, err := store.Store.Append(rtCtx(t), stream, events.Exactly(7), []events.Event{foreign}); err != nil {
			t.Fatal(err)
		}
		close(batch.release)
		for i, want := range []uint64{7, 9, 10, 11} {
			if rep := q.reply(start + i); rep.err != nil || rep.res.Version != want {
				t.Fatalf("command %d = v%d, %v; want v%d", i, rep.res.Version, rep.err, want)
			}
		}
		if cur, _ := events.CurrentVersion(q.reply(start + 4).err); cur != 11 {
			t.Fatalf("expecting 10 = current %d, want a wrong expected version at 11", cur)
		}
		if s := rtState[rtCounter](t, r, stream); s.Version != 11 || s.N != 12+1+100+3 {
			t.Fatalf("state = %+v", s)
		}
	})
}

// A failure within a batch stays with its command: an append the store
// refuses runs the batch command by command, and an event Evolve refuses
// fails its command while the others are decided again.
func TestBatchFailuresStayWithTheirCommand(t *testing.T) {
	store, obs, r, q := rtBatchRuntime(t, 1)
	const stream = "counter:f"
	cmd := func(typ, data, id string) decider.Command {
		return decider.Command{Stream: stream, Type: typ, Data: json.RawMessage(data), ID: id}
	}
	twice, err := r.Execute(rtCtx(t), cmd("AddTwice", `{"by":2}`, "k"), events.AnyVersion) // v1, v2
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"j", "x"} { // v3, v4; the window keeps x only
		if _, err := r.Execute(rtCtx(t), cmd("Inc", "", id), events.AnyVersion); err != nil {
			t.Fatal(err)
		}
	}
	type want struct {
		version uint64
		err     error
	}
	check := func(t *testing.T, start int, wants []want) {
		t.Helper()
		for i, w := range wants {
			rep := q.reply(start + i)
			if w.err != nil {
				if !errors.Is(rep.err, w.err) {
					t.Fatalf("command %d: error %v, want %v", i, rep.err, w.err)
				}
				continue
			}
			if rep.err != nil || rep.res.Version != w.version {
				t.Fatalf("command %d = v%d, %v; want v%d", i, rep.res.Version, rep.err, w.version)
			}
			if w.version == twice.Version && !reflect.DeepEqual(rep.res, twice) {
				t.Fatalf("command %d = %+v, want the first result %+v", i, rep.res, twice)
			}
		}
	}

	t.Run("a refused append", func(t *testing.T) {
		g := store.hold(0)
		q.send(cmd("Inc", "", ""), events.AnyVersion) // 0: v5, held
		<-g.entered
		q.send(cmd("Inc", "", ""), events.AnyVersion)               // 1: v6
		q.send(cmd("AddTwice", `{"by":2}`, "k"), events.AnyVersion) // 2: a repeat the window forgot
		q.send(cmd("AddTwice", `{"by":2}`, "j"), events.AnyVersion) // 3: j's id with other events
		q.send(cmd("Inc", "", ""), events.Exactly(6))               // 4: v7
		close(g.release)
		check(t, 0, []want{{5, nil}, {6, nil}, {2, nil}, {0, decider.ErrConflict}, {7, nil}})
	})
	t.Run("an event Evolve refuses", func(t *testing.T) {
		g := store.hold(0)
		q.send(cmd("Inc", "", ""), events.AnyVersion) // 5: v8, held
		<-g.entered
		q.send(cmd("Inc", "", ""), events.AnyVersion)               // 6: v9
		q.send(cmd("Bogus", "", ""), events.AnyVersion)             // 7: refused
		q.send(cmd("Inc", "", ""), events.Exactly(9))               // 8: v10
		q.send(cmd("AddTwice", `{"by":2}`, "k"), events.AnyVersion) // 9: k again
		close(g.release)
		check(t, 5, []want{{8, nil}, {9, nil}, {0, decider.ErrUnknownEvent}, {10, nil}, {2, nil}})
	})
	if s := rtState[rtCounter](t, r, stream); s.Version != 10 || s.N != 2+2+8 {
		t.Fatalf("state = %+v", s)
	}
	for outcome, n := range map[string]int{ResultOK: 3 + 3 + 3, ResultIdempotent: 2, ResultRejected: 1, ResultError: 1} {
		if got := obs.result(outcome); got != n {
			t.Errorf("%d commands reported %s, want %d", got, outcome, n)
		}
	}
}

// TestExecuteFuncKeepsOrder: commands one goroutine queues for one stream
// without waiting are decided and answered in the order queued, batched
// behind the appends, while the stream passivates between bursts.
func TestExecuteFuncKeepsOrder(t *testing.T) {
	cfg := rtConfig(rtMemStore(t))
	cfg.IdleTimeout = time.Millisecond
	r := rtStart(t, cfg)
	var mu sync.Mutex
	var got []uint64
	var wg sync.WaitGroup
	for burst := range 20 {
		for range 50 {
			wg.Add(1)
			r.ExecuteFunc(context.Background(), decider.Command{Stream: "counter:order", Type: "Inc"}, events.AnyVersion, time.Time{}, func(res Result, err error) {
				defer wg.Done()
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				got = append(got, res.Version)
				mu.Unlock()
			})
		}
		if burst%4 == 3 {
			wg.Wait()
			rtWaitFor(t, "passivation", func() bool { return !r.rtActive("counter:order") })
		}
	}
	wg.Wait()
	for i, v := range got {
		if v != uint64(i+1) {
			t.Fatalf("answer %d is version %d: out of order (%v)", i, v, got[max(0, i-3):min(len(got), i+3)])
		}
	}
}

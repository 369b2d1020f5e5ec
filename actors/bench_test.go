package actors

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

// BenchmarkCommands: 64 concurrent callers send commands to 1,000 streams
// through their actors; each call returns once its event is durable.
// Reports throughput and latency percentiles. Run:
//
//	go test -run '^$' -bench Commands -benchtime 200000x ./actors/
func BenchmarkCommands(b *testing.B) {
	stores := []struct {
		name string
		open func(b *testing.B) events.Store
	}{
		{"memory", func(b *testing.B) events.Store { return rtMemStore(b) }},
		{"pebble", func(b *testing.B) events.Store { return rtOpenPebble(b, b.TempDir()) }},
	}
	for _, st := range stores {
		b.Run(st.name, func(b *testing.B) { rtBenchCommands(b, st.open(b), 64, 1000) })
	}
}

// BenchmarkHotStream: the same 64 callers all on one stream (a busy chat
// room or a game's score), where group commit per stream matters.
func BenchmarkHotStream(b *testing.B) {
	b.Run("memory", func(b *testing.B) { rtBenchCommands(b, rtMemStore(b), 64, 1) })
	b.Run("pebble", func(b *testing.B) { rtBenchCommands(b, rtOpenPebble(b, b.TempDir()), 64, 1) })
}

func rtBenchCommands(b *testing.B, store events.Store, callers, streams int) {
	r := rtStart(b, rtConfig(store))
	ctx := context.Background()
	names := make([]string, streams)
	for i := range names {
		names[i] = fmt.Sprintf("counter:s%d", i)
	}
	// Activate every stream first: the benchmark measures the steady state.
	var wg sync.WaitGroup
	var next atomic.Int64
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(streams); i = next.Add(1) - 1 {
				if _, err := r.Execute(ctx, decider.Command{Stream: names[i], Type: "Inc"}, events.AnyVersion); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()

	lat := make([][]time.Duration, callers)
	next.Store(0)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 42))
			for next.Add(1) <= int64(b.N) {
				cmd := decider.Command{Stream: names[rng.IntN(streams)], Type: "Inc"}
				t0 := time.Now()
				if _, err := r.Execute(ctx, cmd, events.AnyVersion); err != nil {
					b.Error(err)
					return
				}
				lat[c] = append(lat[c], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) == 0 {
		return
	}
	pct := func(p float64) float64 {
		return float64(all[min(len(all)-1, int(float64(len(all))*p))]) / float64(time.Millisecond)
	}
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "cmds/s")
	b.ReportMetric(pct(0.50), "p50_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
}

// BenchmarkActivation: activating a stream of 10,000 events from its
// snapshot (tail 0: the snapshot is at the head; tail 999: the worst case
// with the default SnapshotEvery), measured as one State call on a
// passivated stream, on the durable store. With ids every event was
// appended by a command with its own id, the worst case for the
// idempotency window: the snapshot carries 1,024 ids, and the tail adds
// one per event.
func BenchmarkActivation(b *testing.B) {
	for _, ids := range []bool{false, true} {
		for _, tail := range []int{0, 999} {
			b.Run(fmt.Sprintf("tail=%d/ids=%t", tail, ids), func(b *testing.B) {
				const total = 10_000
				const stream = "counter:big"
				store := rtOpenPebble(b, b.TempDir())
				ctx := context.Background()
				k := rtCounterKind()
				s := k.Initial(stream)
				w := cmdWindow{max: DefaultIdempotencyWindow}
				for v := 0; v < total; {
					batch := make([]events.Event, 0, 500)
					for i := range 500 {
						ev := events.Event{ID: newID(time.Now()), Type: "Added", Data: []byte(`{"by":2}`)}
						if ids {
							ev.Meta.Causation = fmt.Sprintf("cmd-%032d", v+i+1)
						}
						batch = append(batch, ev)
					}
					ar, err := store.Append(ctx, stream, events.Exactly(uint64(v)), batch)
					if err != nil {
						b.Fatal(err)
					}
					for _, e := range ar.Events {
						if e.Version > total-uint64(tail) {
							break
						}
						if s, err = k.Evolve(s, e); err != nil {
							b.Fatal(err)
						}
						w.noteEvent(e)
					}
					v += len(batch)
				}
				data, err := k.MarshalState(s)
				if err != nil {
					b.Fatal(err)
				}
				snap := events.Snapshot{Stream: stream, Version: uint64(total - tail), Data: encodeSnapshot(data, &w)}
				if err := store.SaveSnapshot(ctx, snap); err != nil {
					b.Fatal(err)
				}
				r := rtStart(b, rtConfig(store))
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					r.rtPassivate(stream)
					b.StartTimer()
					view, err := r.State(ctx, stream, decider.Caller{})
					if err != nil || view.Version != total {
						b.Fatalf("State = v%d, %v", view.Version, err)
					}
				}
				b.ReportMetric(float64(b.Elapsed())/float64(b.N)/float64(time.Millisecond), "ms/activation")
			})
		}
	}
}

// rtPassivate retires a stream's actor from outside and waits for it.
func (r *Runtime) rtPassivate(stream string) {
	r.mu.Lock()
	e := r.entries[stream]
	r.mu.Unlock()
	if e != nil && r.retire(e) {
		<-e.stopped
	}
}

// BenchmarkStoreDirect is the ceiling BenchmarkCommands is measured
// against: the same 64 callers and 1,000 streams appending to the store
// directly, without actors.
func BenchmarkStoreDirect(b *testing.B) {
	stores := []struct {
		name string
		open func(b *testing.B) events.Store
	}{
		{"memory", func(b *testing.B) events.Store { return rtMemStore(b) }},
		{"pebble", func(b *testing.B) events.Store { return rtOpenPebble(b, b.TempDir()) }},
	}
	for _, st := range stores {
		b.Run(st.name, func(b *testing.B) {
			store := st.open(b)
			const callers, streams = 64, 1000
			ctx := context.Background()
			lat := make([][]time.Duration, callers)
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for c := range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(c), 42))
					for next.Add(1) <= int64(b.N) {
						stream := fmt.Sprintf("counter:s%d", rng.IntN(streams))
						t0 := time.Now()
						ev := []events.Event{{ID: newID(t0), Type: "Incremented"}}
						if _, err := store.Append(ctx, stream, events.AnyVersion, ev); err != nil {
							b.Error(err)
							return
						}
						lat[c] = append(lat[c], time.Since(t0))
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			all := slices.Concat(lat...)
			slices.Sort(all)
			b.ReportMetric(float64(len(all))/elapsed.Seconds(), "cmds/s")
			b.ReportMetric(float64(all[len(all)/2])/1e6, "p50_ms")
			b.ReportMetric(float64(all[len(all)*99/100])/1e6, "p99_ms")
		})
	}
}

// BenchmarkSnapshotWindow: what the command window adds to an activation,
// CPU only, for a full window of 1,024 ids of 36 bytes (49 KB in the
// snapshot): splitting and checking the snapshot (every activation of a
// stream with ids), decoding the window (only once a command with an id,
// or an event with a Causation, needs it), and encoding it (every
// snapshot of a stream whose window was decoded).
func BenchmarkSnapshotWindow(b *testing.B) {
	w := cmdWindow{max: DefaultIdempotencyWindow}
	for i := range DefaultIdempotencyWindow {
		w.put(fmt.Sprintf("%036d", i), cmdRecord{first: uint64(i + 1), last: uint64(i + 1), n: 1, sum: uint64(i) | 1})
	}
	data := encodeSnapshot([]byte(`{"stream":"counter:big","version":10000,"n":20000}`), &w)
	b.Run("split", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var back cmdWindow
			_, win, err := decodeSnapshot(data)
			if err != nil {
				b.Fatal(err)
			}
			back.loadSaved(string(win))
		}
	})
	b.Run("split+decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			back := cmdWindow{max: DefaultIdempotencyWindow}
			_, win, err := decodeSnapshot(data)
			if err != nil {
				b.Fatal(err)
			}
			back.loadSaved(string(win))
			if _, ok := back.get("x"); ok {
				b.Fatal("x")
			}
		}
	})
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			encodeSnapshot([]byte(`{}`), &w)
		}
	})
}

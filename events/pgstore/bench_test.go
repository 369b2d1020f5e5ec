package pgstore

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b6368a97/engine/events"
)

// Benchmarks (need ENGINE_TEST_POSTGRES):
//
//	go test -run '^$' -bench . -benchtime 5s ./events/pgstore/
//
// (docs/benchmarks.md, "PostgreSQL store", has the method used for the
// recorded figures.)

// benchData is a ~170-byte JSON payload, as in the pebblestore benchmarks:
// with its id and type an event is about 200 bytes.
func benchData(n int) []byte {
	return fmt.Appendf(nil, `{"user":"bench-user-%04d","text":"The quick brown fox jumps over the lazy dog while the kitchen prepares order %08d; nothing to see here, just padding to size."}`, n%10000, n)
}

func benchOpen(b *testing.B, url, schema string) *Store {
	b.Helper()
	s, err := Open(context.Background(), Config{URL: url, Schema: schema, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// BenchmarkAppend measures durable single-event appends from N concurrent
// writers over 1,000 streams, each writer owning its streams (as an actor
// owns its stream) and appending with exact expected versions. Fresh schema
// per run. Reported: events/s over the run, p50 and p99 of one append.
//
// nodes=3 runs the writers over 3 Stores (3 pools, like 3 engine
// processes) on one schema, writer w on store w mod 3.
func BenchmarkAppend(b *testing.B) {
	url := testURL(b)
	for _, c := range []struct{ nodes, writers int }{{1, 1}, {1, 8}, {1, 64}, {3, 64}} {
		b.Run(fmt.Sprintf("nodes=%d/writers=%d", c.nodes, c.writers), func(b *testing.B) {
			schema := randomSchema()
			dropSchema(b, url, schema)
			stores := make([]*Store, c.nodes)
			for i := range stores {
				stores[i] = benchOpen(b, url, schema)
			}
			runWriters(b, c.writers, func(w int) func(i int) error {
				s := stores[w%len(stores)]
				versions := map[string]uint64{}
				return func(i int) error {
					stream := benchStream(w, c.writers, i)
					id := "w" + strconv.Itoa(w) + "-" + strconv.Itoa(i)
					res, err := s.Append(context.Background(), stream, events.Exactly(versions[stream]),
						[]events.Event{{ID: id, Type: "MessagePosted", Data: benchData(i)}})
					if err != nil {
						return err
					}
					versions[stream] = res.Version()
					return nil
				}
			})
		})
	}
}

// benchStream is the stream of writer w's i-th append: the 1,000 streams
// are dealt out to the writers (stream j belongs to writer j mod writers),
// so that a writer's expected versions are never raced.
func benchStream(w, writers, i int) string {
	const streams = 1000
	owned := (streams - w + writers - 1) / writers
	return "room:r" + strconv.Itoa(w+writers*(i%owned))
}

// runWriters runs b.N operations spread over writers goroutines and
// reports events/s and the p50 and p99 latency of one operation.
func runWriters(b *testing.B, writers int, newWriter func(w int) func(i int) error) {
	b.Helper()
	var next atomic.Int64
	lat := make([][]time.Duration, writers)
	errs := make(chan error, writers)
	ops := make([]func(int) error, writers)
	for w := range writers {
		ops[w] = newWriter(w)
		lat[w] = make([]time.Duration, 0, b.N/writers+1)
	}
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := 0; next.Add(1) <= int64(b.N); i++ {
				t0 := time.Now()
				if err := ops[w](i); err != nil {
					errs <- err
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(ms(percentile(all, 0.50)), "p50-ms")
	b.ReportMetric(ms(percentile(all, 0.99)), "p99-ms")
	b.ReportMetric(0, "ns/op")
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

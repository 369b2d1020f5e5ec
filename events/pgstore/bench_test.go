package pgstore

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"testing"

	"github.com/b6368a97/engine/events"
	"github.com/b6368a97/engine/events/storetest"
)

// Benchmarks (need ENGINE_TEST_POSTGRES):
//
//	go test -run '^$' -bench . -benchtime 5s ./events/pgstore/
//
// (docs/benchmarks.md, "PostgreSQL store", has the method used for the
// recorded figures.)

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
			storetest.RunWriters(b, c.writers, func(w int) func(i int) error {
				s := stores[w%len(stores)]
				versions := map[string]uint64{}
				return func(i int) error {
					stream := storetest.BenchStream(w, c.writers, i)
					id := "w" + strconv.Itoa(w) + "-" + strconv.Itoa(i)
					res, err := s.Append(context.Background(), stream, events.Exactly(versions[stream]),
						[]events.Event{{ID: id, Type: "MessagePosted", Data: storetest.BenchData(i)}})
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

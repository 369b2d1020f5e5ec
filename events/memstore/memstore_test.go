package memstore_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/b6368a97/engine/events"
	"github.com/b6368a97/engine/events/memstore"
	"github.com/b6368a97/engine/events/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) events.Store { return memstore.New() })
}

func TestClock(t *testing.T) {
	now := time.Date(2025, 3, 4, 5, 6, 7, 891_234_567, time.FixedZone("CET", 3600))
	st := memstore.NewWithClock(func() time.Time { return now })
	t.Cleanup(func() { _ = st.Close() })
	given := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	res, err := st.Append(t.Context(), "room:a", events.NoStream, []events.Event{
		{ID: "a-1", Type: "T"},
		{ID: "a-2", Type: "T", Time: given},
		{ID: "a-3", Type: "T"},
	})
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	want := time.Date(2025, 3, 4, 4, 6, 7, 891_000_000, time.UTC)
	for i, wantTime := range []time.Time{want, given, want} {
		if got := res.Events[i].Time; !got.Equal(wantTime) || got.Location() != time.UTC {
			t.Errorf("event %d: want time %s, got %s", i, wantTime, got)
		}
	}
}

func TestNilClockIsTimeNow(t *testing.T) {
	st := memstore.NewWithClock(nil)
	t.Cleanup(func() { _ = st.Close() })
	before := time.Now().Add(-time.Millisecond)
	res, err := st.Append(t.Context(), "room:a", events.NoStream, []events.Event{{ID: "a-1", Type: "T"}})
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if got := res.Events[0].Time; got.Before(before) || got.After(time.Now()) {
		t.Fatalf("want a time between %s and now, got %s", before, got)
	}
}

// The benchmarks are the "memory" baseline of the actor runtime's
// benchmarks: what an append costs with no I/O at all.

func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{1, 10} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			st := memstore.New()
			defer st.Close()
			evs := make([]events.Event, size)
			data := []byte(`{"text":"hello, world","user":"u-1"}`)
			b.ReportAllocs()
			var v uint64
			for i := 0; b.Loop(); i++ {
				for j := range evs {
					evs[j] = events.Event{ID: fmt.Sprintf("e-%d-%d", i, j), Type: "MessagePosted", Data: data}
				}
				res, err := st.Append(b.Context(), "room:bench", events.Exactly(v), evs)
				if err != nil {
					b.Fatal(err)
				}
				v = res.Version()
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

func BenchmarkAppendParallel(b *testing.B) {
	st := memstore.New()
	defer st.Close()
	data := []byte(`{"text":"hello, world","user":"u-1"}`)
	var next int64
	var mu = make(chan struct{}, 1)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		mu <- struct{}{}
		next++
		stream := fmt.Sprintf("room:p%d", next)
		<-mu
		var v uint64
		for i := 0; pb.Next(); i++ {
			ev := []events.Event{{ID: fmt.Sprintf("%s-%d", stream, i), Type: "MessagePosted", Data: data}}
			res, err := st.Append(b.Context(), stream, events.Exactly(v), ev)
			if err != nil {
				b.Error(err)
				return
			}
			v = res.Version()
		}
	})
}

func BenchmarkReadStream(b *testing.B) {
	st := memstore.New()
	defer st.Close()
	for i := range 1000 {
		if _, err := st.Append(b.Context(), "room:r", events.AnyVersion, []events.Event{{ID: fmt.Sprintf("r-%d", i), Type: "T"}}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		evs, err := st.ReadStream(b.Context(), "room:r", 0, 0)
		if err != nil || len(evs) != 1000 {
			b.Fatal(len(evs), err)
		}
	}
}

// After Close every call fails with ErrClosed, even one whose input would
// be rejected anyway.
func TestClosedBeforeValidation(t *testing.T) {
	st := memstore.New()
	if err := st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := st.Append(t.Context(), "Bad", events.AnyVersion, nil); !errors.Is(err, events.ErrClosed) {
		t.Fatalf("Append with bad input after Close: want ErrClosed, got %v", err)
	}
	if _, err := st.ReadStream(t.Context(), "Bad", 0, 0); !errors.Is(err, events.ErrClosed) {
		t.Fatalf("ReadStream with a bad stream id after Close: want ErrClosed, got %v", err)
	}
}

package client

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b6368a97/engine/events"
)

// BenchmarkCommand is one command round trip (frame out, append in the
// fake server, ack back) at a time.
func BenchmarkCommand(b *testing.B) {
	f := newFakeServer(b)
	c, err := Dial(context.Background(), f.URL(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	data := map[string]string{"user": "ann", "text": "hello"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Command(ctx, "room:bench", "PostMessage", data, ""); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCommandParallel: many goroutines share one client (and one
// connection), which is how the load tool drives it.
func BenchmarkCommandParallel(b *testing.B) {
	f := newFakeServer(b)
	c, err := Dial(context.Background(), f.URL(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Command(ctx, "room:bench", "PostMessage", nil, ""); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkDelivery is the cost per event from the server's frame to the
// handler call: decode, version check, queue, handler.
func BenchmarkDelivery(b *testing.B) {
	f := newFakeServer(b, func(f *fakeServer) { f.blocking = true })
	c, err := Dial(context.Background(), f.URL(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	var seen atomic.Uint64
	sub, err := c.Subscribe(context.Background(), "room:deliver", nil, "", func(e events.Event) { seen.Store(e.Version) })
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		f.Append("room:deliver")
	}
	deadline := time.Now().Add(time.Minute)
	for sub.Version() < uint64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("delivered %d of %d", sub.Version(), b.N)
		}
		runtime.Gosched()
	}
}

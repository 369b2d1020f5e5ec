package hub

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b6368a97/engine/actors"
)

// countSink counts events and closes done when it has want of them.
type countSink struct {
	n    atomic.Int64
	want int64
	done chan struct{}
}

func (s *countSink) Enqueue(d actors.Delivery) bool {
	if d.Event != nil && s.n.Add(1) == s.want {
		close(s.done)
	}
	return true
}

func (s *countSink) WaitRoom(ctx context.Context) error { return ctx.Err() }
func (s *countSink) Overflow()                          {}

// BenchmarkFanOut: 1,000 live subscribers of one stream; each iteration
// appends one event, and the benchmark ends when every subscriber has
// every event.
func BenchmarkFanOut(b *testing.B) {
	const subscribers = 1000
	store := newStore(b)
	h := startHub(b, store, Config{})
	const stream = "chat:fanout"
	sinks := make([]*countSink, subscribers)
	for i := range sinks {
		sinks[i] = &countSink{want: int64(b.N), done: make(chan struct{})}
		subscribe(b, h, stream, nil, "", sinks[i])
	}
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		appendN(b, store, stream, 1)
	}
	for _, s := range sinks {
		<-s.done
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N*subscribers)/elapsed.Seconds(), "deliveries/s")
}

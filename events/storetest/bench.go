package storetest

import (
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The stores' append benchmarks share their events, their streams and
// their way of measuring, so that their figures compare.

// BenchData is a ~170-byte JSON payload: with its id and type an event is
// about 200 bytes (events.Event.Size).
func BenchData(n int) []byte {
	return fmt.Appendf(nil, `{"user":"bench-user-%04d","text":"The quick brown fox jumps over the lazy dog while the kitchen prepares order %08d; nothing to see here, just padding to size."}`, n%10000, n)
}

// BenchStream is the stream of writer w's i-th append: the 1,000 streams
// are dealt out to the writers (stream j belongs to writer j mod writers),
// so that a writer's expected versions are never raced, as an actor owns
// its stream.
func BenchStream(w, writers, i int) string {
	return "room:r" + strconv.Itoa(w+writers*(i%BenchStreamsOwned(w, writers)))
}

// BenchStreamsOwned is how many streams BenchStream gives writer w: call i
// goes to the (i mod that)th of them.
func BenchStreamsOwned(w, writers int) int {
	const streams = 1000
	return (streams - w + writers - 1) / writers
}

// RunWriters measures b.N operations with MeasureWriters and reports
// them. Only the operations count toward b's time.
func RunWriters(b *testing.B, writers int, newWriter func(w int) func(i int) error) {
	b.Helper()
	b.StopTimer()
	b.ResetTimer()
	r := MeasureWriters(b, b.N, writers, newWriter)
	b.ReportMetric(r.PerSecond, "events/s")
	b.ReportMetric(ms(r.P50), "p50-ms")
	b.ReportMetric(ms(r.P99), "p99-ms")
}

// WritersResult is what MeasureWriters measured.
type WritersResult struct {
	PerSecond float64
	P50, P99  time.Duration
}

// MeasureWriters runs n operations from writers goroutines (writer w runs
// newWriter(w)(i) for its i-th operation) and returns the rate and the
// latency percentiles. b's timer runs while the operations do and is
// stopped on return, so that a benchmark measuring several cases in one
// iteration (stopping the timer and resetting it first) is timed by all
// of them together; a failed operation fails b.
func MeasureWriters(b *testing.B, n, writers int, newWriter func(w int) func(i int) error) WritersResult {
	b.Helper()
	var next atomic.Int64
	lat := make([][]time.Duration, writers)
	errs := make(chan error, writers)
	ops := make([]func(int) error, writers)
	for w := range writers {
		ops[w] = newWriter(w)
		lat[w] = make([]time.Duration, 0, n/writers+1)
	}
	b.StartTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; next.Add(1) <= int64(n); i++ {
				t0 := time.Now()
				if err := ops[w](i); err != nil {
					errs <- err
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}()
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
	return WritersResult{
		PerSecond: float64(n) / elapsed.Seconds(),
		P50:       percentile(all, 0.50),
		P99:       percentile(all, 0.99),
	}
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

package transport

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/b6368a97/engine/events"
)

// One event fanned out to many connections is rendered once per endpoint
// (the first writers may race to render it: at most once each), and other
// events are not confused with it.
func TestFrameCacheRendersASharedEventOnce(t *testing.T) {
	var f frameCache
	var calls atomic.Int64
	render := func(ev *events.Event) ([]byte, bool) {
		calls.Add(1)
		return renderEvent(ev)
	}
	ev := &events.Event{Stream: "room:a", Version: 7, ID: "e7", Type: "MessagePosted", Data: []byte(`{}`)}
	want, _ := renderEvent(ev)
	f.render(ev, render)
	var wg sync.WaitGroup
	for range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, ok := f.render(ev, render)
			if !ok || string(got) != string(want) {
				t.Errorf("frame %q, %v", got, ok)
			}
		}()
	}
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Fatalf("rendered %d times for 1,001 deliveries of one event, want once", n)
	}
	// An equal event that is another delivery is rendered on its own.
	twin := *ev
	if got, _ := f.render(&twin, render); string(got) != string(want) || calls.Load() != 2 {
		t.Fatalf("a distinct event: %q after %d renders", got, calls.Load())
	}
	// The cache holds the last frameSlots events.
	for i := range frameSlots {
		f.render(&events.Event{Stream: "room:b", Version: uint64(i + 1)}, render)
	}
	before := calls.Load()
	f.render(ev, render)
	if calls.Load() != before+1 {
		t.Fatal("an event pushed out of the cache was not rendered again")
	}
}

package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/b6368a97/engine/events"
)

// waitTimeout bounds every wait on another goroutine. It is a deadline for
// a hung store, not a speed target: a healthy store answers in
// milliseconds.
const waitTimeout = 15 * time.Second

// ev is an event as a caller hands it to Append.
func ev(id, typ, data string) events.Event {
	return events.Event{ID: id, Type: typ, Data: json.RawMessage(data)}
}

// batch returns n events with ids prefix-1 … prefix-n.
func batch(prefix string, n int) []events.Event {
	out := make([]events.Event, n)
	for i := range out {
		out[i] = ev(fmt.Sprintf("%s-%d", prefix, i+1), "Tested", fmt.Sprintf(`{"n":%d}`, i+1))
	}
	return out
}

func mustAppend(t *testing.T, st events.Store, stream string, exp events.ExpectedVersion, evs []events.Event) events.AppendResult {
	t.Helper()
	res, err := st.Append(t.Context(), stream, exp, evs)
	if err != nil {
		t.Fatalf("Append(%s, expected %s, %d events): want success, got %v", stream, exp, len(evs), err)
	}
	if res.Duplicate {
		t.Fatalf("Append(%s, expected %s, %d new events): want Duplicate false, got true", stream, exp, len(evs))
	}
	if len(res.Events) != len(evs) {
		t.Fatalf("Append(%s, %d events): want %d events in the result, got %d", stream, len(evs), len(evs), len(res.Events))
	}
	return res
}

func readAll(t *testing.T, st events.Store) []events.Event {
	t.Helper()
	all, err := st.ReadAll(t.Context(), 0, 0)
	if err != nil {
		t.Fatalf("ReadAll(0, 0): %v", err)
	}
	return all
}

func readStream(t *testing.T, st events.Store, stream string) []events.Event {
	t.Helper()
	evs, err := st.ReadStream(t.Context(), stream, 0, 0)
	if err != nil {
		t.Fatalf("ReadStream(%s, 0, 0): %v", stream, err)
	}
	return evs
}

func head(t *testing.T, st events.Store) uint64 {
	t.Helper()
	h, err := st.Head(t.Context())
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	return h
}

func streamVersion(t *testing.T, st events.Store, stream string) uint64 {
	t.Helper()
	v, err := st.StreamVersion(t.Context(), stream)
	if err != nil {
		t.Fatalf("StreamVersion(%s): %v", stream, err)
	}
	return v
}

func pending(t *testing.T, st events.Store) []string {
	t.Helper()
	p, err := st.Pending(t.Context())
	if err != nil {
		t.Fatalf("Pending: %v", err)
	}
	return p
}

// diffEvent describes how got differs from want, or returns "". Data is
// compared as JSON values so a store may re-encode it (e.g. jsonb); times
// must be equal instants and in UTC.
func diffEvent(got, want events.Event) string {
	var d []string
	if got.Stream != want.Stream {
		d = append(d, fmt.Sprintf("stream %q, want %q", got.Stream, want.Stream))
	}
	if got.Version != want.Version {
		d = append(d, fmt.Sprintf("version %d, want %d", got.Version, want.Version))
	}
	if got.Position != want.Position {
		d = append(d, fmt.Sprintf("position %d, want %d", got.Position, want.Position))
	}
	if got.ID != want.ID {
		d = append(d, fmt.Sprintf("id %q, want %q", got.ID, want.ID))
	}
	if got.Type != want.Type {
		d = append(d, fmt.Sprintf("type %q, want %q", got.Type, want.Type))
	}
	if !got.Time.Equal(want.Time) {
		d = append(d, fmt.Sprintf("time %s, want %s", got.Time.Format(time.RFC3339Nano), want.Time.Format(time.RFC3339Nano)))
	}
	if got.Time.Location() != time.UTC {
		d = append(d, fmt.Sprintf("time %s is not in UTC", got.Time))
	}
	if !jsonEqual(got.Data, want.Data) {
		d = append(d, fmt.Sprintf("data %s, want %s", clip(got.Data), clip(want.Data)))
	}
	if got.Meta != want.Meta {
		d = append(d, fmt.Sprintf("meta %+v, want %+v", got.Meta, want.Meta))
	}
	return strings.Join(d, "; ")
}

// checkEvents fails t unless got equals want event by event.
func checkEvents(t *testing.T, what string, got, want []events.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: want %d events %s, got %d events %s", what, len(want), summary(want), len(got), summary(got))
	}
	for i := range got {
		if d := diffEvent(got[i], want[i]); d != "" {
			t.Fatalf("%s: event %d (id %s): %s", what, i, want[i].ID, d)
		}
	}
}

// checkPositions fails t unless evs have exactly the given positions.
func checkPositions(t *testing.T, what string, evs []events.Event, want []uint64) {
	t.Helper()
	got := make([]uint64, len(evs))
	for i, e := range evs {
		got[i] = e.Position
	}
	if !reflect.DeepEqual(got, want) && (len(got) != 0 || len(want) != 0) {
		t.Fatalf("%s: want positions %v, got %v", what, want, got)
	}
}

// checkVersions fails t unless evs have exactly the given versions.
func checkVersions(t *testing.T, what string, evs []events.Event, want []uint64) {
	t.Helper()
	got := make([]uint64, len(evs))
	for i, e := range evs {
		got[i] = e.Version
	}
	if !reflect.DeepEqual(got, want) && (len(got) != 0 || len(want) != 0) {
		t.Fatalf("%s: want versions %v, got %v", what, want, got)
	}
}

// seq returns from, from+1, …, to (empty when to < from).
func seq(from, to uint64) []uint64 {
	var out []uint64
	for v := from; v <= to && to != 0; v++ {
		out = append(out, v)
	}
	return out
}

func jsonEqual(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func clip(b []byte) string {
	if len(b) > 60 {
		return string(b[:60]) + fmt.Sprintf("…(%d bytes)", len(b))
	}
	return string(b)
}

// summary names a few events by stream/version@position for messages.
func summary(evs []events.Event) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, e := range evs {
		if i == 8 {
			fmt.Fprintf(&b, " … %d more", len(evs)-i)
			break
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s/%d@%d", e.Stream, e.Version, e.Position)
	}
	b.WriteByte(']')
	return b.String()
}

// state is what a failed call must leave unchanged.
type state struct {
	head    uint64
	log     []events.Event
	pending []string
}

func capture(t *testing.T, st events.Store) state {
	t.Helper()
	return state{head: head(t, st), log: readAll(t, st), pending: pending(t, st)}
}

func checkUnchanged(t *testing.T, what string, st events.Store, before state) {
	t.Helper()
	if h := head(t, st); h != before.head {
		t.Fatalf("%s: the store changed: Head was %d, now %d", what, before.head, h)
	}
	checkEvents(t, what+": the log changed", readAll(t, st), before.log)
	if p := pending(t, st); !reflect.DeepEqual(p, before.pending) && (len(p) != 0 || len(before.pending) != 0) {
		t.Fatalf("%s: the pending index changed: was %v, now %v", what, before.pending, p)
	}
}

// goFollow runs Follow on its own goroutine and returns where its error
// will arrive.
func goFollow(ctx context.Context, st events.Store, after uint64, fn func(events.Event) error) <-chan error {
	done := make(chan error, 1)
	go func() { done <- st.Follow(ctx, after, fn) }()
	return done
}

// await waits for Follow (or any call run by go*) to return.
func await(t *testing.T, what string, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(waitTimeout):
		t.Fatalf("%s: still running after %v", what, waitTimeout)
		return nil
	}
}

// signal waits for ch to be closed or to deliver.
func signal[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("waiting for %s: nothing after %v", what, waitTimeout)
		var zero T
		return zero
	}
}

// cancelled returns a context that is already done.
func cancelled(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	return ctx
}

// raceAppends starts n appenders, each appending the batches next gives
// (appender i, call j) until the store is closed: every append must
// succeed (ok, when set, is told) or fail with ErrClosed; anything else
// fails the test. It returns once every appender has made its first call;
// the channel is closed when all of them have ended.
func raceAppends(t *testing.T, st events.Store, n int, next func(i, j int) (string, []events.Event), ok func(events.AppendResult)) <-chan struct{} {
	var wg sync.WaitGroup
	started := make(chan struct{}, n)
	for i := range n {
		wg.Go(func() {
			for j := 0; ; j++ {
				stream, evs := next(i, j)
				res, err := st.Append(context.Background(), stream, events.AnyVersion, evs)
				if j == 0 {
					started <- struct{}{}
				}
				switch {
				case errors.Is(err, events.ErrClosed):
					return
				case err != nil:
					t.Errorf("Append racing with Close: want success or ErrClosed, got %v", err)
					return
				case ok != nil:
					ok(res)
				}
			}
		})
	}
	for range n {
		signal(t, "an appender to start", started)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	return done
}

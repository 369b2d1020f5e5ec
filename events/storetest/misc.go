package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/b6368a97/engine/events"
)

func testSnapshots(t *testing.T, s suite) {
	st := s.store(t)
	ctx := t.Context()
	if _, err := st.LoadSnapshot(ctx, "room:snap"); !errors.Is(err, events.ErrNotFound) {
		t.Fatalf("LoadSnapshot with none saved: want ErrNotFound, got %v", err)
	}
	mustAppend(t, st, "room:snap", events.NoStream, batch("snap", 5))
	mustAppend(t, st, "room:other", events.NoStream, batch("other", 1))

	load := func(t *testing.T, what string, wantVersion uint64, wantData string) {
		t.Helper()
		got, err := st.LoadSnapshot(ctx, "room:snap")
		if err != nil {
			t.Fatalf("%s: LoadSnapshot: %v", what, err)
		}
		if got.Stream != "room:snap" || got.Version != wantVersion || string(got.Data) != wantData {
			t.Fatalf("%s: want snapshot room:snap@%d %q, got %s@%d %q", what, wantVersion, wantData, got.Stream, got.Version, got.Data)
		}
	}
	steps := []struct {
		name        string
		snap        events.Snapshot
		wantErr     error
		wantVersion uint64
		wantData    string
	}{
		{"first snapshot", events.Snapshot{Stream: "room:snap", Version: 3, Data: []byte("at-3")}, nil, 3, "at-3"},
		{"a newer one replaces it", events.Snapshot{Stream: "room:snap", Version: 5, Data: []byte("at-5")}, nil, 5, "at-5"},
		{"an older one is ignored", events.Snapshot{Stream: "room:snap", Version: 4, Data: []byte("at-4")}, nil, 5, "at-5"},
		{"one beyond the stream version", events.Snapshot{Stream: "room:snap", Version: 6, Data: []byte("at-6")}, events.ErrInvalidEvent, 5, "at-5"},
		{"binary data", events.Snapshot{Stream: "room:snap", Version: 5, Data: []byte{0, 1, 2, 0xff, '\n'}}, nil, 5, "\x00\x01\x02\xff\n"},
	}
	for _, sc := range steps {
		err := st.SaveSnapshot(ctx, sc.snap)
		if sc.wantErr == nil && err != nil {
			t.Fatalf("SaveSnapshot, %s: want success, got %v", sc.name, err)
		}
		if sc.wantErr != nil && !errors.Is(err, sc.wantErr) {
			t.Fatalf("SaveSnapshot, %s: want %v, got %v", sc.name, sc.wantErr, err)
		}
		load(t, sc.name, sc.wantVersion, sc.wantData)
	}

	if err := st.SaveSnapshot(ctx, events.Snapshot{Stream: "room:empty", Version: 1, Data: []byte("x")}); !errors.Is(err, events.ErrInvalidEvent) {
		t.Fatalf("SaveSnapshot at version 1 of a stream with no events: want ErrInvalidEvent, got %v", err)
	}
	if _, err := st.LoadSnapshot(ctx, "room:empty"); !errors.Is(err, events.ErrNotFound) {
		t.Fatalf("LoadSnapshot after a rejected snapshot: want ErrNotFound, got %v", err)
	}
	if _, err := st.LoadSnapshot(ctx, "room:other"); !errors.Is(err, events.ErrNotFound) {
		t.Fatalf("LoadSnapshot of another stream: want ErrNotFound, got %v", err)
	}
	if h := head(t, st); h != 6 {
		t.Fatalf("snapshots must not add events: want Head 6, got %d", h)
	}
}

func testPending(t *testing.T, s suite) {
	st := s.store(t)
	ctx := t.Context()
	if p := pending(t, st); len(p) != 0 {
		t.Fatalf("Pending on an empty store: want none, got %v", p)
	}
	steps := []struct {
		name    string
		stream  string
		pending bool
		want    []string
	}{
		{"add", "room:b", true, []string{"room:b"}},
		{"add a second", "room:a", true, []string{"room:a", "room:b"}},
		{"add a third, sorted first", "order:9", true, []string{"order:9", "room:a", "room:b"}},
		{"add again", "room:a", true, []string{"order:9", "room:a", "room:b"}},
		{"remove", "room:b", false, []string{"order:9", "room:a"}},
		{"remove again", "room:b", false, []string{"order:9", "room:a"}},
		{"remove one never added", "user:x", false, []string{"order:9", "room:a"}},
		{"add back", "room:b", true, []string{"order:9", "room:a", "room:b"}},
		{"remove all but one", "order:9", false, []string{"room:a", "room:b"}},
	}
	for _, sc := range steps {
		if err := st.SetPending(ctx, sc.stream, sc.pending); err != nil {
			t.Fatalf("%s: SetPending(%s, %v): %v", sc.name, sc.stream, sc.pending, err)
		}
		if got := pending(t, st); !reflect.DeepEqual(got, sc.want) {
			t.Fatalf("%s: SetPending(%s, %v): want Pending %v, got %v", sc.name, sc.stream, sc.pending, sc.want, got)
		}
	}
	// Enough entries that no map iteration order passes for sorted by luck.
	want := []string{"room:a", "room:b"}
	for _, i := range []int{7, 3, 11, 0, 9, 1, 14, 5, 12, 2, 8, 13, 4, 10, 6} {
		stream := fmt.Sprintf("kitchen:k%02d", i)
		if err := st.SetPending(ctx, stream, true); err != nil {
			t.Fatalf("SetPending(%s, true): %v", stream, err)
		}
	}
	for i := 14; i >= 0; i-- {
		want = append([]string{fmt.Sprintf("kitchen:k%02d", i)}, want...)
	}
	if got := pending(t, st); !reflect.DeepEqual(got, want) {
		t.Fatalf("Pending after adding 15 kitchen streams out of order: want %v, got %v", want, got)
	}
	if h := head(t, st); h != 0 {
		t.Fatalf("the pending index must not add events: want Head 0, got %d", h)
	}
}

// testCancelledContext calls every method with a context that is already
// done: each must return the context's error and change nothing.
func testCancelledContext(t *testing.T, s suite) {
	st := s.store(t)
	mustAppend(t, st, "room:c", events.NoStream, batch("c", 2))
	if err := st.SaveSnapshot(t.Context(), events.Snapshot{Stream: "room:c", Version: 1, Data: []byte("one")}); err != nil {
		t.Fatalf("SaveSnapshot: %v", err)
	}
	if err := st.SetPending(t.Context(), "room:c", true); err != nil {
		t.Fatalf("SetPending: %v", err)
	}
	before := capture(t, st)
	ctx := cancelled(t)

	calls := []struct {
		name string
		call func() error
	}{
		{"Append", func() error {
			_, err := st.Append(ctx, "room:c", events.AnyVersion, batch("new", 1))
			return err
		}},
		{"Append to a new stream", func() error {
			_, err := st.Append(ctx, "room:new", events.NoStream, batch("new", 1))
			return err
		}},
		{"ReadStream", func() error { _, err := st.ReadStream(ctx, "room:c", 0, 0); return err }},
		{"ReadAll", func() error { _, err := st.ReadAll(ctx, 0, 0); return err }},
		{"StreamVersion", func() error { _, err := st.StreamVersion(ctx, "room:c"); return err }},
		{"Head", func() error { _, err := st.Head(ctx); return err }},
		{"Follow", func() error {
			called := false
			done := goFollow(ctx, st, 0, func(events.Event) error { called = true; return nil })
			err := await(t, "Follow with a cancelled context", done)
			if called && err == nil {
				return errors.New("fn was called and Follow returned nil")
			}
			return err
		}},
		{"SaveSnapshot", func() error {
			return st.SaveSnapshot(ctx, events.Snapshot{Stream: "room:c", Version: 2, Data: []byte("two")})
		}},
		{"LoadSnapshot", func() error { _, err := st.LoadSnapshot(ctx, "room:c"); return err }},
		{"SetPending add", func() error { return st.SetPending(ctx, "room:d", true) }},
		{"SetPending remove", func() error { return st.SetPending(ctx, "room:c", false) }},
		{"Pending", func() error { _, err := st.Pending(ctx); return err }},
	}
	for _, c := range calls {
		err := c.call()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("%s with a cancelled context: want an error matching context.Canceled, got %v", c.name, err)
		}
	}
	checkUnchanged(t, "calls with a cancelled context", st, before)
	snap, err := st.LoadSnapshot(t.Context(), "room:c")
	if err != nil || snap.Version != 1 {
		t.Fatalf("SaveSnapshot with a cancelled context changed the snapshot: want version 1, got %d, %v", snap.Version, err)
	}
}

func testBadAppend(t *testing.T, s suite) {
	st := s.store(t)
	mustAppend(t, st, "room:a", events.NoStream, batch("a", 2))
	if err := st.SetPending(t.Context(), "room:a", true); err != nil {
		t.Fatalf("SetPending: %v", err)
	}
	good := ev("good-1", "Tested", "")
	tooBig := ev("big-1", "Tested", `{"x":"`+strings.Repeat("a", events.MaxEventSize)+`"}`)
	cases := []struct {
		name     string
		stream   string
		expected events.ExpectedVersion
		evs      []events.Event
		want     error
	}{
		{"empty stream id", "", events.AnyVersion, []events.Event{good}, events.ErrInvalidStream},
		{"no colon", "rooma", events.AnyVersion, []events.Event{good}, events.ErrInvalidStream},
		{"empty kind", ":a", events.AnyVersion, []events.Event{good}, events.ErrInvalidStream},
		{"empty id", "room:", events.AnyVersion, []events.Event{good}, events.ErrInvalidStream},
		{"upper-case kind", "Room:a", events.AnyVersion, []events.Event{good}, events.ErrInvalidStream},
		{"digit in kind", "room2:a", events.AnyVersion, []events.Event{good}, events.ErrInvalidStream},
		{"space in id", "room:a b", events.AnyVersion, []events.Event{good}, events.ErrInvalidStream},
		{"slash in id", "room:a/b", events.AnyVersion, []events.Event{good}, events.ErrInvalidStream},
		{"second colon", "room:a:b", events.AnyVersion, []events.Event{good}, events.ErrInvalidStream},
		{"id of 65 characters", "room:" + strings.Repeat("x", 65), events.AnyVersion, []events.Event{good}, events.ErrInvalidStream},
		{"kind of 33 letters", strings.Repeat("k", 33) + ":a", events.AnyVersion, []events.Event{good}, events.ErrInvalidStream},
		{"nil events", "room:a", events.AnyVersion, nil, events.ErrNoEvents},
		{"zero events", "room:a", events.AnyVersion, []events.Event{}, events.ErrNoEvents},
		{"event over MaxEventSize", "room:a", events.AnyVersion, []events.Event{tooBig}, events.ErrTooLarge},
		{"a big event after a good one", "room:a", events.AnyVersion, []events.Event{good, tooBig}, events.ErrTooLarge},
		{"missing id", "room:a", events.AnyVersion, []events.Event{ev("", "Tested", "")}, events.ErrInvalidEvent},
		{"missing type", "room:a", events.AnyVersion, []events.Event{ev("t-1", "", "")}, events.ErrInvalidEvent},
		{"id too long", "room:a", events.AnyVersion, []events.Event{ev(strings.Repeat("i", events.MaxIDLength+1), "Tested", "")}, events.ErrInvalidEvent},
		{"type too long", "room:a", events.AnyVersion, []events.Event{ev("t-1", strings.Repeat("T", events.MaxIDLength+1), "")}, events.ErrInvalidEvent},
		{"data is an array", "room:a", events.AnyVersion, []events.Event{ev("d-1", "Tested", `[1,2]`)}, events.ErrInvalidEvent},
		{"data is a string", "room:a", events.AnyVersion, []events.Event{ev("d-1", "Tested", `"s"`)}, events.ErrInvalidEvent},
		{"data is a number", "room:a", events.AnyVersion, []events.Event{ev("d-1", "Tested", `42`)}, events.ErrInvalidEvent},
		{"data is null", "room:a", events.AnyVersion, []events.Event{ev("d-1", "Tested", `null`)}, events.ErrInvalidEvent},
		{"data is broken JSON", "room:a", events.AnyVersion, []events.Event{ev("d-1", "Tested", `{"a":`)}, events.ErrInvalidEvent},
		{"data with trailing garbage", "room:a", events.AnyVersion, []events.Event{ev("d-1", "Tested", `{} {}`)}, events.ErrInvalidEvent},
		{"bad data after a good event", "room:a", events.AnyVersion, []events.Event{good, ev("d-1", "Tested", `[]`)}, events.ErrInvalidEvent},
		{"same id twice in one batch", "room:a", events.AnyVersion, []events.Event{ev("twice", "Tested", ""), ev("twice", "Tested", "")}, events.ErrInvalidEvent},
		{"stored id twice in one batch", "room:a", events.AnyVersion, []events.Event{ev("a-1", "Tested", ""), ev("a-1", "Tested", "")}, events.ErrInvalidEvent},
		{"expected version below AnyVersion", "room:a", events.ExpectedVersion(-2), []events.Event{good}, events.ErrInvalidEvent},
	}
	before := capture(t, st)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := st.Append(t.Context(), tc.stream, tc.expected, tc.evs)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Append: want an error matching %q, got %v (result %s)", tc.want, err, summary(res.Events))
			}
			checkUnchanged(t, "a rejected append", st, before)
			if v := streamVersion(t, st, "room:a"); v != 2 {
				t.Fatalf("a rejected append: want room:a still at version 2, got %d", v)
			}
		})
	}
}

// testBadStreamID gives a malformed stream id to every method that takes
// one.
func testBadStreamID(t *testing.T, s suite) {
	st := s.store(t)
	mustAppend(t, st, "room:a", events.NoStream, batch("a", 1))
	before := capture(t, st)
	for _, bad := range []string{"", "room", "Room:a", "room:a b", "room:" + strings.Repeat("x", 65)} {
		calls := []struct {
			name string
			call func() error
		}{
			{"ReadStream", func() error { _, err := st.ReadStream(t.Context(), bad, 0, 0); return err }},
			{"StreamVersion", func() error { _, err := st.StreamVersion(t.Context(), bad); return err }},
			{"SaveSnapshot", func() error {
				return st.SaveSnapshot(t.Context(), events.Snapshot{Stream: bad, Version: 0, Data: []byte("x")})
			}},
			{"LoadSnapshot", func() error { _, err := st.LoadSnapshot(t.Context(), bad); return err }},
			{"SetPending", func() error { return st.SetPending(t.Context(), bad, true) }},
		}
		for _, c := range calls {
			if err := c.call(); !errors.Is(err, events.ErrInvalidStream) {
				t.Fatalf("%s(%q): want ErrInvalidStream, got %v", c.name, bad, err)
			}
		}
	}
	checkUnchanged(t, "calls with malformed stream ids", st, before)
}

func testMaxEventSize(t *testing.T, s suite) {
	st := s.store(t)
	const id, typ = "max-1", "Tested"
	fill := events.MaxEventSize - len(id) - len(typ) - len(`{"x":""}`)
	e := ev(id, typ, `{"x":"`+strings.Repeat("m", fill)+`"}`)
	if e.Size() != events.MaxEventSize {
		t.Fatalf("test setup: event size %d, want %d", e.Size(), events.MaxEventSize)
	}
	res := mustAppend(t, st, "room:max", events.NoStream, []events.Event{e})
	got := readStream(t, st, "room:max")
	checkEvents(t, "an event of exactly MaxEventSize", got, res.Events)
	if len(got[0].Data) != len(e.Data) {
		t.Fatalf("an event of exactly MaxEventSize: want %d data bytes back, got %d", len(e.Data), len(got[0].Data))
	}
}

func testClose(t *testing.T, s suite) {
	st := s.store(t)
	mustAppend(t, st, "room:a", events.NoStream, batch("a", 1))
	if err := st.SaveSnapshot(t.Context(), events.Snapshot{Stream: "room:a", Version: 1, Data: []byte("s")}); err != nil {
		t.Fatalf("SaveSnapshot: %v", err)
	}

	// A Follow that has delivered everything and waits for more must end
	// with ErrClosed. Nothing is appended while it waits, so it cannot
	// stumble on ErrClosed by reading after Close: Close must wake it.
	f := newFollower(0, 0)
	f.mark = 1
	followed := goFollow(t.Context(), st, 0, f.fn)
	signal(t, "Follow to deliver the first event", f.reached)
	if err := st.Close(); err != nil {
		t.Fatalf("Close: want nil, got %v", err)
	}
	if err := await(t, "Follow after Close", followed); !errors.Is(err, events.ErrClosed) {
		t.Fatalf("Follow waiting for events when the store closed: want ErrClosed, got %v", err)
	}
	checkClosed(t, st)
}

// testCloseRacingAppends closes the store while appends are running: each
// append either completes or fails with ErrClosed, and Close returns.
func testCloseRacingAppends(t *testing.T, s suite) {
	st := s.store(t)
	mustAppend(t, st, "room:a", events.NoStream, batch("a", 1))
	// This Follow is busy reading when Close comes.
	followed := goFollow(t.Context(), st, 0, func(events.Event) error { return nil })

	// Appenders race with Close: each append either completes or fails
	// with ErrClosed, nothing else.
	done := raceAppends(t, st, 3, func(i, j int) (string, []events.Event) {
		return "room:busy", []events.Event{ev(fmt.Sprintf("busy-%d-%d", i, j), "Tested", "")}
	}, nil)

	closed := make(chan error, 1)
	go func() { closed <- st.Close() }()
	if err := await(t, "Close", closed); err != nil {
		t.Fatalf("Close: want nil, got %v", err)
	}
	if err := await(t, "Follow after Close", followed); !errors.Is(err, events.ErrClosed) {
		t.Fatalf("Follow running when the store closed: want ErrClosed, got %v", err)
	}
	signal(t, "appenders to see ErrClosed", done)
	checkClosed(t, st)
}

// checkClosed calls every method of a closed store.
func checkClosed(t *testing.T, st events.Store) {
	t.Helper()
	ctx := t.Context()
	calls := []struct {
		name string
		call func() error
	}{
		{"Append", func() error {
			_, err := st.Append(ctx, "room:a", events.AnyVersion, batch("late", 1))
			return err
		}},
		{"Append retry", func() error {
			_, err := st.Append(ctx, "room:a", events.AnyVersion, batch("a", 1))
			return err
		}},
		{"ReadStream", func() error { _, err := st.ReadStream(ctx, "room:a", 0, 0); return err }},
		{"ReadAll", func() error { _, err := st.ReadAll(ctx, 0, 0); return err }},
		{"StreamVersion", func() error { _, err := st.StreamVersion(ctx, "room:a"); return err }},
		{"Head", func() error { _, err := st.Head(ctx); return err }},
		{"Follow", func() error {
			return await(t, "Follow on a closed store", goFollow(ctx, st, 0, func(events.Event) error { return nil }))
		}},
		{"SaveSnapshot", func() error {
			return st.SaveSnapshot(ctx, events.Snapshot{Stream: "room:a", Version: 1, Data: []byte("x")})
		}},
		{"LoadSnapshot", func() error { _, err := st.LoadSnapshot(ctx, "room:a"); return err }},
		{"SetPending", func() error { return st.SetPending(ctx, "room:a", true) }},
		{"Pending", func() error { _, err := st.Pending(ctx); return err }},
	}
	for _, c := range calls {
		if err := c.call(); !errors.Is(err, events.ErrClosed) {
			t.Fatalf("%s after Close: want ErrClosed, got %v", c.name, err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatalf("second Close: want nil, got %v", err)
	}
}

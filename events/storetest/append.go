package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/b6368a97/engine/events"
)

func testAppendReadRoundTrip(t *testing.T, s suite) {
	st := s.store(t)
	given := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("UTC+2", 2*3600))
	in := []events.Event{
		{ID: "a-1", Type: "Created"}, // no time, no data
		{ID: "a-2", Type: "Renamed", Time: given, Data: []byte(`{"name":"x"}`)},
		{ID: "a-3", Type: "Tagged", Data: []byte(`{"tags":["p","q"],"n":1.5,"nested":{"ok":true}}`),
			Meta: events.Meta{Correlation: "corr-1", Causation: "cmd-7"}},
	}
	res := mustAppend(t, st, "room:a", events.NoStream, in)

	for i, e := range res.Events {
		want := uint64(i + 1)
		if e.Stream != "room:a" || e.Version != want || e.Position != want {
			t.Fatalf("result event %d: want room:a version %d position %d, got %s version %d position %d", i, want, want, e.Stream, e.Version, e.Position)
		}
		if e.ID != in[i].ID || e.Type != in[i].Type || e.Meta != in[i].Meta {
			t.Fatalf("result event %d: want id %s type %s meta %+v, got id %s type %s meta %+v", i, in[i].ID, in[i].Type, in[i].Meta, e.ID, e.Type, e.Meta)
		}
	}
	if res.Version() != 3 || res.Position() != 3 {
		t.Fatalf("result: want Version 3 and Position 3, got %d and %d", res.Version(), res.Position())
	}

	filled := res.Events[0].Time
	switch {
	case filled.IsZero():
		t.Fatal("event without a time: want the store to set Time, got the zero time")
	case filled.Location() != time.UTC:
		t.Fatalf("event without a time: want a UTC time, got %s", filled)
	case !filled.Equal(filled.Truncate(time.Millisecond)):
		t.Fatalf("event without a time: want millisecond precision, got %s", filled.Format(time.RFC3339Nano))
	}
	wantGiven := time.Date(2024, 5, 6, 5, 8, 9, 123000000, time.UTC)
	if got := res.Events[1].Time; !got.Equal(wantGiven) || got.Location() != time.UTC {
		t.Fatalf("event with a time: want it kept as %s (UTC, ms), got %s", wantGiven.Format(time.RFC3339Nano), got.Format(time.RFC3339Nano))
	}
	if got := res.Events[0].Data; !jsonEqual(got, []byte(`{}`)) {
		t.Fatalf("event without data: want data {}, got %q", got)
	}
	if got := res.Events[2].Data; !jsonEqual(got, in[2].Data) {
		t.Fatalf("event data: want %s, got %s", in[2].Data, got)
	}

	// Two more streams interleaved: positions are global and gap-free,
	// versions are per stream.
	b := mustAppend(t, st, "order:b-1", events.AnyVersion, batch("b", 2))
	a4 := mustAppend(t, st, "room:a", events.Exactly(3), batch("a4", 1))
	checkPositions(t, "Append to order:b-1", b.Events, []uint64{4, 5})
	checkVersions(t, "Append to order:b-1", b.Events, []uint64{1, 2})
	checkPositions(t, "fourth append to room:a", a4.Events, []uint64{6})
	checkVersions(t, "fourth append to room:a", a4.Events, []uint64{4})

	wantA := append(append([]events.Event{}, res.Events...), a4.Events...)
	checkEvents(t, "ReadStream(room:a)", readStream(t, st, "room:a"), wantA)
	checkEvents(t, "ReadStream(order:b-1)", readStream(t, st, "order:b-1"), b.Events)
	wantAll := append(append(append([]events.Event{}, res.Events...), b.Events...), a4.Events...)
	checkEvents(t, "ReadAll(0, 0)", readAll(t, st), wantAll)
}

func testAppendCopiesInput(t *testing.T, s suite) {
	st := s.store(t)
	in := []events.Event{ev("c-1", "Copied", `{"v":"aaaa"}`)}
	mustAppend(t, st, "room:c", events.NoStream, in)
	// The caller reuses its buffer; the stored event must not change.
	copy(in[0].Data, `{"v":"bbbb"}`)
	in[0].ID = "changed"
	got := readStream(t, st, "room:c")
	if len(got) != 1 || !jsonEqual(got[0].Data, []byte(`{"v":"aaaa"}`)) || got[0].ID != "c-1" {
		t.Fatalf("after the caller changed its input: want stored c-1 with data {\"v\":\"aaaa\"}, got %s", summaryData(got))
	}

	snap := events.Snapshot{Stream: "room:c", Version: 1, Data: []byte("state-1")}
	if err := st.SaveSnapshot(t.Context(), snap); err != nil {
		t.Fatalf("SaveSnapshot: %v", err)
	}
	copy(snap.Data, "XXXXXXX")
	loaded, err := st.LoadSnapshot(t.Context(), "room:c")
	if err != nil {
		t.Fatalf("LoadSnapshot: %v", err)
	}
	if string(loaded.Data) != "state-1" {
		t.Fatalf("after the caller changed its snapshot buffer: want stored data %q, got %q", "state-1", loaded.Data)
	}
}

func summaryData(evs []events.Event) string {
	out := ""
	for _, e := range evs {
		out += fmt.Sprintf("[%s %s] ", e.ID, e.Data)
	}
	return out
}

func testExpectedVersion(t *testing.T, s suite) {
	type step struct {
		name     string
		stream   string
		expected events.ExpectedVersion
		n        int
		// wantVersion is the version after a successful append; when
		// wrong is set the append must fail with current = wantVersion.
		wantVersion uint64
		wrong       bool
	}
	steps := []step{
		{"NoStream on a new stream", "room:e", events.NoStream, 2, 2, false},
		{"NoStream on an existing stream", "room:e", events.NoStream, 1, 2, true},
		{"Exactly the current version", "room:e", events.Exactly(2), 1, 3, false},
		{"Exactly an older version", "room:e", events.Exactly(1), 1, 3, true},
		{"Exactly a future version", "room:e", events.Exactly(7), 1, 3, true},
		{"AnyVersion on an existing stream", "room:e", events.AnyVersion, 2, 5, false},
		{"Exactly(1) on a new stream", "room:f", events.Exactly(1), 1, 0, true},
		{"AnyVersion on a new stream", "room:g", events.AnyVersion, 1, 1, false},
		{"Exactly(0) is NoStream", "room:h", events.Exactly(0), 1, 1, false},
	}
	st := s.store(t)
	for i, sc := range steps {
		// The steps build on each other, so they run in order on one store.
		before := capture(t, st)
		res, err := st.Append(t.Context(), sc.stream, sc.expected, batch(fmt.Sprintf("s%d", i), sc.n))
		if !sc.wrong {
			if err != nil {
				t.Fatalf("%s: want success, got %v", sc.name, err)
			}
			if res.Version() != sc.wantVersion {
				t.Fatalf("%s: want version %d after the append, got %d", sc.name, sc.wantVersion, res.Version())
			}
			continue
		}
		if !errors.Is(err, events.ErrWrongExpectedVersion) {
			t.Fatalf("%s: want an error matching ErrWrongExpectedVersion, got %v", sc.name, err)
		}
		var wev *events.WrongExpectedVersionError
		if !errors.As(err, &wev) {
			t.Fatalf("%s: want a *WrongExpectedVersionError, got %T: %v", sc.name, err, err)
		}
		if cur, ok := events.CurrentVersion(err); !ok || cur != sc.wantVersion {
			t.Fatalf("%s: want CurrentVersion %d, true; got %d, %v (%v)", sc.name, sc.wantVersion, cur, ok, err)
		}
		checkUnchanged(t, sc.name, st, before)
		if v := streamVersion(t, st, sc.stream); v != sc.wantVersion {
			t.Fatalf("%s: want %s still at version %d, got %d", sc.name, sc.stream, sc.wantVersion, v)
		}
	}
}

// testExactlyOneWins starts several appends with the same exact expected
// version at once, round after round.
func testExactlyOneWins(t *testing.T, s suite) {
	const rounds, racers = 5, 6
	const stream = "game:race"
	st := s.store(t)
	for r := range rounds {
		start := make(chan struct{})
		errs := make([]error, racers)
		var wg sync.WaitGroup
		for g := range racers {
			wg.Go(func() {
				<-start
				_, errs[g] = st.Append(t.Context(), stream, events.Exactly(uint64(r)),
					[]events.Event{ev(fmt.Sprintf("r%d-g%d", r, g), "Raced", "")})
			})
		}
		close(start)
		wg.Wait()
		wins := 0
		for g, err := range errs {
			switch {
			case err == nil:
				wins++
			case errors.Is(err, events.ErrWrongExpectedVersion):
				if cur, _ := events.CurrentVersion(err); cur != uint64(r+1) {
					t.Fatalf("round %d, racer %d: want the loser to see current version %d, got %d", r, g, r+1, cur)
				}
			default:
				t.Fatalf("round %d, racer %d: want success or ErrWrongExpectedVersion, got %v", r, g, err)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d appends raced with Exactly(%d): want exactly 1 to succeed, got %d", r, racers, r, wins)
		}
	}
	if v := streamVersion(t, st, stream); v != rounds {
		t.Fatalf("after %d rounds: want version %d, got %d", rounds, rounds, v)
	}
}

// testRacingWriters has writers append to one stream with the version they
// last observed, retrying on conflict.
func testRacingWriters(t *testing.T, s suite) {
	const writers, perWriter = 4, 20
	const total = writers * perWriter
	const stream = "room:race"
	st := s.store(t)

	var mu sync.Mutex
	winner := make(map[uint64]string) // version -> id of the append that won it
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			var observed uint64
			lost := 0
			for i := 0; i < perWriter; {
				id := fmt.Sprintf("w%d-%d", w, i)
				res, err := st.Append(t.Context(), stream, events.Exactly(observed), []events.Event{ev(id, "Raced", "")})
				switch {
				case err == nil:
					v := res.Version()
					mu.Lock()
					prev, taken := winner[v]
					winner[v] = id
					mu.Unlock()
					if taken {
						t.Errorf("version %d won twice: by %s and by %s", v, prev, id)
						return
					}
					if v != observed+1 {
						t.Errorf("%s appended with Exactly(%d): want version %d, got %d", id, observed, observed+1, v)
						return
					}
					observed = v
					i++
				case errors.Is(err, events.ErrWrongExpectedVersion):
					cur, ok := events.CurrentVersion(err)
					if !ok || cur <= observed {
						t.Errorf("%s: a conflict must report a newer current version than %d, got %d, %v", id, observed, cur, ok)
						return
					}
					observed = cur
					// Every conflict means another append won, and there
					// are only total of those.
					if lost++; lost > total {
						t.Errorf("writer %d lost %d races, more than the %d appends there are", w, lost, total)
						return
					}
				default:
					t.Errorf("%s: want success or ErrWrongExpectedVersion, got %v", id, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if v := streamVersion(t, st, stream); v != total {
		t.Fatalf("want final version %d, got %d", total, v)
	}
	got := readStream(t, st, stream)
	checkVersions(t, "ReadStream after the race", got, seq(1, total))
	seen := make(map[string]bool)
	for i, e := range got {
		if seen[e.ID] {
			t.Fatalf("id %s stored twice", e.ID)
		}
		seen[e.ID] = true
		if e.ID != winner[e.Version] {
			t.Fatalf("version %d: the winning append was %s, the stored event is %s", e.Version, winner[e.Version], e.ID)
		}
		if i > 0 && e.Position <= got[i-1].Position {
			t.Fatalf("versions %d and %d: positions %d and %d are not increasing", got[i-1].Version, e.Version, got[i-1].Position, e.Position)
		}
	}
}

func testConcurrentStreams(t *testing.T, s suite) {
	const streams, appends = 6, 15
	st := s.store(t)
	results := make([][]events.Event, streams)
	var wg sync.WaitGroup
	for i := range streams {
		wg.Go(func() {
			stream := fmt.Sprintf("order:%d", i)
			var v uint64
			for j := range appends {
				res, err := st.Append(t.Context(), stream, events.Exactly(v), batch(fmt.Sprintf("o%d-%d", i, j), j%3+1))
				if err != nil {
					t.Errorf("Append(%s, Exactly(%d)): %v", stream, v, err)
					return
				}
				v = res.Version()
				results[i] = append(results[i], res.Events...)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	byPos := make(map[uint64]events.Event)
	total := 0
	for _, evs := range results {
		total += len(evs)
		for _, e := range evs {
			if prev, dup := byPos[e.Position]; dup {
				t.Fatalf("position %d given to %s/%d and to %s/%d", e.Position, prev.Stream, prev.Version, e.Stream, e.Version)
			}
			byPos[e.Position] = e
		}
	}
	all := readAll(t, st)
	checkPositions(t, "ReadAll after concurrent appends", all, seq(1, uint64(total)))
	for _, e := range all {
		if d := diffEvent(e, byPos[e.Position]); d != "" {
			t.Fatalf("ReadAll position %d differs from what Append returned: %s", e.Position, d)
		}
	}
	if h := head(t, st); h != uint64(total) {
		t.Fatalf("Head: want %d, got %d", total, h)
	}
	for i, want := range results {
		stream := fmt.Sprintf("order:%d", i)
		got := readStream(t, st, stream)
		checkEvents(t, "ReadStream("+stream+")", got, want)
		checkVersions(t, "ReadStream("+stream+")", got, seq(1, uint64(len(want))))
		for k := 1; k < len(got); k++ {
			if got[k].Position <= got[k-1].Position {
				t.Fatalf("%s: version %d at position %d follows version %d at position %d", stream, got[k].Version, got[k].Position, got[k-1].Version, got[k-1].Position)
			}
		}
	}
}

func testIdempotency(t *testing.T, s suite) {
	st := s.store(t)
	first := mustAppend(t, st, "room:x", events.NoStream, []events.Event{
		ev("x-1", "Posted", `{"text":"one"}`),
		ev("x-2", "Posted", `{"text":"two"}`),
	})
	mustAppend(t, st, "room:y", events.NoStream, batch("y", 1))
	later := mustAppend(t, st, "room:x", events.Exactly(2), batch("x3", 1))

	retries := []struct {
		name     string
		expected events.ExpectedVersion
		evs      []events.Event
		want     []events.Event
	}{
		{"same batch, the original (now stale) expected version", events.NoStream,
			[]events.Event{ev("x-1", "Posted", `{"text":"one"}`), ev("x-2", "Posted", `{"text":"two"}`)}, first.Events},
		{"same batch, AnyVersion", events.AnyVersion,
			[]events.Event{ev("x-1", "Posted", `{"text":"one"}`), ev("x-2", "Posted", `{"text":"two"}`)}, first.Events},
		{"same batch, the current version", events.Exactly(3),
			[]events.Event{ev("x-1", "Posted", `{"text":"one"}`), ev("x-2", "Posted", `{"text":"two"}`)}, first.Events},
		{"same batch, a future version", events.Exactly(9),
			[]events.Event{ev("x-1", "Posted", `{"text":"one"}`), ev("x-2", "Posted", `{"text":"two"}`)}, first.Events},
		{"same ids with other content returns the originals", events.NoStream,
			[]events.Event{ev("x-1", "Changed", `{"text":"other"}`), ev("x-2", "Changed", "")}, first.Events},
		{"a subset of a stored batch", events.NoStream,
			[]events.Event{ev("x-2", "Posted", `{"text":"two"}`)}, first.Events[1:]},
		{"ids of two stored batches", events.Exactly(1),
			[]events.Event{ev("x-2", "Posted", ""), ev("x3-1", "Tested", "")}, []events.Event{first.Events[1], later.Events[0]}},
	}
	for _, rc := range retries {
		before := capture(t, st)
		res, err := st.Append(t.Context(), "room:x", rc.expected, rc.evs)
		if err != nil {
			t.Fatalf("retry, %s: want success with Duplicate, got %v", rc.name, err)
		}
		if !res.Duplicate {
			t.Fatalf("retry, %s: want Duplicate true, got false with %s", rc.name, summary(res.Events))
		}
		checkEvents(t, "retry, "+rc.name+": the result", res.Events, rc.want)
		checkUnchanged(t, "retry, "+rc.name, st, before)
	}

	failures := []struct {
		name   string
		stream string
		evs    []events.Event
	}{
		{"one stored id and one new", "room:x", []events.Event{ev("x-1", "Posted", ""), ev("x-new", "Posted", "")}},
		{"one new id and one stored", "room:x", []events.Event{ev("x-new", "Posted", ""), ev("x-2", "Posted", "")}},
		{"ids stored on another stream", "room:z", []events.Event{ev("x-1", "Posted", ""), ev("x-2", "Posted", "")}},
		{"one id stored on another stream", "room:x", []events.Event{ev("y-1", "Tested", "")}},
		{"ids of two streams", "room:x", []events.Event{ev("x-1", "Posted", ""), ev("y-1", "Tested", "")}},
	}
	for _, fc := range failures {
		before := capture(t, st)
		for _, exp := range []events.ExpectedVersion{events.AnyVersion, events.Exactly(streamVersion(t, st, fc.stream))} {
			_, err := st.Append(t.Context(), fc.stream, exp, fc.evs)
			if !errors.Is(err, events.ErrDuplicateID) {
				t.Fatalf("%s (expected %s): want ErrDuplicateID, got %v", fc.name, exp, err)
			}
			checkUnchanged(t, fc.name, st, before)
		}
	}

	// The new id of the rejected partial batch was not stored: it can
	// still be appended.
	res := mustAppend(t, st, "room:x", events.Exactly(3), []events.Event{ev("x-new", "Posted", "")})
	if res.Version() != 4 || res.Position() != 5 {
		t.Fatalf("appending x-new after the rejected batches: want version 4 position 5, got %d and %d", res.Version(), res.Position())
	}
}

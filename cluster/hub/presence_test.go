package hub

import (
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b6368a97/engine/actors"
)

// localCalls records LocalMembers calls as "stream:a,b" on a channel and
// fails the test when two calls for one stream overlap.
type localCalls struct {
	t        *testing.T
	calls    chan string
	inflight map[string]*atomic.Int32
	gate     chan struct{} // when set, each call waits for it
}

func newLocalCalls(t *testing.T, streams ...string) *localCalls {
	l := &localCalls{t: t, calls: make(chan string, 64), inflight: make(map[string]*atomic.Int32)}
	for _, s := range streams {
		l.inflight[s] = new(atomic.Int32)
	}
	return l
}

func (l *localCalls) LocalMembers(stream string, members []string) {
	n := l.inflight[stream]
	if n.Add(1) > 1 {
		l.t.Errorf("overlapping LocalMembers calls for %s", stream)
	}
	defer n.Add(-1)
	if !slices.IsSorted(members) {
		l.t.Errorf("LocalMembers(%s, %q): not sorted", stream, members)
	}
	l.calls <- stream + ":" + strings.Join(members, ",")
	if l.gate != nil {
		<-l.gate
	}
}

// next returns the next call.
func (l *localCalls) next(t *testing.T) string {
	t.Helper()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	select {
	case c := <-l.calls:
		return c
	case <-timer.C:
		t.Fatal("timed out waiting for a LocalMembers call")
		return ""
	}
}

func (l *localCalls) expect(t *testing.T, want string) {
	t.Helper()
	if got := l.next(t); got != want {
		t.Fatalf("LocalMembers %q, want %q", got, want)
	}
}

func isRoom(stream string) bool { return strings.HasPrefix(stream, "room:") }

// lastPresence is the last presence list a sink got.
func lastPresence(s *testSink) string {
	ps := s.presence()
	if len(ps) == 0 {
		return "(none)"
	}
	return strings.Join(ps[len(ps)-1], ",")
}

func presenceCount(s *testSink) int { return len(s.presence()) }

func TestPresence(t *testing.T) {
	store := newStore(t)
	const room = "room:1"
	lc := newLocalCalls(t, room)
	h := startHub(t, store, Config{HasPresence: isRoom, LocalMembers: lc.LocalMembers})

	check := func(what string, s *testSink, wantCount int, wantLast string) {
		t.Helper()
		if n, last := presenceCount(s), lastPresence(s); n != wantCount || last != wantLast {
			t.Fatalf("%s: %d presence deliveries, last %q; want %d, last %q", what, n, last, wantCount, wantLast)
		}
	}

	a := newSink()
	subscribe(t, h, room, nil, "ann", a)
	check("ann joins: ann", a, 1, "ann")
	lc.expect(t, room+":ann")

	b := newSink()
	bSub, _ := subscribe(t, h, room, nil, "bob", b)
	check("bob joins: bob", b, 1, "ann,bob")
	check("bob joins: ann", a, 2, "ann,bob")
	lc.expect(t, room+":ann,bob")

	h.SetMembers(room, []string{"cid", "bob", "ann"})
	check("owner adds cid: ann", a, 3, "ann,bob,cid")
	check("owner adds cid: bob", b, 2, "ann,bob,cid")
	h.SetMembers(room, []string{"bob", "cid", "ann", "cid"})
	check("the same set again: ann", a, 3, "ann,bob,cid")

	c := newSink() // no member: sees, is not seen
	subscribe(t, h, room, nil, "", c)
	check("observer", c, 1, "ann,bob,cid")
	d := newSink() // ann's second connection
	d.limit = 2
	subscribe(t, h, room, nil, "ann", d)
	check("ann again", d, 1, "ann,bob,cid")
	check("ann again: ann's first", a, 3, "ann,bob,cid")

	if got := h.PresenceStreams(); len(got) != 1 || strings.Join(got[room], ",") != "ann,bob" {
		t.Fatalf("PresenceStreams() = %v", got)
	}

	// bob leaves: the local set shrinks; the owner's set still has him.
	bSub.Cancel()
	lc.expect(t, room+":ann")
	check("bob left locally: ann", a, 3, "ann,bob,cid")
	h.SetMembers(room, []string{"ann", "cid"})
	check("owner drops bob: ann", a, 4, "ann,cid")
	check("owner drops bob: observer", c, 2, "ann,cid")
	check("owner drops bob: ann again", d, 2, "ann,cid")
	check("bob is gone", b, 2, "ann,bob,cid")

	// d is full: the next change overflows it; ann still has a.
	h.SetMembers(room, []string{"ann", "cid", "eve"})
	if n := d.overflowCount(); n != 1 {
		t.Fatalf("%d overflows, want 1", n)
	}
	check("eve: ann", a, 5, "ann,cid,eve")
	if got := h.PresenceStreams(); strings.Join(got[room], ",") != "ann" {
		t.Fatalf("PresenceStreams() = %v", got)
	}

	// ann's last subscription overflows: she leaves.
	a.mu.Lock()
	a.limit = len(a.got)
	a.mu.Unlock()
	h.SetMembers(room, []string{"cid"})
	if n := a.overflowCount(); n != 1 {
		t.Fatalf("%d overflows, want 1", n)
	}
	lc.expect(t, room+":")
	check("cid alone: observer", c, 5, "cid") // ann,cid first: she overflows on it
	// The observer still watches: the stream is reported with no member.
	if got := h.PresenceStreams(); len(got) != 1 || got[room] == nil || len(got[room]) != 0 {
		t.Fatalf("PresenceStreams() = %v, want the room with no member", got)
	}
	if m, watching := h.Local(room); len(m) != 0 || !watching {
		t.Fatalf("Local(room) = %v, %v; want none, watching", m, watching)
	}
	if len(lc.calls) != 0 {
		t.Fatalf("unexpected LocalMembers call %q", <-lc.calls)
	}
}

// While a LocalMembers call runs, changes pile up into one next call with
// the newest set; other streams are not held up.
func TestLocalMembersCoalesce(t *testing.T) {
	store := newStore(t)
	lc := newLocalCalls(t, "room:a", "room:b")
	lc.gate = make(chan struct{})
	h := startHub(t, store, Config{HasPresence: isRoom, LocalMembers: lc.LocalMembers})

	x, _ := subscribe(t, h, "room:a", nil, "x", newSink())
	lc.expect(t, "room:a:x") // and it blocks in the gate
	y, _ := subscribe(t, h, "room:a", nil, "y", newSink())
	subscribe(t, h, "room:a", nil, "z", newSink())
	x.Cancel()
	y.Cancel()
	subscribe(t, h, "room:b", nil, "w", newSink())
	lc.expect(t, "room:b:w")
	lc.gate <- struct{}{} // room:a's first call
	lc.gate <- struct{}{} // room:b's
	lc.expect(t, "room:a:z")
	close(lc.gate)
}

// A subscription joins presence once it has caught up, and is told who
// is there after the stored events.
func TestPresenceAfterCatchUp(t *testing.T) {
	store := newStore(t)
	const room = "room:late"
	lc := newLocalCalls(t, room)
	h := startHub(t, store, Config{HasPresence: isRoom, LocalMembers: lc.LocalMembers})
	appendN(t, store, room, 50)
	sink := newSink()
	sink.gate = make(chan struct{})
	subscribe(t, h, room, ptr(0), "late", sink)
	sink.await(t, "the reader to wait", func(s *testSink) bool { return s.waiting == 1 })
	if got := h.PresenceStreams(); len(got) != 0 {
		t.Fatalf("joined during catch-up: %v", got)
	}
	close(sink.gate)
	lc.expect(t, room+":late")
	sink.await(t, "presence", func(s *testSink) bool { return len(s.presenceLocked()) == 1 })
	sink.mu.Lock()
	first := slices.IndexFunc(sink.got, func(d actors.Delivery) bool { return d.Presence })
	n := len(sink.got)
	sink.mu.Unlock()
	if first != 50 || n != 51 {
		t.Fatalf("presence delivered at %d of %d, want after the 50 events", first, n)
	}
	if got := lastPresence(sink); got != "late" {
		t.Fatalf("presence %q, want late", got)
	}
}

func TestNoPresenceForOtherKinds(t *testing.T) {
	store := newStore(t)
	lc := newLocalCalls(t)
	h := startHub(t, store, Config{HasPresence: isRoom, LocalMembers: lc.LocalMembers})
	sink := newSink()
	subscribe(t, h, "chat:p", nil, "ann", sink)
	h.SetMembers("chat:p", []string{"bob"})
	h.SetMembers("room:nobody", []string{"bob"})
	appendN(t, store, "chat:p", 1)
	sink.awaitVersion(t, 1)
	if n := presenceCount(sink); n != 0 {
		t.Fatalf("%d presence deliveries on a stream without presence", n)
	}
	if got := h.PresenceStreams(); len(got) != 0 {
		t.Fatalf("PresenceStreams() = %v", got)
	}
	if len(lc.calls) != 0 {
		t.Fatalf("LocalMembers called: %q", <-lc.calls)
	}
}

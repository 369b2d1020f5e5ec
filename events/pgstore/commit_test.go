package pgstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/b6368a97/engine/events"
)

func req(ctx context.Context, stream string, expected events.ExpectedVersion, ids ...string) *appendReq {
	r := &appendReq{ctx: ctx, stream: stream, expected: expected, reply: make(chan appendReply, 1)}
	for _, id := range ids {
		r.evs = append(r.evs, events.Event{ID: id, Type: "T", Data: []byte(`{}`)})
	}
	return r
}

// TestBatchMixed commits one batch holding appends that succeed, fail
// their checks and repeat each other: each gets its own answer and the
// failures do not fail the others.
func TestBatchMixed(t *testing.T) {
	url := testURL(t)
	schema := randomSchema()
	dropSchema(t, url, schema)
	s := openSchema(t, url, schema)
	t.Cleanup(func() { _ = s.Close() })
	ctx := t.Context()
	if _, err := s.Append(ctx, "room:y", events.NoStream, []events.Event{{ID: "y1", Type: "T"}, {ID: "y2", Type: "T"}}); err != nil {
		t.Fatal(err)
	}
	batch := []*appendReq{
		req(ctx, "room:x", events.NoStream, "x1"),         // 0: ok, version 1
		req(ctx, "room:y", events.Exactly(5), "y3"),       // 1: wrong version, current 2
		req(ctx, "room:x", events.Exactly(1), "x2"),       // 2: ok, sees 0's version
		req(ctx, "room:x", events.Exactly(9), "x1"),       // 3: duplicate of 0, whatever the version
		req(ctx, "room:z", events.AnyVersion, "x2"),       // 4: id of 2 in another stream
		req(ctx, "room:y", events.AnyVersion, "y2", "n"),  // 5: some ids stored
		req(ctx, "room:y", events.Exactly(2), "y1", "y2"), // 6: duplicate of the first append
		req(ctx, "room:x", events.NoStream, "x3"),         // 7: wrong version, current 2 after 0 and 2
	}
	s.commitBatch(batch, false)
	got := make([]appendReply, len(batch))
	for i, r := range batch {
		got[i] = <-r.reply
	}
	for _, i := range []int{0, 2} {
		if got[i].err != nil || got[i].res.Duplicate {
			t.Fatalf("append %d: %+v", i, got[i])
		}
	}
	if got[0].res.Version() != 1 || got[2].res.Version() != 2 || got[2].res.Position() != got[0].res.Position()+1 {
		t.Fatalf("versions/positions: %+v, %+v", got[0].res.Events, got[2].res.Events)
	}
	wantWEV := func(i int, cur uint64) {
		t.Helper()
		var wev *events.WrongExpectedVersionError
		if !errors.As(got[i].err, &wev) || wev.Current != cur {
			t.Errorf("append %d: %v, want wrong expected version with current %d", i, got[i].err, cur)
		}
	}
	wantWEV(1, 2)
	wantWEV(7, 2)
	if !got[3].res.Duplicate || got[3].err != nil || got[3].res.Events[0].Position != got[0].res.Position() {
		t.Errorf("append 3: %+v, want a duplicate of append 0", got[3])
	}
	if !got[6].res.Duplicate || got[6].err != nil || got[6].res.Version() != 2 {
		t.Errorf("append 6: %+v, want a duplicate of the first append", got[6])
	}
	for _, i := range []int{4, 5} {
		if !errors.Is(got[i].err, events.ErrDuplicateID) {
			t.Errorf("append %d: %v, want ErrDuplicateID", i, got[i].err)
		}
	}
	all, err := s.ReadAll(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i, e := range all {
		if e.Position != uint64(i+1) {
			t.Fatalf("event %d at position %d", i, e.Position)
		}
		ids = append(ids, e.ID)
	}
	if fmt.Sprint(ids) != "[y1 y2 x1 x2]" {
		t.Fatalf("stored %v", ids)
	}
	if h, err := s.Head(ctx); err != nil || h != 4 {
		t.Fatalf("head %d, %v", h, err)
	}
}

// TestBatchFailureRetriesAlone: when the batch's transaction fails (here a
// row at a position the head does not cover, which no writer taking
// log_head would leave), each append is retried on its own, so those that
// can still commit do.
func TestBatchFailureRetriesAlone(t *testing.T) {
	url := testURL(t)
	schema := randomSchema()
	dropSchema(t, url, schema)
	s := openSchema(t, url, schema)
	t.Cleanup(func() { _ = s.Close() })
	ctx := t.Context()
	if _, err := s.pool.Exec(ctx, `INSERT INTO events (position, stream, version, id, type, time_ms, data) VALUES (2, 'room:q', 1, 'q1', 'T', 0, '')`); err != nil {
		t.Fatal(err)
	}
	batch := []*appendReq{req(ctx, "room:a", events.NoStream, "a1"), req(ctx, "room:b", events.NoStream, "b1")}
	s.commitBatch(batch, false)
	a, b := <-batch[0].reply, <-batch[1].reply
	if a.err != nil || a.res.Position() != 1 {
		t.Fatalf("room:a: %+v, want committed alone at position 1", a)
	}
	var wev *events.WrongExpectedVersionError
	if b.err == nil || errors.As(b.err, &wev) || errors.Is(b.err, events.ErrDuplicateID) {
		t.Fatalf("room:b: %+v, want the transaction's error", b)
	}
}

// TestConcurrentAppendsOneStream: many goroutines append to one stream at
// once (so that batches hold several appends to it): every append lands,
// versions and positions are gap-free and agree with the results.
func TestConcurrentAppendsOneStream(t *testing.T) {
	url := testURL(t)
	schema := randomSchema()
	dropSchema(t, url, schema)
	s := openSchema(t, url, schema)
	t.Cleanup(func() { _ = s.Close() })
	const writers, each = 16, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				res, err := s.Append(t.Context(), "room:busy", events.AnyVersion, []events.Event{{ID: fmt.Sprintf("w%d-%d", w, i), Type: "T"}})
				if err == nil && res.Events[0].Version != res.Events[0].Position {
					err = fmt.Errorf("version %d at position %d", res.Events[0].Version, res.Events[0].Position)
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	evs, err := s.ReadStream(t.Context(), "room:busy", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != writers*each {
		t.Fatalf("%d events, want %d", len(evs), writers*each)
	}
	for i, e := range evs {
		if e.Version != uint64(i+1) || e.Position != uint64(i+1) {
			t.Fatalf("event %d: version %d position %d", i, e.Version, e.Position)
		}
	}
}

// TestTakeBatchBounds: a batch stops before the request that would take it
// over maxBatchEvents, but always holds at least one; requests whose
// context is done are answered and left out.
func TestTakeBatchBounds(t *testing.T) {
	s := &Store{wake: make(chan struct{}, 1)}
	big := func() *appendReq {
		r := req(context.Background(), "room:a", events.AnyVersion)
		r.evs = make([]events.Event, maxBatchEvents*2/3)
		return r
	}
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	gone := req(cctx, "room:gone", events.AnyVersion, "g")
	s.enqueue(big())
	s.enqueue(gone)
	s.enqueue(big())
	s.enqueue(big())
	if b := s.takeBatch(); len(b) != 1 {
		t.Fatalf("first batch: %d requests, want 1", len(b))
	}
	if rep := <-gone.reply; !errors.Is(rep.err, context.Canceled) {
		t.Fatalf("cancelled request: %v", rep.err)
	}
	if b := s.takeBatch(); len(b) != 1 {
		t.Fatalf("second batch: %d requests, want 1", len(b))
	}
	if b := s.takeBatch(); len(b) != 1 {
		t.Fatalf("third batch: %d requests, want 1", len(b))
	}
	if b := s.takeBatch(); len(b) != 0 {
		t.Fatalf("fourth batch: %d requests, want 0", len(b))
	}
}

// waitFor polls cond until it holds, failing the test after a minute.
func waitFor(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestBatchGrowsWhileLocked: while another writer (another node) holds
// log_head, the committer waits for it with the batch it had, and commits
// the appends queued during the wait in the same transaction.
func TestBatchGrowsWhileLocked(t *testing.T) {
	url := testURL(t)
	schema := randomSchema()
	dropSchema(t, url, schema)
	s := openSchema(t, url, schema)
	t.Cleanup(func() { _ = s.Close() })
	ctx := t.Context()

	holder, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(context.Background())
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var xid int64
	if err := tx.QueryRow(ctx, `SELECT last FROM `+pgx.Identifier{schema, "log_head"}.Sanitize()+` FOR UPDATE`).Scan(new(int64)); err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(ctx, `SELECT txid_current() % 4294967296`).Scan(&xid); err != nil {
		t.Fatal(err)
	}

	const more = 5
	results := make(chan error, 1+more)
	appendOne := func(id string) {
		_, err := s.Append(ctx, "room:"+id, events.NoStream, []events.Event{{ID: id, Type: "T"}})
		results <- err
	}
	go appendOne("first")
	waitFor(t, "the committer to wait for log_head", func() (bool, error) {
		var n int
		err := holder.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'transactionid' AND transactionid::text::bigint = $1`, xid).Scan(&n)
		return n > 0, err
	})
	for i := range more {
		go appendOne(fmt.Sprintf("m%d", i))
	}
	waitFor(t, "the appends to queue", func() (bool, error) {
		s.qmu.Lock()
		defer s.qmu.Unlock()
		return len(s.queue) == more, nil
	})
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for range 1 + more {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	var n, txids int
	if err := s.pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT txid) FROM events`).Scan(&n, &txids); err != nil {
		t.Fatal(err)
	}
	if n != 1+more || txids != 1 {
		t.Fatalf("%d events in %d transactions, want %d in 1", n, txids, 1+more)
	}
}

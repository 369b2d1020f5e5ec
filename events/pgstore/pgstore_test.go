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
	"github.com/b6368a97/engine/events/pgstore/pgtest"
	"github.com/b6368a97/engine/events/storetest"
)

func testURL(tb testing.TB) string { tb.Helper(); return pgtest.URL(tb) }

func randomSchema() string { return pgtest.RandomSchema() }

// dropSchema drops schema at the end of tb (after the stores opened on it
// were closed: cleanups run last-registered first).
func dropSchema(tb testing.TB, url, schema string) { pgtest.Drop(tb, url, schema) }

func openSchema(tb testing.TB, url, schema string) *Store {
	tb.Helper()
	s, err := Open(context.Background(), Config{URL: url, Schema: schema, MaxConns: 4})
	if err != nil {
		tb.Fatalf("open schema %s: %v", schema, err)
	}
	return s
}

func TestConformance(t *testing.T) {
	url := testURL(t)
	storetest.Run(t, func(t *testing.T) events.Store {
		schema := randomSchema()
		dropSchema(t, url, schema)
		return openSchema(t, url, schema)
	})
}

func TestConformanceDurable(t *testing.T) {
	url := testURL(t)
	var mu sync.Mutex
	schemas := map[string]string{} // dir -> schema
	storetest.RunDurable(t, func(t *testing.T, dir string) events.Store {
		mu.Lock()
		schema, ok := schemas[dir]
		if !ok {
			schema = randomSchema()
			schemas[dir] = schema
		}
		mu.Unlock()
		dropSchema(t, url, schema)
		return openSchema(t, url, schema)
	})
}

// TestConcurrentOpen starts several stores on one new schema at once: the
// migrations run once and every store sees the same epoch.
func TestConcurrentOpen(t *testing.T) {
	url := testURL(t)
	schema := randomSchema()
	dropSchema(t, url, schema)
	const n = 6
	stores := make([]*Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			stores[i], errs[i] = Open(t.Context(), Config{URL: url, Schema: schema, MaxConns: 2})
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("open %d: %v", i, errs[i])
		}
		t.Cleanup(func() { _ = stores[i].Close() })
	}
	for i := range n {
		if stores[i].Epoch() != stores[0].Epoch() {
			t.Fatalf("store %d has epoch %s, store 0 %s", i, stores[i].Epoch(), stores[0].Epoch())
		}
	}
	// An append through one store is followed by another.
	res, err := stores[0].Append(t.Context(), "room:x", events.NoStream, []events.Event{{ID: "x1", Type: "T"}})
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	stop := fmt.Errorf("stop")
	err = stores[n-1].Follow(ctx, 0, func(e events.Event) error {
		if e.ID != "x1" || e.Position != res.Position() {
			t.Errorf("followed %+v", e)
		}
		return stop
	})
	if err != stop {
		t.Fatalf("follow on another store: %v", err)
	}
	var count int
	if err := stores[0].pool.QueryRow(t.Context(), `SELECT count(*) FROM schema_migrations`).Scan(&count); err != nil || count != 1 {
		t.Fatalf("schema_migrations: want 1 row, got %d, %v", count, err)
	}
}

// TestFollowOtherNode: a Follow on one store sees appends made through
// another store on the same schema live (by notification or poll).
func TestFollowOtherNode(t *testing.T) {
	url := testURL(t)
	schema := randomSchema()
	dropSchema(t, url, schema)
	a := openSchema(t, url, schema)
	t.Cleanup(func() { _ = a.Close() })
	b := openSchema(t, url, schema)
	t.Cleanup(func() { _ = b.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	const total = 50
	done := make(chan error, 1)
	go func() {
		var last uint64
		done <- b.Follow(ctx, 0, func(e events.Event) error {
			if e.Position != last+1 {
				return fmt.Errorf("position %d after %d", e.Position, last)
			}
			last = e.Position
			if last == total {
				return errStop
			}
			return nil
		})
	}()
	for i := range total {
		if _, err := a.Append(ctx, "room:o", events.AnyVersion, []events.Event{{ID: fmt.Sprintf("o%d", i), Type: "T"}}); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	if err := <-done; err != errStop {
		t.Fatalf("follow: %v", err)
	}
}

var errStop = fmt.Errorf("stop")

// TestMustExist: with MustExist, a schema without a store is refused with
// ErrNoStore and nothing is created; once a store is there it opens.
func TestMustExist(t *testing.T) {
	url := testURL(t)
	schema := randomSchema()
	dropSchema(t, url, schema)
	_, err := Open(t.Context(), Config{URL: url, Schema: schema, MustExist: true})
	if !errors.Is(err, ErrNoStore) {
		t.Fatalf("open a missing schema: %v, want ErrNoStore", err)
	}
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	var n int
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_namespace WHERE nspname = $1`, schema).Scan(&n); err != nil || n != 0 {
		t.Fatalf("the refused open left %d schemas named %s (%v)", n, schema, err)
	}
	// An empty schema (someone else's, or a mistyped one) is no store either.
	if _, err := conn.Exec(t.Context(), `CREATE SCHEMA `+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(t.Context(), Config{URL: url, Schema: schema, MustExist: true}); !errors.Is(err, ErrNoStore) {
		t.Fatalf("open an empty schema: %v, want ErrNoStore", err)
	}
	s := openSchema(t, url, schema)
	epoch := s.Epoch()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(t.Context(), Config{URL: url, Schema: schema, MustExist: true})
	if err != nil {
		t.Fatalf("open an existing store: %v", err)
	}
	defer s.Close()
	if s.Epoch() != epoch {
		t.Fatalf("epoch %s, want %s", s.Epoch(), epoch)
	}
}

// TestFrozenWriterReleasesTheLogHead: a node frozen in the middle of an
// append (here: a session of the store that took the log head's lock and
// then does nothing, as a SIGSTOPped process would) does not stall the
// other nodes' appends for longer than IdleInTransaction: PostgreSQL ends
// the idle session and its lock goes with it.
func TestFrozenWriterReleasesTheLogHead(t *testing.T) {
	url := testURL(t)
	schema := randomSchema()
	dropSchema(t, url, schema)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	frozen, err := Open(ctx, Config{URL: url, Schema: schema, MaxConns: 2, IdleInTransaction: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = frozen.Close() })
	other := openSchema(t, url, schema)
	t.Cleanup(func() { _ = other.Close() })

	conn, err := frozen.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT last FROM log_head FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	// The frozen session now holds the lock and sends nothing more.
	ar, err := other.Append(ctx, "room:a", events.AnyVersion, []events.Event{{ID: "e1", Type: "Posted", Data: []byte(`{}`)}})
	if err != nil {
		t.Fatalf("an append behind a frozen writer: %v (the idle session kept its lock)", err)
	}
	if ar.Version() != 1 {
		t.Fatalf("version %d", ar.Version())
	}
	if err := tx.Commit(ctx); err == nil {
		t.Fatal("the frozen session's transaction survived its idle timeout")
	}
}

// TestSessionSettings: every session of the store plans each statement
// for its arguments (a generic plan made on a new, empty store would scan
// the whole log on every append once it has grown: measured, appends fell
// from 2,200/s to 960/s within 100,000 events) and bounds idle
// transactions (TestFrozenWriterReleasesTheLogHead).
func TestSessionSettings(t *testing.T) {
	url := testURL(t)
	schema := randomSchema()
	dropSchema(t, url, schema)
	s := openSchema(t, url, schema)
	t.Cleanup(func() { _ = s.Close() })
	conn, err := s.pool.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for setting, want := range map[string]string{"plan_cache_mode": "force_custom_plan", "idle_in_transaction_session_timeout": "2s"} {
		var got string
		if err := conn.QueryRow(t.Context(), "SHOW "+setting).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s = %q, want %q", setting, got, want)
		}
	}
}

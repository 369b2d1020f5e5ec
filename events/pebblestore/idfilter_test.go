package pebblestore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/b6368a97/engine/events"
)

func TestIDFilter(t *testing.T) {
	tests := []struct {
		name        string
		add         int
		maxIDs      int64
		wantRetired bool
	}{
		{"one part", 1000, 1 << 20, false},
		{"several parts", 4 * bloomFirstCapacity, 1 << 24, false},
		{"over the cap", 4 * bloomFirstCapacity, 2 * bloomFirstCapacity, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newIDFilter(tc.maxIDs)
			for i := range tc.add {
				f.add("id-" + strconv.Itoa(i))
			}
			f.ready.Store(!f.retired.Load()) // what a finished scan does
			if f.retired.Load() != tc.wantRetired {
				t.Fatalf("retired = %v, want %v", f.retired.Load(), tc.wantRetired)
			}
			for i := range tc.add {
				if id := "id-" + strconv.Itoa(i); f.absent(id) {
					t.Fatalf("false negative for %s", id)
				}
			}
			falsePos := 0
			const probes = 20_000
			for i := range probes {
				if !f.absent("other-" + strconv.Itoa(i)) {
					falsePos++
				}
			}
			if tc.wantRetired {
				if falsePos != probes {
					t.Fatalf("a retired filter claimed %d ids absent", probes-falsePos)
				}
				return
			}
			if rate := float64(falsePos) / probes; rate > 0.02 {
				t.Fatalf("false positive rate %.3f, want under 0.02", rate)
			}
		})
	}
}

func TestIDFilterNotReadyClaimsNothing(t *testing.T) {
	f := newIDFilter(1 << 20)
	if f.absent("anything") {
		t.Fatal("a filter whose scan has not finished claimed an id absent")
	}
}

// TestIDFilterConcurrent adds from two goroutines (the writer and the
// scan) while a third tests, across part growth; run with -race.
func TestIDFilterConcurrent(t *testing.T) {
	f := newIDFilter(1 << 24)
	f.ready.Store(true)
	const per = bloomFirstCapacity
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				f.add("g" + strconv.Itoa(g) + "-" + strconv.Itoa(i))
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range per {
			f.absent("x-" + strconv.Itoa(i))
		}
	}()
	wg.Wait()
	for g := range 2 {
		for i := range per {
			if id := "g" + strconv.Itoa(g) + "-" + strconv.Itoa(i); f.absent(id) {
				t.Fatalf("false negative for %s", id)
			}
		}
	}
}

// TestIDFilterScanOnReopen reopens a store and waits for the scan of the
// id index: once the filter is ready, retries are still recognised and new
// ids are appended.
func TestIDFilterScanOnReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	s, err := Open(dir, testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	var first events.AppendResult
	for i := range 50 {
		res, err := s.Append(ctx, fmt.Sprintf("room:r%d", i%5), events.AnyVersion, testEvents(fmt.Sprintf("e%d", i), 4))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = res
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dir, testConfig(t))
	select {
	case <-s.scanDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the id scan did not finish")
	}
	if !s.ids.ready.Load() {
		t.Fatal("the id filter is not ready after its scan")
	}
	for i := range 50 {
		for j := range 4 {
			if id := fmt.Sprintf("e%d-%d", i, j); s.ids.absent(id) {
				t.Fatalf("stored id %s is absent from the filter after the scan", id)
			}
		}
	}
	res, err := s.Append(ctx, "room:r0", events.NoStream, testEvents("e0", 4))
	if err != nil || !res.Duplicate || res.Events[0].Position != first.Events[0].Position {
		t.Fatalf("retry after reopen: %+v, %v; want the original events", res, err)
	}
	if _, err := s.Append(ctx, "room:r9", events.NoStream, testEvents("e1", 1)); !errors.Is(err, events.ErrDuplicateID) {
		t.Fatalf("reused id on another stream after reopen: want ErrDuplicateID, got %v", err)
	}
	if _, err := s.Append(context.Background(), "room:r9", events.NoStream, testEvents("fresh", 2)); err != nil {
		t.Fatalf("new ids after reopen: %v", err)
	}
}

// TestIDFilterTestAndAdd: testAndAdd answers what absent would have
// answered before the add, across the growth of parts.
func TestIDFilterTestAndAdd(t *testing.T) {
	f := newIDFilter(1 << 24)
	if f.testAndAdd(hashID("early")) {
		t.Fatal("a filter whose scan has not finished claimed an id absent")
	}
	f.ready.Store(true)
	if f.testAndAdd(hashID("early")) {
		t.Fatal("an id added before the filter was ready was claimed absent")
	}
	const n = 3 * bloomFirstCapacity // three parts
	falseAbsent, falsePresent := 0, 0
	for i := range n {
		h := hashID("id-" + strconv.Itoa(i))
		if !f.testAndAdd(h) {
			falsePresent++
		}
		if f.testAndAdd(h) {
			falseAbsent++
		}
	}
	if falseAbsent > 0 {
		t.Fatalf("%d ids claimed absent right after they were added", falseAbsent)
	}
	if rate := float64(falsePresent) / n; rate > 0.02 {
		t.Fatalf("%.3f of new ids were taken for stored ones, want under 0.02", rate)
	}
	if parts := len(*f.parts.Load()); parts < 2 {
		t.Fatalf("%d parts after %d ids, want the filter to have grown", parts, n)
	}
	for i := range n {
		if id := "id-" + strconv.Itoa(i); f.absent(id) {
			t.Fatalf("false negative for %s", id)
		}
	}
}

package memstore

import (
	"fmt"
	"testing"

	"github.com/b6368a97/engine/events"
)

// TestReadAcrossChunks reads ranges that start, end and cross at chunk
// boundaries of the log, which the conformance suite is too small to reach.
func TestReadAcrossChunks(t *testing.T) {
	st := New()
	t.Cleanup(func() { _ = st.Close() })
	const total = 2*chunkSize + 10
	for done := 0; done < total; {
		n := min(1000, total-done)
		evs := make([]events.Event, n)
		for i := range evs {
			evs[i] = events.Event{ID: fmt.Sprint("e-", done+i+1), Type: "T"}
		}
		// Two streams, so stream versions and positions differ.
		stream := "room:a"
		if done%2000 != 0 {
			stream = "room:b"
		}
		if _, err := st.Append(t.Context(), stream, events.AnyVersion, evs); err != nil {
			t.Fatalf("Append: %v", err)
		}
		done += n
	}
	cases := []struct {
		after uint64
		limit int
	}{
		{0, 0}, {chunkSize - 1, 1}, {chunkSize - 1, 2}, {chunkSize, 1}, {chunkSize - 5, 10},
		{1, 2 * chunkSize}, {chunkSize, chunkSize}, {2*chunkSize - 1, 0}, {total - 1, 5}, {total, 0},
	}
	for _, tc := range cases {
		got, err := st.ReadAll(t.Context(), tc.after, tc.limit)
		if err != nil {
			t.Fatalf("ReadAll(%d, %d): %v", tc.after, tc.limit, err)
		}
		want := total - int(tc.after)
		if tc.limit > 0 {
			want = min(want, tc.limit)
		}
		if len(got) != want {
			t.Fatalf("ReadAll(%d, %d): want %d events, got %d", tc.after, tc.limit, want, len(got))
		}
		for i, e := range got {
			if p := tc.after + uint64(i) + 1; e.Position != p || e.ID != fmt.Sprint("e-", p) {
				t.Fatalf("ReadAll(%d, %d)[%d]: want position %d id e-%d, got %d %s", tc.after, tc.limit, i, p, p, e.Position, e.ID)
			}
		}
	}
	var positions []uint64
	for _, stream := range []string{"room:a", "room:b"} {
		evs, err := st.ReadStream(t.Context(), stream, 0, 0)
		if err != nil {
			t.Fatalf("ReadStream(%s): %v", stream, err)
		}
		for i, e := range evs {
			if e.Version != uint64(i+1) || e.Stream != stream || e.ID != fmt.Sprint("e-", e.Position) {
				t.Fatalf("ReadStream(%s)[%d]: got %s/%d@%d id %s", stream, i, e.Stream, e.Version, e.Position, e.ID)
			}
			positions = append(positions, e.Position)
		}
	}
	if len(positions) != total {
		t.Fatalf("the two streams hold %d events, want %d", len(positions), total)
	}
}

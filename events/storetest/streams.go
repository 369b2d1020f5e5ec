package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/b6368a97/engine/events"
)

// listing renders a page of Streams as "stream@version …".
func listing(infos []events.StreamInfo) string {
	s := ""
	for i, in := range infos {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%s@%d", in.Stream, in.Version)
	}
	return s
}

func testStreams(t *testing.T, s suite) {
	st := s.store(t)
	ctx := t.Context()
	list := func(t *testing.T, kind, after string, limit int) string {
		t.Helper()
		got, err := st.Streams(ctx, kind, after, limit)
		if err != nil {
			t.Fatalf("Streams(%q, %q, %d): %v", kind, after, limit, err)
		}
		if got == nil {
			t.Fatalf("Streams(%q, %q, %d): want an empty slice, not nil", kind, after, limit)
		}
		return listing(got)
	}
	if got := list(t, "room", "", 0); got != "" {
		t.Fatalf("Streams on an empty store: want none, got %s", got)
	}
	// Ids chosen so that byte order differs from insertion order and from a
	// case-insensitive or natural order: upper case sorts before lower
	// case, "a" before "a-" before "a.b" before "aa"; kinds that share a
	// prefix ("roo", "room", "rooms") stay apart.
	for _, a := range []struct {
		stream string
		n      int
	}{
		{"room:b", 2}, {"room:a.b", 1}, {"room:aa", 3}, {"room:a", 4}, {"room:B", 1},
		{"room:a-", 1}, {"rooms:x", 1}, {"roo:y", 1}, {"game:a", 5}, {"room:z9", 2},
	} {
		mustAppend(t, st, a.stream, events.NoStream, batch(a.stream, a.n))
	}
	mustAppend(t, st, "room:a", events.Exactly(4), batch("room:a+", 2)) // version 6

	all := "room:B@1 room:a@6 room:a-@1 room:a.b@1 room:aa@3 room:b@2 room:z9@2"
	steps := []struct {
		name  string
		kind  string
		after string
		limit int
		want  string
	}{
		{"every room, byte order", "room", "", 0, all},
		{"a negative limit is no limit", "room", "", -1, all},
		{"first page", "room", "", 3, "room:B@1 room:a@6 room:a-@1"},
		{"strictly after the last of a page", "room", "room:a-", 3, "room:a.b@1 room:aa@3 room:b@2"},
		{"last page", "room", "room:b", 3, "room:z9@2"},
		{"after the last stream", "room", "room:z9", 3, ""},
		{"after a stream that does not exist", "room", "room:ab", 0, "room:b@2 room:z9@2"},
		{"after a prefix of a stream", "room", "room:a.", 0, "room:a.b@1 room:aa@3 room:b@2 room:z9@2"},
		{"after below the kind", "room", "game:zzz", 1, "room:B@1"},
		{"after beyond the kind", "room", "rooms:", 0, ""},
		{"another kind", "game", "", 0, "game:a@5"},
		{"a kind that is a prefix of another", "roo", "", 0, "roo:y@1"},
		{"a kind with a longer name", "rooms", "", 0, "rooms:x@1"},
		{"a kind without streams", "order", "", 10, ""},
	}
	for _, sc := range steps {
		if got := list(t, sc.kind, sc.after, sc.limit); got != sc.want {
			t.Errorf("%s: Streams(%q, %q, %d) = %q, want %q", sc.name, sc.kind, sc.after, sc.limit, got, sc.want)
		}
	}

	// Paging through with the last id of each page visits every stream once.
	var paged []events.StreamInfo
	after := ""
	for range 10 {
		page, err := st.Streams(ctx, "room", after, 2)
		if err != nil {
			t.Fatalf("Streams page after %q: %v", after, err)
		}
		paged = append(paged, page...)
		if len(page) < 2 {
			break
		}
		after = page[len(page)-1].Stream
	}
	if got := listing(paged); got != all {
		t.Errorf("paging by 2: got %q, want %q", got, all)
	}

	for _, bad := range []string{"", "Room", "room:", "ro om", "r0", "abcdefghijklmnopqrstuvwxyzabcdefg"} {
		if _, err := st.Streams(ctx, bad, "", 0); !errors.Is(err, events.ErrInvalidStream) {
			t.Errorf("Streams(%q): want ErrInvalidStream, got %v", bad, err)
		}
	}
	if _, err := st.Streams(cancelled(t), "room", "", 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Streams with a cancelled context: want context.Canceled, got %v", err)
	}
	closed := s.store(t)
	if err := closed.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := closed.Streams(ctx, "room", "", 0); !errors.Is(err, events.ErrClosed) {
		t.Errorf("Streams after Close: want ErrClosed, got %v", err)
	}
}

// testReopenListsStreams: a listing survives a reopen (a disk store keeps
// no state for it that a reopen could lose).
func testReopenListsStreams(t *testing.T, d durableSuite) {
	dir := t.TempDir()
	st := d.openAt(t, dir)
	mustAppend(t, st, "room:x", events.NoStream, batch("x", 2))
	mustAppend(t, st, "room:w", events.NoStream, batch("w", 1))
	mustAppend(t, st, "game:w", events.NoStream, batch("gw", 1))
	if err := st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	st = d.openAt(t, dir)
	got, err := st.Streams(t.Context(), "room", "", 0)
	if err != nil {
		t.Fatalf("Streams after reopen: %v", err)
	}
	if l := listing(got); l != "room:w@1 room:x@2" {
		t.Fatalf("Streams after reopen: got %q, want %q", l, "room:w@1 room:x@2")
	}
}

package room_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/b6368a97/engine/actors/room"
	"github.com/b6368a97/engine/events"
)

// BenchmarkPost: what one PostMessage costs the room's actor on a full
// room: Decide, then Evolve of its event (the actor folds every event it
// appends). Run:
//
//	go test -run '^$' -bench Post -benchmem ./actors/room/
func BenchmarkPost(b *testing.B) {
	s := room.Initial("room:lobby")
	for v := 1; v <= room.MaxMessages; v++ {
		var err error
		if s, err = room.Evolve(s, posted(uint64(v), "ann", fmt.Sprint("message ", v))); err != nil {
			b.Fatal(err)
		}
	}
	c := cmd(room.CommandPostMessage, `{"user":"bench","text":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`)
	b.ReportAllocs()
	for b.Loop() {
		evs, err := room.Decide(s, c)
		if err != nil {
			b.Fatal(err)
		}
		ev := evs[0]
		ev.Stream, ev.Version, ev.Time = s.Stream, s.Version+1, t0
		if s, err = room.Evolve(s, ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReplay: folding stored events (an activation's tail, the
// replay command).
func BenchmarkReplay(b *testing.B) {
	evs := make([]events.Event, 1000)
	for i := range evs {
		evs[i] = posted(uint64(i+1), "ann", fmt.Sprint("message ", i))
		evs[i].Data = json.RawMessage(fmt.Sprintf(`{"user":"ann","text":"message %d"}`, i))
	}
	b.ReportAllocs()
	for b.Loop() {
		s := room.Initial("room:lobby")
		for _, e := range evs {
			var err error
			if s, err = room.Evolve(s, e); err != nil {
				b.Fatal(err)
			}
		}
	}
}

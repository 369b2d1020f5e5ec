package actors

import (
	"fmt"

	"github.com/b6368a97/engine/events"
)

// cmdWindow remembers the latest command ids of a stream with the versions
// of the events they appended, so that a repeated command returns its first
// result and appends nothing even after the stream moved on (when Decide on
// the new state could reject it or decide differently).
//
// It is in memory and bounded (the oldest id is forgotten first). An
// activation refills it from the Causation of the events it replays, that
// is those after the latest snapshot. A repeat it does not remember still
// reaches the store with the same derived event ids, which the store
// answers as a duplicate whenever Decide produces the same number of
// events; only a forgotten command that Decide now rejects or decides
// differently is not recognised.
type cmdWindow struct {
	max   int
	m     map[string]cmdRecord
	order []string // ring of ids, oldest at next
	next  int
}

// cmdRecord: the command's events are versions first..last (n of them); a
// no-op has n 0 and last the version the stream was at.
type cmdRecord struct {
	first, last uint64
	n           int
}

func recordOf(evs []events.Event) cmdRecord {
	return cmdRecord{first: evs[0].Version, last: evs[len(evs)-1].Version, n: len(evs)}
}

func (w *cmdWindow) reset() {
	w.m, w.order, w.next = nil, nil, 0
}

func (w *cmdWindow) get(id string) (cmdRecord, bool) {
	rec, ok := w.m[id]
	return rec, ok
}

func (w *cmdWindow) put(id string, rec cmdRecord) {
	if id == "" || w.max <= 0 {
		return
	}
	if w.m == nil {
		w.m = make(map[string]cmdRecord)
	}
	if _, ok := w.m[id]; ok {
		w.m[id] = rec
		return
	}
	if len(w.order) < w.max {
		w.order = append(w.order, id)
	} else {
		delete(w.m, w.order[w.next])
		w.order[w.next] = id
		w.next = (w.next + 1) % w.max
	}
	w.m[id] = rec
}

func (w *cmdWindow) noteEvent(ev events.Event) {
	id := ev.Meta.Causation
	if id == "" {
		return
	}
	if rec, ok := w.m[id]; ok && rec.n > 0 && rec.last+1 == ev.Version {
		rec.last, rec.n = ev.Version, rec.n+1
		w.m[id] = rec
		return
	}
	w.put(id, cmdRecord{first: ev.Version, last: ev.Version, n: 1})
}

// resultOf rebuilds a remembered command's result from the store.
func (a *streamActor) resultOf(rec cmdRecord) (Result, error) {
	res := Result{Stream: a.stream, Version: rec.last}
	if rec.n == 0 {
		return res, nil
	}
	evs, err := a.r.cfg.Store.ReadStream(a.r.ctx, a.stream, rec.first-1, rec.n)
	if err != nil {
		return Result{}, fmt.Errorf("read the result of a repeated command on %s: %w", a.stream, err)
	}
	res.Events = evs
	return res, nil
}

package actors

import (
	"encoding/binary"
	"fmt"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

// cmdWindow remembers the latest command ids of a stream with the versions
// of the events they appended, so that a repeated command returns its first
// result and appends nothing even after the stream moved on (when Decide on
// the new state could reject it or decide differently).
//
// It is bounded (the oldest id is forgotten first) and survives the actor:
// every snapshot carries the window as it is then (snapshot.go), and an
// activation restores it from the latest snapshot, then adds the ids in the
// Causation of the events after it. So the last IdempotencyWindow ids of a
// stream are remembered across passivation, restarts and crashes, with
// their fingerprints, except for those known only from the events after
// the snapshot (rebuilt without a fingerprint) and no-ops after it (which
// leave no event). A snapshot written without a window (before the
// envelope existed) restores none: the ids before it are forgotten.
//
// A repeat the window does not remember still reaches the store with the
// same derived event ids, which the store answers as a duplicate whenever
// Decide produces the same number of events; only a forgotten command that
// Decide now rejects or decides differently is not recognised. An id
// repeated with a different command (type, data or expected version) is
// refused with ErrIdempotencyMismatch while the window remembers the first
// one with its fingerprint; a record rebuilt from stored events has none,
// and is taken as a match.
type cmdWindow struct {
	max   int
	m     map[string]cmdRecord
	order []string // ring of ids, oldest at next
	next  int
	// saved is the encoded window of the snapshot the activation loaded
	// (snapshot.go), not decoded yet: every method decodes it first.
	saved string
}

// cmdRecord: the command's events are versions first..last (n of them); a
// no-op has n 0 and last the version the stream was at. sum is the
// command's fingerprint (see fingerprint), 0 when the record was rebuilt
// from stored events, which do not keep it.
type cmdRecord struct {
	first, last uint64
	n           int
	sum         uint64
}

// fingerprint identifies what a command asks: its type, its data (compacted,
// so that white space does not count) and its expected version. A command
// id repeated with another fingerprint is not a retry of the same command
// (ErrIdempotencyMismatch). Never 0.
//
// It is FNV-64a over the type, a 0 byte, the data compacted (as
// json.Compact writes it; the data as it is when it is not valid JSON)
// and the expected version in big-endian order, computed in place:
// snapshots keep these sums, so they must never change.
func fingerprint(cmd decider.Command, expected events.ExpectedVersion) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(cmd.Type); i++ {
		h = (h ^ uint64(cmd.Type[i])) * fnvPrime
	}
	h *= fnvPrime // ^ 0
	if events.ValidJSON(cmd.Data) {
		// Compacted: white space outside strings skipped.
		inString, escaped := false, false
		for _, c := range cmd.Data {
			switch {
			case inString:
				switch {
				case escaped:
					escaped = false
				case c == '\\':
					escaped = true
				case c == '"':
					inString = false
				}
			case c == ' ' || c == '\t' || c == '\n' || c == '\r':
				continue
			case c == '"':
				inString = true
			}
			h = (h ^ uint64(c)) * fnvPrime
		}
	} else {
		for _, c := range cmd.Data {
			h = (h ^ uint64(c)) * fnvPrime
		}
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(expected))
	for _, c := range v {
		h = (h ^ uint64(c)) * fnvPrime
	}
	return h | 1
}

// FNV-64a (hash/fnv).
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// matches reports whether a remembered command may be the one sum
// describes: the same fingerprint, or one the record does not know.
func (rec cmdRecord) matches(sum uint64) bool { return rec.sum == 0 || rec.sum == sum }

func recordOf(evs []events.Event, sum uint64) cmdRecord {
	return cmdRecord{first: evs[0].Version, last: evs[len(evs)-1].Version, n: len(evs), sum: sum}
}

func (w *cmdWindow) reset() {
	w.m, w.order, w.next, w.saved = nil, nil, 0, ""
}

// loadSaved takes a snapshot's encoded window, checked already: kept as it
// is while the window is empty (the activation's load), decoded into it
// otherwise (a reload: an id the window knows keeps its record).
func (w *cmdWindow) loadSaved(win string) {
	w.decodeSaved()
	if len(w.m) == 0 {
		w.saved = win
		return
	}
	parseWindow(win, w.restore)
}

// decodeSaved decodes the snapshot's window into the window, oldest first.
func (w *cmdWindow) decodeSaved() {
	if w.saved == "" {
		return
	}
	win := w.saved
	w.saved = ""
	if w.m == nil && w.max > 0 {
		// Room for the ids at once: no rehashing.
		n, _ := uvarint(win)
		n = min(n, uint64(w.max))
		w.m = make(map[string]cmdRecord, n)
		w.order = make([]string, 0, n)
	}
	parseWindow(win, w.restore) // checked by decodeSnapshot
}

// undecoded returns the snapshot's encoded window when the window is that
// and nothing more, else "" and false.
func (w *cmdWindow) undecoded() (string, bool) {
	if w.saved == "" || len(w.m) > 0 {
		return "", false
	}
	return w.saved, true
}

func (w *cmdWindow) get(id string) (cmdRecord, bool) {
	w.decodeSaved()
	rec, ok := w.m[id]
	return rec, ok
}

func (w *cmdWindow) put(id string, rec cmdRecord) {
	if id == "" || w.max <= 0 {
		return
	}
	w.decodeSaved()
	if w.m == nil {
		w.m = make(map[string]cmdRecord)
	}
	// One assignment tells a new id from a known one (whose record is
	// replaced in place, keeping its age): every command with an id comes
	// here.
	n := len(w.m)
	w.m[id] = rec
	if len(w.m) == n {
		return
	}
	if len(w.order) < w.max {
		w.order = append(w.order, id)
	} else {
		delete(w.m, w.order[w.next]) // the oldest, not id: id is new
		w.order[w.next] = id
		w.next = (w.next + 1) % w.max
	}
}

// noteEvent remembers the command of a replayed event. An event the window
// knows already (a reload replays the events after the snapshot again)
// changes nothing, so its record keeps its fingerprint.
func (w *cmdWindow) noteEvent(ev events.Event) {
	id := ev.Meta.Causation
	if id == "" {
		return
	}
	w.decodeSaved()
	if rec, ok := w.m[id]; ok && rec.n > 0 {
		switch {
		case rec.first <= ev.Version && ev.Version <= rec.last:
			return
		case rec.last+1 == ev.Version:
			rec.last, rec.n = ev.Version, rec.n+1
			w.m[id] = rec
			return
		}
	}
	w.put(id, cmdRecord{first: ev.Version, last: ev.Version, n: 1})
}

// restore remembers a record read from a snapshot, unless the window has
// one for the id already (a reload of an activation that knows more).
func (w *cmdWindow) restore(id string, rec cmdRecord) {
	if _, ok := w.m[id]; !ok {
		w.put(id, rec)
	}
}

func (w *cmdWindow) len() int {
	w.decodeSaved()
	return len(w.m)
}

// each calls fn with every record, oldest first.
func (w *cmdWindow) each(fn func(id string, rec cmdRecord)) {
	w.decodeSaved()
	n := len(w.order)
	for i := range n {
		id := w.order[(w.next+i)%n]
		fn(id, w.m[id])
	}
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

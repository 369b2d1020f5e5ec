package actors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

// ErrBrokenLog: a log whose versions or positions break the envelope's
// rules (a gap, a version out of order, a position that goes back).
var ErrBrokenLog = errors.New("broken log")

// ReplayedStream is one stream's state after a replay.
type ReplayedStream struct {
	Stream  string
	Kind    decider.Kind
	Version uint64
	State   decider.State
}

// Replayer folds a log through the kinds' own Evolve, the code the actors
// run, checking on the way what a log must hold: every stream parses and its
// kind is known, each stream's versions run 1, 2, 3 … without a gap,
// positions (where set) strictly increase, and the kind accepts every event.
//
// A Replayer is not safe for concurrent use. After an error it must not be
// used further: the failing event was not applied.
type Replayer struct {
	kinds   func(name string) (decider.Kind, bool)
	index   map[string]int
	streams []ReplayedStream
	lastPos uint64
}

// NewReplayer returns a Replayer that finds kinds with lookup.
func NewReplayer(lookup func(name string) (decider.Kind, bool)) *Replayer {
	return &Replayer{kinds: lookup, index: make(map[string]int)}
}

func (r *Replayer) kindOf(stream string) (decider.Kind, error) {
	id, err := events.ParseStreamID(stream)
	if err != nil {
		return nil, err
	}
	k, ok := r.kinds(id.Kind)
	if !ok {
		return nil, fmt.Errorf("%s: %w %q", stream, ErrUnknownKind, id.Kind)
	}
	return k, nil
}

// Restore starts a stream from a snapshot instead of from its first event:
// the fold goes on with version snap.Version+1. The stream must not have
// been seen yet. The snapshot's data is the kind's state, as MarshalState
// writes it, or a snapshot the runtime saved (which may wrap the state
// with its command window).
func (r *Replayer) Restore(snap events.Snapshot) error {
	k, err := r.kindOf(snap.Stream)
	if err != nil {
		return err
	}
	if _, seen := r.index[snap.Stream]; seen {
		return fmt.Errorf("restore %s: the stream has events already", snap.Stream)
	}
	data, _, err := decodeSnapshot(snap.Data) // the command window is the runtime's
	if err != nil {
		return fmt.Errorf("restore %s: %w", snap.Stream, err)
	}
	s, err := k.UnmarshalState(data)
	if err != nil {
		return fmt.Errorf("restore %s: %w", snap.Stream, err)
	}
	r.index[snap.Stream] = len(r.streams)
	r.streams = append(r.streams, ReplayedStream{Stream: snap.Stream, Kind: k, Version: snap.Version, State: s})
	return nil
}

// Apply folds one event into its stream's state.
func (r *Replayer) Apply(ev events.Event) (err error) {
	if ev.Position != 0 {
		if ev.Position <= r.lastPos {
			return fmt.Errorf("%w: %s version %d: position %d after %d", ErrBrokenLog, ev.Stream, ev.Version, ev.Position, r.lastPos)
		}
	}
	i, seen := r.index[ev.Stream]
	var st ReplayedStream
	if seen {
		st = r.streams[i]
	} else {
		k, err := r.kindOf(ev.Stream)
		if err != nil {
			return err
		}
		st = ReplayedStream{Stream: ev.Stream, Kind: k, State: k.Initial(ev.Stream)}
	}
	if want := st.Version + 1; ev.Version != want {
		what := "a gap"
		if ev.Version < want {
			what = "out of order"
		}
		return fmt.Errorf("%w: %s: version %d after %d (%s)", ErrBrokenLog, ev.Stream, ev.Version, st.Version, what)
	}
	next, err := evolve(st.Kind, st.State, ev)
	if err != nil {
		return fmt.Errorf("%s version %d: %w", ev.Stream, ev.Version, err)
	}
	st.State, st.Version = next, ev.Version
	if !seen {
		i = len(r.streams)
		r.index[ev.Stream] = i
		r.streams = append(r.streams, st)
	}
	r.streams[i] = st
	if ev.Position != 0 {
		r.lastPos = ev.Position
	}
	return nil
}

// evolve calls Evolve, turning a panic of a kind on a strange event into an
// error: a replay reports a broken log, it does not crash on one.
func evolve(k decider.Kind, s decider.State, ev events.Event) (next decider.State, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%s: Evolve panicked on %s: %v", k.Name(), ev.Type, p)
		}
	}()
	return k.Evolve(s, ev)
}

// Feed reads JSON Lines envelopes from rd and applies each. Every error is
// an *events.LineError naming the 1-based line.
func (r *Replayer) Feed(rd io.Reader) error {
	dec := events.NewDecoder(rd)
	for {
		ev, err := dec.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err // a *events.LineError already
		}
		if err := r.Apply(ev); err != nil {
			return &events.LineError{Line: dec.Line(), Err: err}
		}
	}
}

// Streams returns every stream's state, in the order the streams first
// appeared (restored ones first, in the order restored).
func (r *Replayer) Streams() []ReplayedStream {
	out := make([]ReplayedStream, len(r.streams))
	copy(out, r.streams)
	return out
}

// Replay folds one JSON Lines log and returns the final state of each of
// its streams, in order of first appearance. An error names its line
// (*events.LineError) and matches ErrBrokenLog, ErrUnknownKind,
// events.ErrInvalidStream, decider.ErrUnknownEvent or events.ErrInvalidEvent
// as the case may be.
func Replay(lookup func(name string) (decider.Kind, bool), rd io.Reader) ([]ReplayedStream, error) {
	r := NewReplayer(lookup)
	if err := r.Feed(rd); err != nil {
		return nil, err
	}
	return r.Streams(), nil
}

// ReplayFile is Replay of the file at path; errors name the file.
func ReplayFile(lookup func(name string) (decider.Kind, bool), path string) ([]ReplayedStream, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	streams, err := Replay(lookup, f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return streams, nil
}

// StatesJSON renders replayed states as `engine replay` prints them and
// testdata/*.state.json records them: a JSON array of the states, indented
// by two spaces, with a final newline.
func StatesJSON(streams []ReplayedStream) ([]byte, error) {
	raws := make([]json.RawMessage, len(streams))
	for i, s := range streams {
		b, err := s.Kind.MarshalState(s.State)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Stream, err)
		}
		raws[i] = unescapeHTML(b)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(raws); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// unescapeHTML undoes encoding/json's HTML escaping (\u003c, \u003e,
// \u0026) in JSON text, so that a message "<b>" reads as "<b>" in a replay's
// output. It walks escapes pairwise, so an escaped backslash followed by
// "u003c" is left alone.
func unescapeHTML(b []byte) []byte {
	if !bytes.Contains(b, []byte(`\u00`)) {
		return b
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 >= len(b) {
			out = append(out, b[i])
			continue
		}
		if b[i+1] == 'u' && i+6 <= len(b) {
			switch string(b[i+2 : i+6]) {
			case "003c":
				out, i = append(out, '<'), i+5
				continue
			case "003e":
				out, i = append(out, '>'), i+5
				continue
			case "0026":
				out, i = append(out, '&'), i+5
				continue
			}
		}
		out = append(out, b[i], b[i+1])
		i++
	}
	return out
}

package kinds_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/actors/kinds"
	"github.com/b6368a97/engine/events"
)

// recorder writes a realistic log by doing what the engine does: it runs
// commands through the kinds' Decide, runs the steps the kinds owe (a
// StepCommand through the target's Decide, StepWait as clock time, StepEmail
// as nothing) and records their outcome through Complete, and it stamps every
// event as a store would (version, gap-free position, id, time). So the
// committed logs are exactly what the deciders produce.
type recorder struct {
	t       *testing.T
	name    string
	clock   time.Time
	rng     *rand.Rand
	pos     uint64
	streams map[string]*recStream
	log     []events.Event
}

type recStream struct {
	kind    decider.Kind
	state   decider.State
	version uint64
	first   string // id of the stream's first event: the correlation of its steps
	last    string // id of its last event
}

func newRecorder(t *testing.T, name string, start time.Time, seed uint64) *recorder {
	return &recorder{
		t: t, name: name, clock: start,
		rng:     rand.New(rand.NewPCG(seed, 0x5eed)),
		streams: make(map[string]*recStream),
	}
}

// wait moves the clock on by a random time in [lo, hi).
func (r *recorder) wait(lo, hi time.Duration) {
	r.clock = r.clock.Add(lo + time.Duration(r.rng.Int64N(int64(hi-lo))))
	r.clock = r.clock.Truncate(time.Millisecond)
}

func (r *recorder) stream(name string) *recStream {
	r.t.Helper()
	if s, ok := r.streams[name]; ok {
		return s
	}
	id, err := events.ParseStreamID(name)
	if err != nil {
		r.t.Fatal(err)
	}
	k, ok := kinds.ByName(id.Kind)
	if !ok {
		r.t.Fatalf("no kind %q", id.Kind)
	}
	s := &recStream{kind: k, state: k.Initial(name)}
	r.streams[name] = s
	return s
}

// uuid is a deterministic, unique, UUID-shaped event id.
func (r *recorder) uuid() string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s/%d", r.name, r.pos))
	sum[6] = sum[6]&0x0f | 0x40 // version 4
	sum[8] = sum[8]&0x3f | 0x80 // RFC 4122 variant
	h := hex.EncodeToString(sum[:16])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// record stamps and applies events decided for a stream.
func (r *recorder) record(name string, evs []events.Event, meta events.Meta) {
	r.t.Helper()
	s := r.stream(name)
	for _, e := range evs {
		// Deciders set only Type and Data; the store stamps the rest.
		if e.Stream != "" || e.Version != 0 || e.Position != 0 || e.ID != "" || !e.Time.IsZero() || e.Meta != (events.Meta{}) {
			r.t.Fatalf("%s: %s came from its decider with more than Type and Data: %+v", name, e.Type, e)
		}
		if err := (events.Event{ID: "x", Type: e.Type, Data: e.Data}).Validate(); err != nil || len(e.Data) == 0 {
			r.t.Fatalf("%s: %s: data %s: %v", name, e.Type, e.Data, err)
		}
		r.pos++
		s.version++
		e.Stream, e.Version, e.Position, e.ID, e.Time, e.Meta = name, s.version, r.pos, r.uuid(), r.clock, meta
		next, err := s.kind.Evolve(s.state, e)
		if err != nil {
			r.t.Fatalf("%s: evolve %s: %v", name, e.Type, err)
		}
		s.state = next
		if s.first == "" {
			s.first = e.ID
		}
		s.last = e.ID
		r.log = append(r.log, e)
	}
}

// do runs a command that must succeed; it returns how many events it
// appended.
func (r *recorder) do(stream, typ string, data any) int {
	r.t.Helper()
	return r.doMeta(stream, typ, data, events.Meta{})
}

func (r *recorder) doMeta(stream, typ string, data any, meta events.Meta) int {
	r.t.Helper()
	raw, ok := data.(string)
	if !ok {
		b, err := json.Marshal(data)
		if err != nil {
			r.t.Fatal(err)
		}
		raw = string(b)
	}
	s := r.stream(stream)
	evs, err := s.kind.Decide(s.state, decider.Command{Stream: stream, Type: typ, Data: json.RawMessage(raw), Time: r.clock})
	if err != nil {
		r.t.Fatalf("%s %s %s: %v", stream, typ, raw, err)
	}
	r.record(stream, evs, meta)
	return len(evs)
}

// reject runs a command that must fail with want; nothing is recorded.
func (r *recorder) reject(stream, typ, data string, want error) {
	r.t.Helper()
	s := r.stream(stream)
	_, err := s.kind.Decide(s.state, decider.Command{Stream: stream, Type: typ, Data: json.RawMessage(data), Time: r.clock})
	if !errors.Is(err, want) {
		r.t.Fatalf("%s %s %s: err = %v, want %v", stream, typ, data, err, want)
	}
}

// attempt does the work of the first step the stream owes, without
// recording its completion, and returns its name. Only a StepCommand
// touches another stream; a StepWait takes the cook time.
func (r *recorder) attempt(stream string) string {
	r.t.Helper()
	s := r.stream(stream)
	steps := s.kind.Steps(s.state)
	if len(steps) == 0 {
		r.t.Fatalf("%s owes no step", stream)
	}
	st := steps[0]
	switch st.Action {
	case decider.StepCommand:
		r.doMeta(st.Target, st.Command, string(st.Data), events.Meta{Correlation: s.first, Causation: s.last})
	case decider.StepWait:
		r.wait(2500*time.Millisecond, 3500*time.Millisecond)
	case decider.StepEmail:
		if st.Email == nil || st.Email.To == "" {
			r.t.Fatalf("%s: email step without an address", stream)
		}
	}
	return st.Name
}

// complete records the outcome of a step (errText empty: success).
func (r *recorder) complete(stream, step, errText string, attempts int) {
	r.t.Helper()
	s := r.stream(stream)
	evs, err := s.kind.Complete(s.state, decider.StepResult{Step: step, Err: errText, Attempts: attempts, Time: r.clock})
	if err != nil {
		r.t.Fatalf("%s: complete %s: %v", stream, step, err)
	}
	r.record(stream, evs, events.Meta{Correlation: s.first, Causation: s.last})
}

// step runs the first owed step and records its success.
func (r *recorder) step(stream string) {
	r.t.Helper()
	r.wait(5*time.Millisecond, 40*time.Millisecond)
	name := r.attempt(stream)
	r.wait(time.Millisecond, 15*time.Millisecond)
	r.complete(stream, name, "", 1)
}

// fail records the final failure of the first owed step after attempts
// tries.
func (r *recorder) fail(stream, errText string, attempts int) {
	r.t.Helper()
	s := r.stream(stream)
	steps := s.kind.Steps(s.state)
	if len(steps) == 0 {
		r.t.Fatalf("%s owes no step", stream)
	}
	r.wait(3*time.Second, 7*time.Second) // the retries with backoff
	r.complete(stream, steps[0].Name, errText, attempts)
}

// owes asserts the names of the steps a stream still owes.
func (r *recorder) owes(stream string, want ...string) {
	r.t.Helper()
	s := r.stream(stream)
	var got []string
	for _, st := range s.kind.Steps(s.state) {
		got = append(got, st.Name)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		r.t.Fatalf("%s owes %v, want %v", stream, got, want)
	}
}

// timeFormat writes times as the protocol shows them: RFC 3339 in UTC with
// exactly three fractional digits.
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

// jsonl renders the log as JSON Lines envelopes, field for field as
// events.Event, but with a fixed millisecond time format.
func (r *recorder) jsonl() []byte {
	r.t.Helper()
	type line struct {
		Stream   string          `json:"stream"`
		Version  uint64          `json:"version"`
		Position uint64          `json:"position"`
		ID       string          `json:"id"`
		Type     string          `json:"type"`
		Time     string          `json:"time"`
		Data     json.RawMessage `json:"data"`
		Meta     *events.Meta    `json:"meta,omitempty"`
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	for _, e := range r.log {
		l := line{Stream: e.Stream, Version: e.Version, Position: e.Position, ID: e.ID, Type: e.Type,
			Time: e.Time.UTC().Format(timeFormat), Data: e.Data}
		if e.Meta != (events.Meta{}) {
			m := e.Meta
			l.Meta = &m
		}
		if err := enc.Encode(l); err != nil {
			r.t.Fatal(err)
		}
	}
	return b.Bytes()
}

package kinds_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/b6368a97/engine/actors"
	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/actors/game"
	"github.com/b6368a97/engine/actors/kinds"
	"github.com/b6368a97/engine/actors/kitchen"
	"github.com/b6368a97/engine/actors/order"
	"github.com/b6368a97/engine/actors/room"
	"github.com/b6368a97/engine/actors/user"
	"github.com/b6368a97/engine/events"
)

// knownCommands are each kind's command names; "#n" in a FuzzKinds script
// picks the nth (modulo) of its kind's.
var knownCommands = map[string][]string{
	room.Kind:    {room.CommandPostMessage},
	game.Kind:    {game.CommandUpdateScore, game.CommandEndGame},
	order.Kind:   {order.CommandPlaceOrder, order.CommandCancelOrder},
	user.Kind:    {user.CommandSignUp},
	kitchen.Kind: {kitchen.CommandAddTicket, kitchen.CommandCloseTicket},
}

// maxScriptLines bounds the work of one FuzzKinds input.
const maxScriptLines = 24

// FuzzKinds runs a script against one kind (kinds.All()[kind % n]) on the
// stream "<kind>:fz" (for users, the stream of fuzzUserEmail, the only one
// its SignUp is valid on), the way the runtime runs commands and steps. A
// script is lines of
//
//	[@user ]TYPE[ DATA]   a command: TYPE literal, or #n for the kind's
//	                      nth known command; DATA its JSON (may be absent)
//	!ok                   the first owed step succeeded
//	!fail TEXT            it failed for good with TEXT
//	!retry TEXT           an attempt of it failed and will be retried
//
// and after every line it checks:
//
//   - Decide never panics, leaves the state as it was, and its errors
//     match ErrInvalid, ErrConflict, ErrForbidden or ErrUnknownCommand
//     (anything else would be a 500);
//   - decided events (and those of Complete and RecordAttempt) carry only
//     a type and object data, valid for a store, and each folds with
//     Evolve, numbered as the runtime numbers them (Version previous+1,
//     Stream and Time set), to a state whose JSON names the stream and
//     version;
//   - the state marshals (MarshalState), unmarshals (UnmarshalState) and
//     marshals again to the same JSON, and a state so restored (a
//     snapshot) decides the next line and owes the steps the live one
//     does;
//   - a step that sends a command to another stream (order's kitchen
//     steps) sends one that stream's kind accepts on a fresh stream.
//
// At the end the log, written as JSON Lines, replays (actors.Replay) to
// the same state.
func FuzzKinds(f *testing.F) {
	for _, s := range fuzzKindsSeeds {
		f.Add(s.kind, s.script)
	}
	all := kinds.All(kinds.Config{})
	f.Fuzz(func(t *testing.T, kindIndex uint8, script string) {
		k := all[int(kindIndex)%len(all)]
		r := newKindRun(t, k)
		for i, line := range strings.SplitN(script, "\n", maxScriptLines+1) {
			if i == maxScriptLines {
				break
			}
			r.line(i, line)
		}
		r.checkReplay()
	})
}

var fuzzKindsSeeds = []struct {
	kind   uint8
	script string
}{
	{0, `PostMessage {"user":"ann","text":"good morning"}
@bob PostMessage {"text":"<b>tags</b> & ampersands stay verbatim"}
@bob PostMessage {"user":"carol","text":"forbidden"}
#0 {"user":"李雷","text":"first line\nsecond line"}
PostMessage {"user":"ann","text":""}
PostMessage {"user":"ann","text":"hi","extra":1}
UpdateScore {"team":"home","score":1}`},
	{1, `UpdateScore {"team":"home","score":0}
#0 {"team":"away","score":3}
UpdateScore {"team":"Société Générale","score":-1}
UpdateScore {"team":"home","score":1.5}
UpdateScore {"team":"home","score":1e2}
#1 {}
UpdateScore {"team":"home","score":200}
EndGame`},
	{2, `PlaceOrder {"items":[{"name":"flat white","qty":2},{"name":"bagel","qty":1}],"email":"ann@example.com"}
!retry kitchen: timeout
!ok
!ok
!ok
!fail smtp: 550 mailbox unavailable
CancelOrder {}`},
	{2, `#0 {"items":[{"name":"tomato soup","qty":1},{"name":"sourdough","qty":2}]}
!ok
#1
!ok
!ok
#0 {"items":[{"name":"x","qty":100}]}`},
	{3, `SignUp {"email":" Bob@Example.com ","name":"Bob the Builder"}
!retry 421 try later
!fail 550 no such user
SignUp {"email":"ann@example.com","name":"Ann"}`},
	{3, `#0 {"email":"BOB@example.com","name":"李雷"}
!ok
!ok
#0 {"email":"not an address","name":"x"}`},
	{4, `AddTicket {"order":"order:1001","items":[{"name":"flat white","qty":2},{"name":"bagel","qty":1}]}
AddTicket {"order":"order:1001","items":[{"name":"flat white","qty":2}]}
#1 {"order":"order:1001"}
CloseTicket {"order":"order:1001"}
AddTicket {"order":"room:x","items":[]}
!ok`},
}

// kindRun is one FuzzKinds input's stream: the live state and the log.
type kindRun struct {
	t       *testing.T
	k       decider.Kind
	stream  string
	state   decider.State
	version uint64
	clock   time.Time
	log     []events.Event
}

// fuzzUserEmail is the address whose stream FuzzKinds signs users up on.
const fuzzUserEmail = "bob@example.com"

func newKindRun(t *testing.T, k decider.Kind) *kindRun {
	r := &kindRun{t: t, k: k, stream: k.Name() + ":fz", clock: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	if k.Name() == user.Kind {
		id, err := user.IDForEmail(fuzzUserEmail)
		if err != nil {
			t.Fatal(err)
		}
		r.stream = user.Kind + ":" + id
	}
	r.state = k.Initial(r.stream)
	r.marshalRoundTrip(r.state)
	return r
}

// line runs one script line and checks the result.
func (r *kindRun) line(i int, line string) {
	t := r.t
	t.Helper()
	r.clock = r.clock.Add(1500 * time.Millisecond)
	if op, ok := strings.CutPrefix(line, "!"); ok {
		r.step(op)
		return
	}
	cmd := r.command(line)
	before := r.marshalRoundTrip(r.state)
	evs, err := r.k.Decide(r.state, cmd)
	if after := r.marshal(r.state); !bytes.Equal(after, before) {
		t.Fatalf("line %d: Decide %s changed the state:\n%s\n%s", i+1, cmd.Type, before, after)
	}
	r.sameOnSnapshot(before, cmd, evs, err)
	if err != nil {
		if !errors.Is(err, decider.ErrInvalid) && !errors.Is(err, decider.ErrConflict) &&
			!errors.Is(err, decider.ErrForbidden) && !errors.Is(err, decider.ErrUnknownCommand) {
			t.Fatalf("line %d: Decide %s %s: error %v matches none of the decider's sentinels", i+1, cmd.Type, cmd.Data, err)
		}
		return
	}
	r.apply(fmt.Sprintf("line %d: %s", i+1, cmd.Type), evs)
}

// command parses "[@user ]TYPE[ DATA]".
func (r *kindRun) command(line string) decider.Command {
	cmd := decider.Command{Stream: r.stream, Time: r.clock}
	if rest, ok := strings.CutPrefix(line, "@"); ok {
		cmd.User, line, _ = strings.Cut(rest, " ")
	}
	typ, data, _ := strings.Cut(line, " ")
	if n, ok := strings.CutPrefix(typ, "#"); ok {
		if i, err := strconv.Atoi(n); err == nil && i >= 0 {
			names := knownCommands[r.k.Name()]
			typ = names[i%len(names)]
		}
	}
	cmd.Type, cmd.Data = typ, json.RawMessage(data)
	return cmd
}

// step completes or fails the first owed step ("none" when nothing is
// owed: a duplicate report, which must do no harm).
func (r *kindRun) step(op string) {
	t := r.t
	t.Helper()
	verb, text, _ := strings.Cut(op, " ")
	name := "none"
	if owed := r.k.Steps(r.state); len(owed) > 0 {
		name = owed[0].Name
		r.checkStepCommand(owed[0])
	}
	res := decider.StepResult{Step: name, Time: r.clock, Attempts: r.k.Attempts(r.state, name).Count + 1}
	var (
		evs []events.Event
		err error
	)
	switch verb {
	case "ok":
		evs, err = r.k.Complete(r.state, res)
	case "fail":
		res.Err = text
		evs, err = r.k.Complete(r.state, res)
	case "retry":
		res.Err = text
		evs, err = r.k.RecordAttempt(r.state, res)
	default:
		return
	}
	if err != nil {
		return // e.g. a kind without steps; nothing is appended
	}
	r.apply("step "+op, evs)
}

// checkStepCommand checks that a step's command to another stream is one
// its kind accepts on a fresh stream.
func (r *kindRun) checkStepCommand(st decider.Step) {
	t := r.t
	t.Helper()
	if st.Action != decider.StepCommand {
		return
	}
	id, err := events.ParseStreamID(st.Target)
	if err != nil {
		t.Fatalf("step %s targets %q: %v", st.Name, st.Target, err)
	}
	target, ok := kinds.ByName(id.Kind)
	if !ok {
		t.Fatalf("step %s targets %q: no such kind", st.Name, st.Target)
	}
	cmd := decider.Command{Stream: st.Target, Type: st.Command, Data: st.Data, ID: st.Key, Time: r.clock}
	if _, err := target.Decide(target.Initial(st.Target), cmd); err != nil {
		t.Fatalf("step %s: %s refuses %s %s: %v", st.Name, st.Target, st.Command, st.Data, err)
	}
}

// apply stamps events as the runtime does and folds them into the state.
func (r *kindRun) apply(what string, evs []events.Event) {
	t := r.t
	t.Helper()
	at := events.NormalizeTime(r.clock, nil)
	for i, e := range evs {
		if e.Type == "" || e.Stream != "" || e.Version != 0 || e.Position != 0 || e.ID != "" || !e.Time.IsZero() || e.Meta != (events.Meta{}) {
			t.Fatalf("%s: event %d came with more or less than a type and data: %+v", what, i, e)
		}
		if err := (events.Event{ID: "x", Type: e.Type, Data: e.Data}).Validate(); err != nil || len(e.Data) == 0 {
			t.Fatalf("%s: event %s with data %s is not storable: %v", what, e.Type, e.Data, err)
		}
		r.version++
		e.Stream, e.Version, e.Time = r.stream, r.version, at
		e.ID, e.Position = fmt.Sprintf("fz-%d", r.version), r.version
		next, err := r.k.Evolve(r.state, e)
		if err != nil {
			t.Fatalf("%s: Evolve refuses the decided event %s %s: %v", what, e.Type, e.Data, err)
		}
		r.state = next
		r.log = append(r.log, e)
	}
	var head struct {
		Stream  string `json:"stream"`
		Version uint64 `json:"version"`
	}
	if err := json.Unmarshal(r.marshalRoundTrip(r.state), &head); err != nil || head.Stream != r.stream || head.Version != r.version {
		t.Fatalf("%s: state says %+v (%v), want stream %s version %d", what, head, err, r.stream, r.version)
	}
}

func (r *kindRun) marshal(s decider.State) []byte {
	r.t.Helper()
	b, err := r.k.MarshalState(s)
	if err != nil {
		r.t.Fatalf("MarshalState: %v", err)
	}
	return b
}

// marshalRoundTrip returns the state's JSON after checking that it
// survives UnmarshalState.
func (r *kindRun) marshalRoundTrip(s decider.State) []byte {
	r.t.Helper()
	b := r.marshal(s)
	back, err := r.k.UnmarshalState(b)
	if err != nil {
		r.t.Fatalf("UnmarshalState(%s): %v", b, err)
	}
	if again := r.marshal(back); !bytes.Equal(again, b) {
		r.t.Fatalf("state JSON changes through UnmarshalState:\n%s\n%s", b, again)
	}
	return b
}

// sameOnSnapshot checks that the state restored from its JSON decides cmd
// as the live state did and owes the same steps.
func (r *kindRun) sameOnSnapshot(snap []byte, cmd decider.Command, evs []events.Event, err error) {
	t := r.t
	t.Helper()
	restored, uerr := r.k.UnmarshalState(snap)
	if uerr != nil {
		t.Fatal(uerr)
	}
	evs2, err2 := r.k.Decide(restored, cmd)
	if (err == nil) != (err2 == nil) || err != nil && err.Error() != err2.Error() {
		t.Fatalf("%s %s: live state gives error %v, the snapshot %v\nstate %s", cmd.Type, cmd.Data, err, err2, snap)
	}
	if err == nil {
		if len(evs) != len(evs2) {
			t.Fatalf("%s %s: live state decides %d events, the snapshot %d\nstate %s", cmd.Type, cmd.Data, len(evs), len(evs2), snap)
		}
		for i := range evs {
			if evs[i].Type != evs2[i].Type || !bytes.Equal(evs[i].Data, evs2[i].Data) {
				t.Fatalf("%s %s: live state decides %s %s, the snapshot %s %s\nstate %s", cmd.Type, cmd.Data, evs[i].Type, evs[i].Data, evs2[i].Type, evs2[i].Data, snap)
			}
		}
	}
	s1, _ := json.Marshal(r.k.Steps(r.state))
	s2, _ := json.Marshal(r.k.Steps(restored))
	if !bytes.Equal(s1, s2) {
		t.Fatalf("live state owes %s, the snapshot %s\nstate %s", s1, s2, snap)
	}
}

// checkReplay writes the log as JSON Lines and replays it.
func (r *kindRun) checkReplay() {
	t := r.t
	t.Helper()
	if len(r.log) == 0 {
		return
	}
	var buf bytes.Buffer
	enc := events.NewEncoder(&buf)
	for _, e := range r.log {
		if err := enc.Encode(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := enc.Flush(); err != nil {
		t.Fatal(err)
	}
	streams, err := actors.Replay(kinds.ByName, &buf)
	if err != nil {
		t.Fatalf("replay of the log: %v", err)
	}
	if len(streams) != 1 || streams[0].Version != r.version {
		t.Fatalf("replay gives %+v, want %s at version %d", streams, r.stream, r.version)
	}
	if got, want := r.marshal(streams[0].State), r.marshal(r.state); !bytes.Equal(got, want) {
		t.Fatalf("replayed state differs:\n%s\n%s", got, want)
	}
}

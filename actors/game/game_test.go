package game_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/actors/game"
	"github.com/b6368a97/engine/events"
)

var t0 = time.Date(2026, 11, 25, 16, 0, 0, 0, time.UTC)

func cmd(typ, data string) decider.Command {
	return decider.Command{Stream: "game:final", Type: typ, Data: json.RawMessage(data), Time: t0}
}

func ev(v uint64, typ, data string) events.Event {
	return events.Event{Stream: "game:final", Version: v, Type: typ, Data: json.RawMessage(data), Time: t0}
}

// fold builds a state from events, failing the test on an error.
func fold(t *testing.T, evs ...events.Event) game.State {
	t.Helper()
	s := game.Initial("game:final")
	for _, e := range evs {
		var err error
		if s, err = game.Evolve(s, e); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func TestDecide(t *testing.T) {
	playing := []events.Event{ev(1, "ScoreUpdated", `{"team":"home","score":1}`)}
	ended := append(playing, ev(2, "GameEnded", `{}`))
	long := strings.Repeat("t", 64)
	tests := []struct {
		name    string
		history []events.Event
		cmd     decider.Command
		want    string // "Type data"
		wantErr error
	}{
		{name: "score", cmd: cmd("UpdateScore", `{"team":"home","score":2}`), want: `ScoreUpdated {"team":"home","score":2}`},
		{name: "score 0", cmd: cmd("UpdateScore", `{"team":"home","score":0}`), want: `ScoreUpdated {"team":"home","score":0}`},
		{name: "score -0 is 0", cmd: cmd("UpdateScore", `{"team":"home","score":-0}`), want: `ScoreUpdated {"team":"home","score":0}`},
		{name: "score max", cmd: cmd("UpdateScore", `{"team":"home","score":9007199254740991}`), want: `ScoreUpdated {"team":"home","score":9007199254740991}`},
		{name: "score over max", cmd: cmd("UpdateScore", `{"team":"home","score":9007199254740992}`), wantErr: decider.ErrInvalid},
		{name: "score over int64", cmd: cmd("UpdateScore", `{"team":"home","score":99999999999999999999}`), wantErr: decider.ErrInvalid},
		{name: "score -1", cmd: cmd("UpdateScore", `{"team":"home","score":-1}`), wantErr: decider.ErrInvalid},
		{name: "score -1.5", cmd: cmd("UpdateScore", `{"team":"home","score":-1.5}`), wantErr: decider.ErrInvalid},
		{name: "score 1.5", cmd: cmd("UpdateScore", `{"team":"home","score":1.5}`), wantErr: decider.ErrInvalid},
		{name: "score 1.0", cmd: cmd("UpdateScore", `{"team":"home","score":1.0}`), wantErr: decider.ErrInvalid},
		{name: "score 1e2", cmd: cmd("UpdateScore", `{"team":"home","score":1e2}`), wantErr: decider.ErrInvalid},
		{name: "score string", cmd: cmd("UpdateScore", `{"team":"home","score":"2"}`), wantErr: decider.ErrInvalid},
		{name: "score null", cmd: cmd("UpdateScore", `{"team":"home","score":null}`), wantErr: decider.ErrInvalid},
		{name: "score bool", cmd: cmd("UpdateScore", `{"team":"home","score":true}`), wantErr: decider.ErrInvalid},
		{name: "score missing", cmd: cmd("UpdateScore", `{"team":"home"}`), wantErr: decider.ErrInvalid},
		{name: "team 64 chars", cmd: cmd("UpdateScore", `{"team":"`+long+`","score":1}`), want: `ScoreUpdated {"team":"` + long + `","score":1}`},
		{name: "team 65 chars", cmd: cmd("UpdateScore", `{"team":"`+long+`x","score":1}`), wantErr: decider.ErrInvalid},
		{name: "team empty", cmd: cmd("UpdateScore", `{"team":"","score":1}`), wantErr: decider.ErrInvalid},
		{name: "team missing", cmd: cmd("UpdateScore", `{"score":1}`), wantErr: decider.ErrInvalid},
		{name: "team with tab", cmd: cmd("UpdateScore", `{"team":"a\tb","score":1}`), wantErr: decider.ErrInvalid},
		{name: "unknown field", cmd: cmd("UpdateScore", `{"team":"home","score":1,"half":2}`), wantErr: decider.ErrInvalid},
		{name: "not an object", cmd: cmd("UpdateScore", `"home"`), wantErr: decider.ErrInvalid},
		{name: "score while playing", history: playing, cmd: cmd("UpdateScore", `{"team":"away","score":3}`), want: `ScoreUpdated {"team":"away","score":3}`},
		{name: "score after the end", history: ended, cmd: cmd("UpdateScore", `{"team":"home","score":3}`), wantErr: decider.ErrConflict},
		{name: "invalid score after the end is bad_request", history: ended, cmd: cmd("UpdateScore", `{"team":"home","score":-3}`), wantErr: decider.ErrInvalid},
		{name: "end", history: playing, cmd: cmd("EndGame", `{}`), want: `GameEnded {}`},
		{name: "end without data", cmd: cmd("EndGame", ``), want: `GameEnded {}`},
		{name: "end a game with no score", cmd: cmd("EndGame", `{}`), want: `GameEnded {}`},
		{name: "end with a field", cmd: cmd("EndGame", `{"winner":"home"}`), wantErr: decider.ErrInvalid},
		{name: "end twice", history: ended, cmd: cmd("EndGame", `{}`), wantErr: decider.ErrConflict},
		{name: "unknown command", cmd: cmd("ResetScore", `{}`), wantErr: decider.ErrUnknownCommand},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := game.Decide(fold(t, tt.history...), tt.cmd)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != 1 {
				t.Fatalf("events = %+v", evs)
			}
			if got := evs[0].Type + " " + string(evs[0].Data); got != tt.want {
				t.Errorf("event = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestEvolve(t *testing.T) {
	tests := []struct {
		name    string
		evs     []events.Event
		want    string
		wantErr error
	}{
		{name: "initial", want: `{"stream":"game:final","version":0,"scores":{},"ended":false}`},
		{name: "scores", evs: []events.Event{
			ev(1, "ScoreUpdated", `{"team":"home","score":1}`),
			ev(2, "ScoreUpdated", `{"team":"away","score":1}`),
			ev(3, "ScoreUpdated", `{"team":"home","score":2}`),
		}, want: `{"stream":"game:final","version":3,"scores":{"away":1,"home":2},"ended":false}`},
		{name: "ended", evs: []events.Event{
			ev(1, "ScoreUpdated", `{"team":"home","score":1}`),
			ev(2, "GameEnded", `{}`),
		}, want: `{"stream":"game:final","version":2,"scores":{"home":1},"ended":true}`},
		{name: "score after end", evs: []events.Event{ev(1, "GameEnded", `{}`), ev(2, "ScoreUpdated", `{"team":"home","score":1}`)}, wantErr: events.ErrInvalidEvent},
		{name: "end twice", evs: []events.Event{ev(1, "GameEnded", `{}`), ev(2, "GameEnded", `{}`)}, wantErr: events.ErrInvalidEvent},
		{name: "negative score", evs: []events.Event{ev(1, "ScoreUpdated", `{"team":"home","score":-1}`)}, wantErr: events.ErrInvalidEvent},
		{name: "fractional score", evs: []events.Event{ev(1, "ScoreUpdated", `{"team":"home","score":1.5}`)}, wantErr: events.ErrInvalidEvent},
		{name: "missing score", evs: []events.Event{ev(1, "ScoreUpdated", `{"team":"home"}`)}, wantErr: events.ErrInvalidEvent},
		{name: "unknown field", evs: []events.Event{ev(1, "GameEnded", `{"x":1}`)}, wantErr: events.ErrInvalidEvent},
		{name: "unknown event", evs: []events.Event{ev(1, "GamePaused", `{}`)}, wantErr: decider.ErrUnknownEvent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := game.Initial("game:final")
			var err error
			for _, e := range tt.evs {
				if s, err = game.Evolve(s, e); err != nil {
					break
				}
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("state = %s\nwant    %s", b, tt.want)
			}
		})
	}
}

func TestEvolveIsPure(t *testing.T) {
	s1 := fold(t, ev(1, "ScoreUpdated", `{"team":"home","score":1}`))
	s2, err := game.Evolve(s1, ev(2, "ScoreUpdated", `{"team":"home","score":5}`))
	if err != nil {
		t.Fatal(err)
	}
	if s1.Scores["home"] != 1 || s2.Scores["home"] != 5 {
		t.Errorf("scores: before %v, after %v", s1.Scores, s2.Scores)
	}
	if b, _ := json.Marshal(game.State{}); !strings.Contains(string(b), `"scores":{}`) {
		t.Errorf("zero state marshals as %s", b)
	}
}

package game

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"strings"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

// Kind is the stream kind this package decides for.
const Kind = "game"

// Command and event type names. They are recorded in logs: never rename.
const (
	CommandUpdateScore = "UpdateScore"
	CommandEndGame     = "EndGame"
	EventScoreUpdated  = "ScoreUpdated"
	EventGameEnded     = "GameEnded"
)

// Limits.
const (
	MaxTeam  = 64        // runes in a team name
	MaxScore = 1<<53 - 1 // largest score
)

// State is a game as clients read it.
type State struct {
	Stream  string           `json:"stream"`
	Version uint64           `json:"version"`
	Scores  map[string]int64 `json:"scores"`
	Ended   bool             `json:"ended"`
}

// MarshalJSON writes no scores as {} rather than null.
func (s State) MarshalJSON() ([]byte, error) {
	type plain State
	p := plain(s)
	if p.Scores == nil {
		p.Scores = map[string]int64{}
	}
	return events.EncodeData(p)
}

// ScoreUpdated is the data of EventScoreUpdated.
type ScoreUpdated struct {
	Team  string `json:"team"`
	Score int64  `json:"score"`
}

// Initial is the state of a game with no events.
func Initial(stream string) State {
	return State{Stream: stream, Scores: map[string]int64{}}
}

// Decide validates a command against the game and returns the events it
// produces.
func Decide(s State, c decider.Command) ([]events.Event, error) {
	switch c.Type {
	case CommandUpdateScore:
		var d struct {
			Team  string          `json:"team"`
			Score json.RawMessage `json:"score"`
		}
		if err := decider.DecodeCommand(Kind, c, &d); err != nil {
			return nil, err
		}
		if err := decider.CheckName("team", d.Team, MaxTeam); err != nil {
			return nil, fmt.Errorf("%s %s: %w", Kind, c.Type, err)
		}
		score, err := parseScore(d.Score)
		if err != nil {
			return nil, err
		}
		if s.Ended {
			return nil, decider.Conflict("the game has ended")
		}
		return decider.Event(Kind, EventScoreUpdated, ScoreUpdated{Team: d.Team, Score: score})
	case CommandEndGame:
		if err := decider.DecodeCommand(Kind, c, &struct{}{}); err != nil {
			return nil, err
		}
		if s.Ended {
			return nil, decider.Conflict("the game has ended already")
		}
		return []events.Event{{Type: EventGameEnded, Data: json.RawMessage(`{}`)}}, nil
	default:
		return nil, decider.UnknownCommand(Kind, c.Type)
	}
}

// parseScore accepts a JSON integer literal in [0, MaxScore]. It reads the
// raw literal because decoding into a number type would take 1.0 or
// (with json.Number) the string "1".
func parseScore(raw json.RawMessage) (int64, error) {
	lit := string(bytes.TrimSpace(raw))
	switch {
	case lit == "" || lit == "null":
		return 0, decider.Invalid("score is required")
	case lit[0] != '-' && (lit[0] < '0' || lit[0] > '9'):
		return 0, decider.Invalid("score must be a number, got %.20s", lit)
	case lit[0] == '-' && lit != "-0":
		return 0, decider.Invalid("score must be 0 or more, got %.20s", lit)
	}
	n, err := strconv.ParseInt(lit, 10, 64)
	if err != nil {
		if _, ferr := strconv.ParseFloat(lit, 64); ferr == nil && strings.ContainsAny(lit, ".eE") {
			return 0, decider.Invalid("score must be a whole number, got %.20s", lit)
		}
		return 0, decider.Invalid("score must be at most %d, got %.20s", int64(MaxScore), lit)
	}
	if n > MaxScore {
		return 0, decider.Invalid("score must be at most %d, got %d", int64(MaxScore), n)
	}
	return n, nil
}

// Evolve applies one stored event.
func Evolve(s State, e events.Event) (State, error) {
	switch e.Type {
	case EventScoreUpdated:
		var d struct {
			Team  *string `json:"team"`
			Score *int64  `json:"score"`
		}
		if err := decider.DecodeEvent(Kind, e, &d); err != nil {
			return s, err
		}
		if d.Team == nil || *d.Team == "" || d.Score == nil || *d.Score < 0 {
			return s, fmt.Errorf("%s %s: %w: team and a score of 0 or more are required", Kind, e.Type, events.ErrInvalidEvent)
		}
		if s.Ended {
			return s, fmt.Errorf("%s %s: %w: score after the game ended", Kind, e.Type, events.ErrInvalidEvent)
		}
		// A new map: the caller's State keeps its own scores.
		scores := make(map[string]int64, len(s.Scores)+1)
		maps.Copy(scores, s.Scores)
		scores[*d.Team] = *d.Score
		s.Scores = scores
	case EventGameEnded:
		if err := decider.DecodeEvent(Kind, e, &struct{}{}); err != nil {
			return s, err
		}
		if s.Ended {
			return s, fmt.Errorf("%s %s: %w: the game ended twice", Kind, e.Type, events.ErrInvalidEvent)
		}
		s.Ended = true
	default:
		return s, fmt.Errorf("%s: %w %q", Kind, decider.ErrUnknownEvent, e.Type)
	}
	s.Stream, s.Version = e.Stream, e.Version
	return s, nil
}

// New returns the game kind, for the runtime and the replay.
func New() decider.Kind {
	return decider.New(decider.Decider[State]{Name: Kind, Initial: Initial, Decide: Decide, Evolve: Evolve})
}

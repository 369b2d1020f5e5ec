package room

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

// Kind is the stream kind this package decides for.
const Kind = "room"

// Command and event type names. They are recorded in logs: never rename.
const (
	CommandPostMessage = "PostMessage"
	EventMessagePosted = "MessagePosted"
)

// Limits.
const (
	MaxUser     = 64   // runes in a user name
	MaxText     = 4096 // runes in a message
	MaxMessages = 100  // messages the state keeps
)

// TimeFormat is how a message's time appears in the state: RFC 3339 in UTC
// with exactly three fractional digits, like the envelope's example.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// State is a room as clients read it.
type State struct {
	Stream  string `json:"stream"`
	Version uint64 `json:"version"`
	// Members is presence, set only by WithMembers; never stored.
	Members []string `json:"members"`
	// Messages are the last MaxMessages messages, oldest first.
	Messages []Message `json:"messages"`

	// log and end: Messages is log.buf[end-len(Messages):end], when log
	// is set (only Evolve sets it; see withMessage). Neither is stored:
	// a state read from a snapshot has no log, and its first Evolve
	// starts one.
	log *msgLog
	end int
}

// msgLog is the array the messages of successive states are windows of.
// Evolve appends a message in place, after the window of the state it is
// given, when no other state claimed that slot before (used), so a room
// copies its last messages once per MaxMessages events, not once per
// event, and an older state still sees exactly what it saw.
type msgLog struct {
	buf  []Message
	used atomic.Int64 // buf[:used] are written; a slot is claimed once
}

// withMessage returns s with m appended to its messages, the oldest
// dropped beyond MaxMessages. It never writes an element of s.Messages:
// it writes the slot after s's window when s is the newest state of its
// log (claimed atomically: states may be shared between goroutines), and
// copies the window into a new log otherwise. Messages is capped at its
// length, so that an append by a caller copies it too.
func (s State) withMessage(m Message) State {
	msgs, l := s.Messages, s.log
	if l != nil && len(msgs) > 0 && s.end < len(l.buf) && &msgs[len(msgs)-1] == &l.buf[s.end-1] &&
		l.used.CompareAndSwap(int64(s.end), int64(s.end)+1) {
		l.buf[s.end] = m
		s.end++
		s.Messages = l.buf[s.end-min(len(msgs)+1, MaxMessages) : s.end : s.end]
		return s
	}
	keep := msgs
	if len(keep) >= MaxMessages {
		keep = keep[len(keep)-MaxMessages+1:]
	}
	// Room for MaxMessages more appends once full; a small room starts
	// small.
	l = &msgLog{buf: make([]Message, min(2*MaxMessages, max(8, 2*(len(keep)+1))))}
	n := copy(l.buf, keep)
	l.buf[n] = m
	n++
	l.used.Store(int64(n))
	s.log, s.end = l, n
	s.Messages = l.buf[:n:n]
	return s
}

// Message is one posted message.
type Message struct {
	Version uint64 `json:"version"`
	User    string `json:"user"`
	Text    string `json:"text"`
	Time    string `json:"time"`
}

// MarshalJSON writes empty lists as [] rather than null, whatever path
// (a snapshot, a zero State) the state came from.
func (s State) MarshalJSON() ([]byte, error) {
	type plain State
	p := plain(s)
	p.Members, p.Messages = decider.List(p.Members), decider.List(p.Messages)
	return events.EncodeData(p)
}

// PostMessage is the data of CommandPostMessage.
type PostMessage struct {
	User string `json:"user"`
	Text string `json:"text"`
}

// MessagePosted is the data of EventMessagePosted.
type MessagePosted struct {
	User string `json:"user"`
	Text string `json:"text"`
}

// Initial is the state of a room with no events.
func Initial(stream string) State {
	return State{Stream: stream, Members: []string{}, Messages: []Message{}}
}

// Decide validates a command against the room and returns the events it
// produces.
func Decide(s State, c decider.Command) ([]events.Event, error) {
	switch c.Type {
	case CommandPostMessage:
		return postMessage(c)
	default:
		return nil, decider.UnknownCommand(Kind, c.Type)
	}
}

func postMessage(c decider.Command) ([]events.Event, error) {
	if evs, ok := postPlain(c); ok {
		return evs, nil
	}
	return postGeneral(c)
}

// postGeneral decides any PostMessage, through encoding/json.
func postGeneral(c decider.Command) ([]events.Event, error) {
	var d PostMessage
	if err := decider.DecodeCommand(Kind, c, &d); err != nil {
		return nil, err
	}
	user := d.User
	if c.User != "" {
		if d.User != "" && d.User != c.User {
			return nil, decider.Forbidden("user %q may not post as %q", c.User, d.User)
		}
		user = c.User
	}
	if err := decider.CheckName("user", user, MaxUser); err != nil {
		return nil, fmt.Errorf("%s %s: %w", Kind, c.Type, err)
	}
	if n := utf8.RuneCountInString(d.Text); n < 1 || n > MaxText {
		return nil, decider.Invalid("text must be 1-%d characters, got %d", MaxText, n)
	}
	if data, ok := appendUserText(make([]byte, 0, len(user)+len(d.Text)+22), user, d.Text); ok {
		return []events.Event{{Type: EventMessagePosted, Data: data}}, nil
	}
	return decider.Event(Kind, EventMessagePosted, MessagePosted{User: user, Text: d.Text})
}

// postPlain decides the usual PostMessage, one that postMessage accepts
// and whose data parseUserText takes, allocating only its event: the
// event's data is written first and checked in place. false: anything
// else, which postMessage decides (and words a refusal of) the general
// way.
func postPlain(c decider.Command) ([]events.Event, bool) {
	u, t, ok := parseUserText(c.Data)
	if !ok || c.User != "" && len(u) > 0 && string(u) != c.User {
		return nil, false
	}
	n := len(u)
	if c.User != "" {
		n = len(c.User)
	}
	data := make([]byte, 0, n+len(t)+22)
	data = append(data, `{"user":"`...)
	if c.User != "" {
		data = append(data, c.User...)
	} else {
		data = append(data, u...)
	}
	user := data[len(`{"user":"`):]
	if !plainBytes(user) || !nameOK(user) || !plainBytes(t) {
		return nil, false
	}
	if n := utf8.RuneCount(t); n < 1 || n > MaxText {
		return nil, false
	}
	data = append(data, `","text":"`...)
	data = append(data, t...)
	data = append(data, `"}`...)
	return []events.Event{{Type: EventMessagePosted, Data: data}}, true
}

// nameOK reports whether decider.CheckName accepts a user name.
func nameOK(b []byte) bool {
	if n := utf8.RuneCount(b); n < 1 || n > MaxUser {
		return false
	}
	for _, r := range string(b) {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// Evolve applies one stored event.
func Evolve(s State, e events.Event) (State, error) {
	switch e.Type {
	case EventMessagePosted:
		user, text, ok := parseUserText(e.Data)
		if !ok {
			var d MessagePosted
			if err := decider.DecodeEvent(Kind, e, &d); err != nil {
				return s, err
			}
			user, text = []byte(d.User), []byte(d.Text)
		}
		if len(user) == 0 || len(text) == 0 {
			return s, fmt.Errorf("%s %s: %w: user and text are required", Kind, e.Type, events.ErrInvalidEvent)
		}
		s = s.withMessage(newMessage(e.Version, user, text, e.Time))
	default:
		return s, fmt.Errorf("%s: %w %q", Kind, decider.ErrUnknownEvent, e.Type)
	}
	s.Stream, s.Version = e.Stream, e.Version
	return s, nil
}

// newMessage returns the message of an event: its user, text and time are
// substrings of one string, one allocation.
func newMessage(version uint64, user, text []byte, at time.Time) Message {
	var tb [64]byte
	ts := at.UTC().AppendFormat(tb[:0], TimeFormat)
	var b strings.Builder
	b.Grow(len(user) + len(text) + len(ts))
	b.Write(user)
	b.Write(text)
	b.Write(ts)
	all := b.String()
	u, t := len(user), len(user)+len(text)
	return Message{Version: version, User: all[:u], Text: all[u:t], Time: all[t:]}
}

// WithMembers returns the state with its presence set to a sorted copy of
// members without duplicates (one user may be connected twice).
func WithMembers(s State, members []string) State {
	m := slices.Clone(members)
	if m == nil {
		m = []string{}
	}
	slices.Sort(m)
	s.Members = slices.Compact(m)
	return s
}

// New returns the room kind, with presence, for the runtime and the replay.
func New() decider.Kind {
	return decider.New(decider.Decider[State]{Name: Kind, Initial: Initial, Decide: Decide, Evolve: Evolve, WithMembers: WithMembers})
}

package events

import (
	"encoding/binary"
	"encoding/json"
)

// The JSON checks below answer what encoding/json's Valid answers, for a
// fraction of its cost (json.Valid steps a state machine through a
// function call per byte; this is a plain recursive scan). Event data is
// checked on every append and command data on every command, so that
// cost is on the hot path of every store and of the wire. Nesting deeper
// than maxScanDepth is left to json.Valid, which has its own limit.
// FuzzValidJSON checks that they agree.

// ValidJSON reports whether data is one valid JSON value, white space
// around it allowed: what json.Valid reports.
func ValidJSON(data []byte) bool {
	s := jsonScanner{b: data}
	ok, sure := s.value(0)
	if !sure {
		return json.Valid(data)
	}
	s.space()
	return ok && s.i == len(s.b)
}

// JSONValueLen returns the length of the valid JSON value that data starts
// with (no white space before it), so that a caller scanning a larger
// document checks a member's value and finds its end in one pass. ok is
// false when data does not start with a valid value, and when the value
// nests deeper than this scan follows (json.Valid on what the caller
// finds by other means is then the answer).
func JSONValueLen(data []byte) (n int, ok bool) {
	if len(data) == 0 || data[0] == ' ' || data[0] == '\t' || data[0] == '\n' || data[0] == '\r' {
		return 0, false
	}
	s := jsonScanner{b: data}
	if ok, sure := s.value(0); !ok || !sure {
		return 0, false
	}
	return s.i, true
}

// validObject reports whether data is one valid JSON object, white space
// after it allowed: json.Valid(data) && data[0] == '{'.
func validObject(data []byte) bool {
	return len(data) > 0 && data[0] == '{' && ValidJSON(data)
}

// maxScanDepth bounds the nesting jsonScanner follows before it hands the
// data to json.Valid.
const maxScanDepth = 64

type jsonScanner struct {
	b []byte
	i int
}

func (s *jsonScanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// value scans one value after optional white space. sure is false when
// the nesting is too deep to decide here.
func (s *jsonScanner) value(depth int) (ok, sure bool) {
	s.space()
	if s.i >= len(s.b) {
		return false, true
	}
	switch c := s.b[s.i]; {
	case c == '{':
		if depth == maxScanDepth {
			return false, false
		}
		return s.object(depth + 1)
	case c == '[':
		if depth == maxScanDepth {
			return false, false
		}
		return s.array(depth + 1)
	case c == '"':
		return s.str(), true
	case c == '-' || c >= '0' && c <= '9':
		return s.number(), true
	case c == 't':
		return s.literal("true"), true
	case c == 'f':
		return s.literal("false"), true
	case c == 'n':
		return s.literal("null"), true
	}
	return false, true
}

func (s *jsonScanner) object(depth int) (ok, sure bool) {
	s.i++ // '{'
	s.space()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return true, true
	}
	for {
		s.space()
		if s.i >= len(s.b) || s.b[s.i] != '"' || !s.str() {
			return false, true
		}
		s.space()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return false, true
		}
		s.i++
		if ok, sure := s.value(depth); !ok || !sure {
			return ok, sure
		}
		if more, ok := s.sep('}'); !more {
			return ok, true
		}
	}
}

func (s *jsonScanner) array(depth int) (ok, sure bool) {
	s.i++ // '['
	s.space()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return true, true
	}
	for {
		if ok, sure := s.value(depth); !ok || !sure {
			return ok, sure
		}
		if more, ok := s.sep(']'); !more {
			return ok, true
		}
	}
}

// sep moves past what follows a member or an element: more reports a
// ',', ok a ',' or the closing byte (anything else is invalid).
func (s *jsonScanner) sep(closing byte) (more, ok bool) {
	s.space()
	if s.i < len(s.b) {
		switch s.b[s.i] {
		case ',':
			s.i++
			return true, true
		case closing:
			s.i++
			return false, true
		}
	}
	return false, false
}

// str scans a string. Like encoding/json, it refuses control characters
// and unknown escapes and lets any other byte through (invalid UTF-8
// included).
func (s *jsonScanner) str() bool {
	s.i++ // '"'
	for s.i < len(s.b) {
		// Plain text eight bytes at a time: words with no quote, no
		// backslash and no control character are skipped whole.
		for s.i+8 <= len(s.b) && plainWord(binary.LittleEndian.Uint64(s.b[s.i:])) {
			s.i += 8
		}
		if s.i >= len(s.b) {
			break
		}
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return true
		case c < 0x20:
			return false
		case c == '\\':
			s.i++
			if s.i >= len(s.b) {
				return false
			}
			switch s.b[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				if s.i+4 >= len(s.b) {
					return false
				}
				for _, h := range s.b[s.i+1 : s.i+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return false
					}
				}
				s.i += 5
			default:
				return false
			}
		default:
			s.i++
		}
	}
	return false
}

// plainWord reports whether none of x's eight bytes is '"', '\\' or below
// 0x20: the bit tricks find a zero byte in x^'"'… and x^'\\'…, and a byte
// below 0x20 (one whose top bit is clear, less 0x20, borrows into it).
func plainWord(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	q := x ^ ('"' * ones)
	b := x ^ ('\\' * ones)
	bad := (q-ones)&^q | (b-ones)&^b | (x-0x20*ones)&^x
	return bad&highs == 0
}

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *jsonScanner) number() bool {
	if s.b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i >= len(s.b):
		return false
	case s.b[s.i] == '0':
		s.i++
	case s.b[s.i] >= '1' && s.b[s.i] <= '9':
		s.digits()
	default:
		return false
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if s.digits() == 0 {
			return false
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if s.digits() == 0 {
			return false
		}
	}
	return true
}

func (s *jsonScanner) digits() int {
	n := 0
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

func (s *jsonScanner) literal(lit string) bool {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return false
	}
	s.i += len(lit)
	return true
}

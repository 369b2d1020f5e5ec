package room

import (
	"unicode/utf8"
)

// The room's hot path, PostMessage and MessagePosted, reads and writes
// {"user":…,"text":…} without reflection. These are shortcuts only: each
// takes the common case and reports false for anything else, which then
// goes the general way (events.DecodeData, events.EncodeData), so what is
// accepted, refused and written is exactly what encoding/json does.

// parseUserText reads data that is exactly one JSON object whose members
// are "user" and "text" (each at most once, spelled so), with string
// values holding no escape, no control character and only valid UTF-8,
// white space allowed between tokens; user and text are slices of data
// (nil when absent). For such data the strict decoder
// (events.DecodeData with unknown fields refused) yields the same values
// and no error. Anything else: ok is false, and the caller decodes the
// general way.
func parseUserText(data []byte) (user, text []byte, ok bool) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil, nil, false
	}
	i = skipSpace(data, i+1)
	var seenUser, seenText bool
	if i < len(data) && data[i] == '}' {
		i++
	} else {
		for {
			key, j, ok := plainString(data, i)
			if !ok {
				return nil, nil, false
			}
			i = skipSpace(data, j)
			if i >= len(data) || data[i] != ':' {
				return nil, nil, false
			}
			val, j, ok := plainString(data, skipSpace(data, i+1))
			if !ok {
				return nil, nil, false
			}
			switch {
			case string(key) == "user" && !seenUser:
				user, seenUser = val, true
			case string(key) == "text" && !seenText:
				text, seenText = val, true
			default:
				return nil, nil, false
			}
			i = skipSpace(data, j)
			if i >= len(data) {
				return nil, nil, false
			}
			if data[i] == '}' {
				i++
				break
			}
			if data[i] != ',' {
				return nil, nil, false
			}
			i = skipSpace(data, i+1)
		}
	}
	if skipSpace(data, i) != len(data) {
		return nil, nil, false
	}
	return user, text, true
}

// plainString reads a JSON string at data[i] that needs no unescaping:
// no backslash, no control character, valid UTF-8. It returns its
// contents and the index after the closing quote.
func plainString(data []byte, i int) ([]byte, int, bool) {
	if i >= len(data) || data[i] != '"' {
		return nil, 0, false
	}
	start := i + 1
	ascii := true
	for j := start; j < len(data); j++ {
		switch c := data[j]; {
		case c == '"':
			s := data[start:j]
			if !ascii && !utf8.Valid(s) {
				return nil, 0, false
			}
			return s, j + 1, true
		case c == '\\' || c < 0x20:
			return nil, 0, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, 0, false
}

// skipSpace returns the index of the first byte from i on that is not
// JSON white space.
func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// appendUserText appends {"user":user,"text":text} as events.EncodeData
// writes a MessagePosted, when neither string needs escaping there; false
// otherwise (the caller encodes the general way).
func appendUserText(b []byte, user, text string) ([]byte, bool) {
	if !plain(user) || !plain(text) {
		return b, false
	}
	b = append(b, `{"user":"`...)
	b = append(b, user...)
	b = append(b, `","text":"`...)
	b = append(b, text...)
	return append(b, `"}`...), true
}

// plain reports whether encoding/json (without HTML escaping) writes s
// between quotes as it is: valid UTF-8, no quote, backslash or control
// character, no U+2028 or U+2029 (which it always escapes).
func plain(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == '"' || c == '\\' {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			return false
		}
		i += size
	}
	return true
}

// plainBytes is plain for a byte slice: encoding/json writes b between
// quotes as it is.
func plainBytes(b []byte) bool {
	ascii := true
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c < 0x20 || c == '"' || c == '\\':
			return false
		case c == 0xE2 && i+2 < len(b) && b[i+1] == 0x80 && (b[i+2] == 0xA8 || b[i+2] == 0xA9): // U+2028, U+2029
			return false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return ascii || utf8.Valid(b)
}

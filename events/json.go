package events

import (
	"strconv"
	"unicode/utf8"
)

// TimeFormat is the envelope's time format: UTC with exactly three
// fractional digits, as the protocol shows it.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// MarshalJSON writes the envelope with its time in TimeFormat and without
// HTML escaping. It is AppendJSON on a fresh buffer.
func (e Event) MarshalJSON() ([]byte, error) {
	return e.AppendJSON(make([]byte, 0, 192+len(e.Data))), nil
}

// AppendJSON appends the envelope's JSON to buf. It is the fast path the
// transport uses to build frames without reflection. Data is written as
// stored (a JSON object, "{}" when empty).
func (e Event) AppendJSON(buf []byte) []byte {
	return e.appendFields(append(buf, '{'))
}

// AppendJSONFields appends the envelope's fields, without the braces, so a
// frame can add fields of its own around them.
func (e Event) AppendJSONFields(buf []byte) []byte {
	b := e.appendFields(buf)
	return b[:len(b)-1] // drop '}'
}

func (e Event) appendFields(buf []byte) []byte {
	buf = append(buf, `"stream":`...)
	buf = AppendJSONString(buf, e.Stream)
	buf = append(buf, `,"version":`...)
	buf = strconv.AppendUint(buf, e.Version, 10)
	buf = append(buf, `,"position":`...)
	buf = strconv.AppendUint(buf, e.Position, 10)
	buf = append(buf, `,"id":`...)
	buf = AppendJSONString(buf, e.ID)
	buf = append(buf, `,"type":`...)
	buf = AppendJSONString(buf, e.Type)
	buf = append(buf, `,"time":"`...)
	buf = e.Time.UTC().AppendFormat(buf, TimeFormat)
	buf = append(buf, `","data":`...)
	if len(e.Data) == 0 {
		buf = append(buf, "{}"...)
	} else {
		buf = append(buf, e.Data...)
	}
	if e.Meta != (Meta{}) {
		buf = append(buf, `,"meta":{`...)
		sep := ""
		if e.Meta.Correlation != "" {
			buf = append(buf, `"correlation":`...)
			buf = AppendJSONString(buf, e.Meta.Correlation)
			sep = ","
		}
		if e.Meta.Causation != "" {
			buf = append(buf, sep...)
			buf = append(buf, `"causation":`...)
			buf = AppendJSONString(buf, e.Meta.Causation)
		}
		buf = append(buf, '}')
	}
	return append(buf, '}')
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string the way encoding/json does
// with HTML escaping off: control characters, quote and backslash escaped,
// invalid UTF-8 replaced by U+FFFD, U+2028 and U+2029 escaped.
func AppendJSONString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			buf = append(buf, s[start:i]...)
			buf = append(buf, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}

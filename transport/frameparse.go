package transport

import (
	"encoding/json"
	"unicode/utf8"

	"github.com/b6368a97/engine/events"
)

// Fast decoding of /ws frames.
//
// parseFrame decodes every frame with events.DecodeStrict (encoding/json
// with unknown fields refused), whose reflection and buffering cost more
// than the rest of a command's way through the transport. quickFrame
// decodes the frames clients send in practice: one object of known
// members, each named exactly (lower case) and at most once, whose
// strings have no escape, no control character and valid UTF-8, whose
// from is a plain decimal number and whose ref is a string. For such a
// frame it returns exactly what the strict decoder would. Anything else,
// every error included, makes it give up (ok false) and parseFrame takes
// the strict decoder, so that errors and unusual frames (escapes, names
// in another case, duplicates, nulls) are handled, and worded, the one
// way they always were. FuzzQuickFrame checks the two agree.

// quickFrame decodes data as described above. ref is the frame's ref when
// it has one.
func quickFrame(data []byte) (f clientFrame, ref *string, ok bool) {
	p := frameScanner{b: data}
	if !p.object(func(key []byte) (uint16, bool) { return p.member(&f, &ref, key) }) {
		return f, nil, false
	}
	return f, ref, true
}

type frameScanner struct {
	b []byte
	i int
}

// object scans a JSON object that is the whole of p.b, white space
// around it allowed. Each member's key must be a plain string; member
// reads the value and returns the key's bit (0 with false for a key it
// does not take). It fails on anything else, and on a key met twice.
func (p *frameScanner) object(member func(key []byte) (uint16, bool)) bool {
	p.space()
	if !p.byte('{') {
		return false
	}
	var seen uint16
	p.space()
	if !p.byte('}') {
		for {
			p.space()
			key, ok := p.plainString()
			if !ok {
				return false
			}
			p.space()
			if !p.byte(':') {
				return false
			}
			p.space()
			bit, ok := member(key)
			if !ok || bit == 0 || seen&bit != 0 {
				return false
			}
			seen |= bit
			p.space()
			if p.byte(',') {
				continue
			}
			if p.byte('}') {
				break
			}
			return false
		}
	}
	p.space()
	return p.i == len(p.b)
}

func (p *frameScanner) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *frameScanner) byte(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// plainString reads a string without escapes or control characters, in
// valid UTF-8, and returns its contents (aliasing the input).
func (p *frameScanner) plainString() ([]byte, bool) {
	if !p.byte('"') {
		return nil, false
	}
	start, ascii := p.i, true
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			if !ascii && !utf8.Valid(s) {
				return nil, false
			}
			return s, true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
		p.i++
	}
	return nil, false
}

// str reads a plain string into a new string.
func (p *frameScanner) str(dst *string) bool {
	s, ok := p.plainString()
	if ok {
		*dst = string(s)
	}
	return ok
}

// member reads the value of the member named key into f, and returns the
// member's bit (to refuse a duplicate).
func (p *frameScanner) member(f *clientFrame, ref **string, key []byte) (uint16, bool) {
	switch string(key) {
	case "op":
		return 1 << 0, p.str(&f.Op)
	case "ref":
		var r string
		if !p.str(&r) || utf8.RuneCountInString(r) > maxRef {
			return 0, false
		}
		*ref = &r
		return 1 << 1, true
	case "stream":
		return 1 << 2, p.str(&f.Stream)
	case "from":
		n, ok := p.uint()
		if ok {
			f.From = &n
		}
		return 1 << 3, ok
	case "user":
		return 1 << 4, p.str(&f.User)
	case "type":
		return 1 << 5, p.str(&f.Type)
	case "data":
		n, ok := events.JSONValueLen(p.b[p.i:])
		if !ok {
			return 0, false
		}
		f.Data = append(json.RawMessage(nil), p.b[p.i:p.i+n]...)
		p.i += n
		return 1 << 6, true
	case "id":
		return 1 << 7, p.str(&f.ID)
	case "epoch":
		return 1 << 8, p.str(&f.Epoch)
	case "token":
		return 1 << 9, p.str(&f.Token)
	case "state":
		switch {
		case p.literal("true"):
			f.State = true
		case p.literal("false"):
			f.State = false
		default:
			return 0, false
		}
		return 1 << 10, true
	}
	return 0, false
}

func (p *frameScanner) literal(lit string) bool {
	if len(p.b)-p.i >= len(lit) && string(p.b[p.i:p.i+len(lit)]) == lit {
		p.i += len(lit)
		return true
	}
	return false
}

// uint reads a JSON number that is a plain uint64: digits, no leading
// zero, no fraction or exponent (anything else is left to the strict
// decoder).
func (p *frameScanner) uint() (uint64, bool) {
	start := p.i
	var n uint64
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		d := uint64(p.b[p.i] - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
		p.i++
	}
	switch {
	case p.i == start, p.i-start > 1 && p.b[start] == '0':
		return 0, false
	case p.i < len(p.b) && (p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E'):
		return 0, false
	}
	return n, true
}

// quickCommandBody decodes the body of POST /streams/{s}/commands as
// quickFrame decodes a frame: the usual bodies (type and data, once each,
// type a plain string) exactly as decodeStrict would, anything else (ok
// false) left to decodeStrict. Nothing it returns aliases body.
func quickCommandBody(body []byte) (b commandBody, ok bool) {
	p := frameScanner{b: body}
	ok = p.object(func(key []byte) (uint16, bool) {
		switch string(key) {
		case "type":
			return 1, p.str(&b.Type)
		case "data":
			n, ok := events.JSONValueLen(p.b[p.i:])
			if !ok {
				return 0, false
			}
			b.Data = append(json.RawMessage(nil), p.b[p.i:p.i+n]...)
			p.i += n
			return 2, true
		}
		return 0, false
	})
	return b, ok
}

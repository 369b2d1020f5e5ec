package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"unicode/utf8"
)

// ErrTrailingData: a JSON value followed by more data.
var ErrTrailingData = errors.New("trailing data after the JSON value")

// DecodeStrict decodes exactly one JSON value from raw into v. Unknown
// object fields are an error (encoding/json still fills the fields it
// knows, so a caller can read what it needs for its reply), and so is
// anything but white space after the value (ErrTrailingData). It is the
// engine's one strict decoder: event data and command data (DecodeData),
// envelopes (DecodeEnvelope), HTTP bodies and WebSocket frames all go
// through it, so they refuse the same things.
func DecodeStrict(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return ErrTrailingData
	}
	return nil
}

// Clip bounds text quoted in a message or kept in an event: at most n
// bytes, cut at a rune boundary, with "…" (counted in n) marking a cut.
func Clip(s string, n int) string {
	const mark = "…"
	if len(s) <= n {
		return s
	}
	cut := max(n-len(mark), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

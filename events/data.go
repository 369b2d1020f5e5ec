package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// DecodeData strictly decodes a command's or an event's JSON object into v:
// invalid UTF-8, anything but an object, unknown fields, values of the
// wrong type and trailing data are errors wrapping sentinel (the decider's
// ErrInvalid for a command, ErrInvalidEvent for an event). Empty data means {}. Every kind
// decodes with it, so all of them refuse the same things.
func DecodeData(raw json.RawMessage, v any, sentinel error) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		raw = []byte("{}")
	}
	if !utf8.Valid(raw) {
		return fmt.Errorf("%w: data is not valid UTF-8", sentinel)
	}
	if raw[0] != '{' {
		return fmt.Errorf("%w: data must be a JSON object", sentinel)
	}
	if err := DecodeStrict(raw, v); err != nil {
		return fmt.Errorf("%w: %v", sentinel, err)
	}
	return nil
}

// EncodeData encodes event data as compact JSON without HTML escaping, so
// "<b>" stays readable in logs, exports and frames.
func EncodeData(v any) (json.RawMessage, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode event data: %w", err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

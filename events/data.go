package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// DecodeData strictly decodes a command's or an event's JSON object into v:
// invalid UTF-8, anything but an object, unknown fields, values of the
// wrong type and trailing data are Refusals of sentinel (the decider's
// ErrInvalid for a command, ErrInvalidEvent for an event) whose message
// names no Go type. Empty data means {}. Every kind decodes with it, so
// all of them refuse the same things.
func DecodeData(raw json.RawMessage, v any, sentinel error) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		raw = []byte("{}")
	}
	if !utf8.Valid(raw) {
		return Refuse(sentinel, "data is not valid UTF-8")
	}
	if raw[0] != '{' {
		return Refuse(sentinel, "data must be a JSON object")
	}
	if err := DecodeStrict(raw, v); err != nil {
		return Refuse(sentinel, "data: %s", JSONReason(err))
	}
	return nil
}

// JSONReason says what is wrong with a value DecodeStrict refused, in
// words for a client: no Go type names.
func JSONReason(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field != "" {
			return fmt.Sprintf("field %q: a JSON %s is not allowed here", te.Field, te.Value)
		}
		return fmt.Sprintf("a JSON %s is not allowed here", te.Value)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
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

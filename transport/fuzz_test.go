package transport

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/b6368a97/engine/events"
)

// Fuzz targets over the pure parts of request decoding: /ws frames
// (parseFrame) and HTTP command bodies (decodeStrict, commandData,
// checkKey, parseIfMatch). FuzzWSDispatch (fuzz_ws_test.go) drives frames
// through a real server.

// FrameRef is the ref parseFrame finds in a /ws frame, for
// FuzzWSDispatch's check that a reply carries it: nil when the frame has
// none or an invalid one.
func FrameRef(data []byte) *string {
	_, ref, _ := parseFrame(data)
	return ref
}

// wantRef is what the protocol says a frame's ref is, worked out without
// parseFrame: for a valid JSON object, the last member whose name is "ref"
// (encoding/json matches names case-insensitively and the last duplicate
// wins); known reports whether the input is such an object, so that the
// answer applies.
func wantRef(data []byte) (ref *string, known bool) {
	if !json.Valid(data) {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, true // valid JSON, not an object: no ref
	}
	var last json.RawMessage
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, false
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		if key, _ := tok.(string); strings.EqualFold(key, "ref") {
			last = v
		}
	}
	var s string
	if last == nil || string(last) == "null" || json.Unmarshal(last, &s) != nil || utf8.RuneCountInString(s) > maxRef {
		return nil, true
	}
	return &s, true
}

// FuzzParseFrame: parseFrame never panics; an error is a plain
// bad_request (never a 500); a ref it returns is at most maxRef
// characters of valid UTF-8; a frame it accepts is valid JSON; and for any
// valid JSON input the ref is exactly the protocol's (a string of at most
// 64 characters, echoed verbatim, "" included, null none), even when
// another field is wrong.
func FuzzParseFrame(f *testing.F) {
	for _, s := range []string{
		`{"op":"ping","ref":"1"}`,
		`{"op":"subscribe","stream":"room:lobby","from":0,"user":"ann","epoch":"e1","ref":"sub-1"}`,
		`{"op":"unsubscribe","stream":"room:lobby","ref":""}`,
		`{"op":"command","stream":"room:lobby","type":"PostMessage","data":{"user":"ann","text":"hi"},"id":"k1","ref":"c1"}`,
		`{"op":"ping","ref":null}`,
		`{"op":"ping","ref":7}`,
		`{"op":"ping","ref":"` + strings.Repeat("é", 64) + `"}`,
		`{"op":"ping","ref":"` + strings.Repeat("x", 65) + `"}`,
		`{"op":"ping","ref":"a","extra":1}`,
		`{"op":"subscribe","from":-1,"ref":"neg"}`,
		`{"op":"ping","ref":"a"} {}`,
		`{"op":"ping","REF":"upper","ref":"lower"}`,
		`{"op":"ping","ref":"\ud800\u2028<b>"}`,
		`{"op":"ping","ref":"x"`,
		`[{"ref":"in an array"}]`,
		`null`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, ref, err := parseFrame(data)
		if err != nil {
			if p, internal := classify(err); internal || p.Code != codeBadRequest {
				t.Fatalf("parseFrame(%q) error %v is %s (internal %v), want bad_request", data, err, p.Code, internal)
			}
		} else if !json.Valid(data) {
			t.Fatalf("parseFrame accepted invalid JSON %q as %+v", data, fr)
		}
		if ref != nil && (utf8.RuneCountInString(*ref) > maxRef || !utf8.ValidString(*ref)) {
			t.Fatalf("parseFrame(%q) returned ref %q", data, *ref)
		}
		want, known := wantRef(data)
		if !known {
			return
		}
		switch {
		case want == nil && ref != nil:
			t.Fatalf("parseFrame(%q) returned ref %q, want none (err %v)", data, *ref, err)
		case want != nil && ref == nil:
			t.Fatalf("parseFrame(%q) returned no ref, want %q (err %v)", data, *want, err)
		case want != nil && *want != *ref:
			t.Fatalf("parseFrame(%q) returned ref %q, want %q (err %v)", data, *ref, *want, err)
		}
	})
}

// FuzzCommandBody: the HTTP command path's decoding (POST
// /streams/{s}/commands) never panics; refusals are bad_request; data it
// accepts is a JSON object that does not alias the request body (which
// fiber reuses); an idempotency key it accepts is 0-128 bytes of visible
// ASCII; an If-Match it accepts is any version or a version below 2^63.
func FuzzCommandBody(f *testing.F) {
	for _, s := range []struct{ body, key, ifMatch string }{
		{`{"type":"PostMessage","data":{"user":"ann","text":"hi"}}`, "k-1", ""},
		{`{"type":"EndGame"}`, "", "*"},
		{`{"type":"CancelOrder","data":null}`, "", `W/"3"`},
		{`{"type":"UpdateScore","data":{"team":"home","score":2}}`, " padded ", `"7"`},
		{`{"type":"PlaceOrder","data":{"items":[{"name":"bagel","qty":1}],"email":"ann@example.com"}}`, strings.Repeat("k", 128), "9223372036854775807"},
		{`{"type":"T","data":[1]}`, strings.Repeat("k", 129), "9223372036854775808"},
		{`{"type":"T","data":"x"}`, "tab\tkey", "-1"},
		{`{"type":"T","data": {} }`, "é", `W/""`},
		{`{"type":"T","extra":1}`, "", ""},
		{`{"type":"T"} trailing`, "", ""},
		{`null`, "", ""},
		{" \n", "", ""},
	} {
		f.Add([]byte(s.body), s.key, s.ifMatch)
	}
	f.Fuzz(func(t *testing.T, body []byte, key, ifMatch string) {
		badRequestOnly := func(what string, err error) {
			t.Helper()
			if p, internal := classify(err); internal || p.Code != codeBadRequest {
				t.Fatalf("%s: error %v is %s (internal %v), want bad_request", what, err, p.Code, internal)
			}
		}
		buf := bytes.Clone(body)
		var cb commandBody
		if err := decodeStrict(buf, &cb); err != nil {
			badRequestOnly("decodeStrict", err)
		} else if data, err := commandData(cb.Data); err != nil {
			badRequestOnly("commandData", err)
		} else {
			if !json.Valid(data) || data[0] != '{' {
				t.Fatalf("commandData accepted %q from body %q: not a JSON object", data, body)
			}
			var obj map[string]any
			if err := json.Unmarshal(data, &obj); err != nil || obj == nil {
				t.Fatalf("commandData accepted %q: %v", data, err)
			}
			// The body is fiber's buffer, reused for the next request.
			before := bytes.Clone(data)
			for i := range buf {
				buf[i] = 'X'
			}
			if !bytes.Equal(data, before) {
				t.Fatalf("data %q aliases the request body", before)
			}
		}

		k := strings.TrimSpace(key) // as idempotencyKey reads the header
		if err := checkKey(k); err != nil {
			badRequestOnly("checkKey", err)
		} else {
			if len(k) > maxKeyLength {
				t.Fatalf("checkKey accepted a key of %d bytes", len(k))
			}
			for i := 0; i < len(k); i++ {
				if k[i] < 0x20 || k[i] > 0x7e {
					t.Fatalf("checkKey accepted %q", k)
				}
			}
		}

		ev, err := parseIfMatch(ifMatch)
		switch {
		case err != nil:
			badRequestOnly("parseIfMatch", err)
		case ev == events.AnyVersion:
			if s := strings.TrimSpace(ifMatch); s != "" && s != "*" {
				t.Fatalf("If-Match %q means any version", ifMatch)
			}
		case ev < 0:
			t.Fatalf("If-Match %q gave expected version %d", ifMatch, int64(ev))
		}
	})
}

package transport

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/b6368a97/engine/events"
)

// FuzzQuickFrame: whatever quickFrame accepts, the strict decoder accepts
// too, with the same frame and the same ref; and the frames clients send
// in practice take the quick path.
func FuzzQuickFrame(f *testing.F) {
	for _, s := range []string{
		`{"op":"ping","ref":"1"}`,
		` { "op" : "ping" , "ref" : "1" } `,
		`{"op":"subscribe","stream":"room:lobby","from":0,"user":"ann","epoch":"e1","ref":"sub-1","state":true}`,
		`{"op":"subscribe","stream":"room:lobby","from":18446744073709551615}`,
		`{"op":"subscribe","stream":"room:lobby","from":18446744073709551616}`,
		`{"op":"subscribe","from":007}`,
		`{"op":"subscribe","from":1.0}`,
		`{"op":"subscribe","from":1e3}`,
		`{"op":"subscribe","from":-1}`,
		`{"op":"subscribe","state":false,"state":true}`,
		`{"op":"unsubscribe","stream":"room:lobby","ref":""}`,
		`{"op":"command","stream":"room:lobby","type":"PostMessage","data":{"user":"ann","text":"hi"},"id":"k1","ref":"c1"}`,
		`{"op":"command","stream":"room:lobby","type":"PostMessage","data":{"user":"ann","text":"h\"i\u00e9","n":[1,2.5e3,true,null,{}]},"ref":"c1"}`,
		`{"op":"command","data":null}`,
		`{"op":"command","data":[1,2]}`,
		`{"op":"command","data":"x"}`,
		`{"op":"command","data":12}`,
		`{"op":"command","data":{"a":01}}`,
		`{"op":"command","data":{"a":1,}}`,
		`{"op":"command","data":{"a" 1}}`,
		`{"op":"command","data":{"a":tru}}`,
		`{"op":"refresh","token":"a.b.c","ref":"r"}`,
		`{"op":"ping","ref":null}`,
		`{"op":"ping","ref":7}`,
		`{"op":"ping","ref":"` + strings.Repeat("é", 64) + `"}`,
		`{"op":"ping","ref":"` + strings.Repeat("x", 65) + `"}`,
		`{"op":"ping","ref":"a","extra":1}`,
		`{"op":"ping","ref":"a"} {}`,
		`{"op":"ping","ref":"a"} x`,
		`{"op":"ping","REF":"upper","ref":"lower"}`,
		`{"op":"ping","ref":"\ud800\u2028<b>"}`,
		"{\"op\":\"ping\",\"ref\":\"\xff\"}",
		"{\"op\":\"ping\",\"ref\":\"a\tb\"}",
		`{"op":"ping","ref":"x"`,
		`{"op":"ping",}`,
		`{}`,
		`[{"ref":"in an array"}]`,
		`null`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		qf, qref, ok := quickFrame(data)
		if !ok {
			return
		}
		sf, sref, err := strictFrame(data)
		if err != nil {
			t.Fatalf("quickFrame accepted %q, the strict decoder refused it: %v", data, err)
		}
		sf.Ref = nil
		in := string(data)
		for i := range data {
			data[i] = 0 // the frame's buffer is reused: nothing may alias it
		}
		if !reflect.DeepEqual(qf, sf) {
			t.Fatalf("%q: quick %+v, strict %+v", in, qf, sf)
		}
		if (qref == nil) != (sref == nil) || qref != nil && *qref != *sref {
			t.Fatalf("%q: quick ref %v, strict %v", in, qref, sref)
		}
	})
}

// The frames clients send in practice take the quick path.
func TestQuickFrameCommon(t *testing.T) {
	for _, s := range []string{
		`{"op":"command","stream":"room:bench-1","type":"PostMessage","data":{"user":"bench","text":"xxxxxxxx"},"id":"r-1-2","ref":"2"}`,
		`{"op":"subscribe","stream":"room:lobby","from":12,"epoch":"e","user":"ann","ref":"s1"}`,
		`{"op":"ping"}`,
		`{"op":"command","stream":"room:lobby","type":"PostMessage","data":{"user":"ann","text":"héllo ✓"}}`,
	} {
		if _, _, ok := quickFrame([]byte(s)); !ok {
			t.Errorf("quickFrame refused %s", s)
		}
	}
}

// FuzzAppendAck: an ack frame is byte for byte json.Marshal's.
func FuzzAppendAck(f *testing.F) {
	f.Add("room:lobby", uint64(7), "c1", true)
	f.Add("room:lobby", uint64(0), "", true)
	f.Add("game:x", uint64(1<<63), "<b>&\"\\\u2028\x7f\x01\xff", true)
	f.Add("room:a", uint64(3), "", false)
	f.Fuzz(func(t *testing.T, stream string, version uint64, r string, hasRef bool) {
		var ref *string
		if hasRef {
			ref = &r
		}
		want, err := json.Marshal(subscribedFrame{Op: "ack", Stream: stream, Version: version, Ref: ref})
		if err != nil {
			t.Fatal(err)
		}
		if got := appendAck(nil, stream, version, ref); string(got) != string(want) {
			t.Fatalf("appendAck %s, json.Marshal %s", got, want)
		}
	})
}

// FuzzCommandReply: the reply to POST /streams/{s}/commands is byte for
// byte json.Marshal's, or appendCommandReply gives way when json.Marshal
// fails.
func FuzzCommandReply(f *testing.F) {
	f.Add("room:lobby", uint64(3), "MessagePosted", `{"user":"ann","text":"hi there"}`, "id-1", "c1", "k1", 2)
	f.Add("room:<a>", uint64(0), "T", ` { "a" : [1, 2] , "b":"<&>\u2028 x" } `, "", "", "", 1)
	f.Add("room:a", uint64(1), "T", `{"a":"\u2029\u2028"}`, "i", "", "k", 0)
	f.Add("room:a", uint64(1), "T", `{"a":`, "i", "", "", 1)
	f.Add("room:a", uint64(1), "T", "", "i", "", "", 1)
	f.Fuzz(func(t *testing.T, stream string, version uint64, typ, data, id, corr, cause string, n int) {
		evs := make([]events.Event, (n%4+4)%4)
		for i := range evs {
			evs[i] = events.Event{Stream: stream, Version: version + uint64(i), Position: uint64(i), ID: id, Type: typ,
				Time: time.Unix(1700000000, int64(i)*1e6), Data: json.RawMessage(data), Meta: events.Meta{Correlation: corr, Causation: cause}}
		}
		want, err := json.Marshal(commandReply{Stream: stream, Version: version, Events: evs})
		got, ok := appendCommandReply(nil, stream, version, evs)
		switch {
		case err != nil && ok:
			t.Fatalf("json.Marshal fails (%v), appendCommandReply gave %s", err, got)
		case err == nil && !ok:
			t.Fatalf("appendCommandReply gave way, json.Marshal gave %s", want)
		case ok && string(got) != string(want):
			t.Fatalf("appendCommandReply\n%s\njson.Marshal\n%s", got, want)
		}
	})
}

// FuzzQuickCommandBody: whatever quickCommandBody accepts, decodeStrict
// accepts too, with the same result, and nothing aliases the body.
func FuzzQuickCommandBody(f *testing.F) {
	for _, s := range []string{
		`{"type":"PostMessage","data":{"user":"ann","text":"hi"}}`,
		` { "type" : "EndGame" } `,
		`{"type":"CancelOrder","data":null}`,
		`{"data":[1],"type":"T"}`,
		`{"type":"T","data":"x"}`,
		`{"type":"T","extra":1}`,
		`{"type":"T","type":"U"}`,
		`{"Type":"T"}`,
		`{"type":"T\u00e9"}`,
		`{"type":"T"} {}`,
		`{}`,
		``,
		`[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		q, ok := quickCommandBody(data)
		if !ok {
			return
		}
		var s commandBody
		if err := decodeStrict(data, &s); err != nil {
			t.Fatalf("quickCommandBody accepted %q, decodeStrict refused it: %v", data, err)
		}
		in := string(data)
		for i := range data {
			data[i] = 0
		}
		if !reflect.DeepEqual(q, s) {
			t.Fatalf("%q: quick %+v, strict %+v", in, q, s)
		}
	})
}

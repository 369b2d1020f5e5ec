package actors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"hash/fnv"
	"testing"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

// fingerprintRef is fingerprint as first written, with hash/fnv and
// json.Compact: snapshots keep the sums, so fingerprint must agree with
// it on every input.
func fingerprintRef(cmd decider.Command, expected events.ExpectedVersion) uint64 {
	h := fnv.New64a()
	h.Write([]byte(cmd.Type))
	h.Write([]byte{0})
	var data bytes.Buffer
	if json.Compact(&data, cmd.Data) == nil {
		h.Write(data.Bytes())
	} else {
		h.Write(cmd.Data)
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(expected))
	h.Write(v[:])
	return h.Sum64() | 1
}

func FuzzFingerprint(f *testing.F) {
	for _, s := range []string{
		``, `{}`, ` { "a" : [ 1 , 2 ] , "b" : "x y\t\\" \\\\" } `, `{"user":"ann","text":"hi"}`,
		`{"a":`, `nul`, `"str"`, "{\"a\":\"\xff\"}", `{"a":"\u00e9 \n"}`, " \n\t{}\r ", `{"a":1}x`,
	} {
		f.Add("PostMessage", []byte(s), int64(-1))
		f.Add("", []byte(s), int64(7))
	}
	f.Fuzz(func(t *testing.T, typ string, data []byte, expected int64) {
		cmd := decider.Command{Type: typ, Data: data}
		if got, want := fingerprint(cmd, events.ExpectedVersion(expected)), fingerprintRef(cmd, events.ExpectedVersion(expected)); got != want {
			t.Fatalf("fingerprint(%q, %q, %d) = %x, want %x", typ, data, expected, got, want)
		}
	})
}

func BenchmarkFingerprint(b *testing.B) {
	cmd := decider.Command{Type: "PostMessage", Data: json.RawMessage(`{"user":"bench","text":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`)}
	b.ReportAllocs()
	for range b.N {
		fingerprint(cmd, events.AnyVersion)
	}
}

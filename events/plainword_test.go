package events

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// TestPlainWord checks the eight-byte fast path of the string scan
// against a byte-by-byte check, on words built around the bytes that
// matter.
func TestPlainWord(t *testing.T) {
	special := []byte{0, 0x1f, 0x20, 0x21, '"', '#', '\\', ']', 0x5b, 0x7f, 0x80, 0xa2, 0xdc, 0xff, 'a'}
	rng := rand.New(rand.NewPCG(1, 2))
	var w [8]byte
	for range 1_000_000 {
		for i := range w {
			w[i] = special[rng.IntN(len(special))]
		}
		want := true
		for _, c := range w {
			if c == '"' || c == '\\' || c < 0x20 {
				want = false
			}
		}
		if got := plainWord(binary.LittleEndian.Uint64(w[:])); got != want {
			t.Fatalf("plainWord(%q) = %v, want %v", w, got, want)
		}
	}
}

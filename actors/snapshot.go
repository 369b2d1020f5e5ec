package actors

import (
	"bytes"
	"encoding/binary"
	"errors"
)

// A snapshot's Data is the kind's state (MarshalState, JSON) alone, or, when
// the stream's command window remembers ids, an envelope holding the window
// too, so that a repeated command id whose events precede the snapshot is
// still recognised, with its fingerprint, after the actor is reactivated
// (cmdWindow):
//
//	snapMagic
//	uvarint size, then size bytes of window:
//	    uvarint count, then count records, oldest first:
//	    uvarint len(id), id, uvarint last, uvarint n, 8 bytes sum (big endian)
//	the state, to the end
//
// The magic begins with a 0 byte, which no JSON text begins with, so a
// snapshot written before the envelope existed (or without a window) still
// loads as the bare state. A runtime that does not know the envelope finds
// the state unreadable and replays the whole stream: slower, never wrong.
// Binary and decoded lazily: an activation keeps the window as one string
// (every id is a substring of it) and decodes it only when the actor first
// needs it (a command with an id, an event with a Causation after the
// snapshot); a snapshot taken before that writes it back as it was. At most
// IdempotencyWindow records of up to 160 bytes each.
const snapMagic = "\x00engine-snapshot-1\n"

var errSnapshotEnvelope = errors.New("snapshot envelope is corrupt")

// encodeSnapshot wraps a state with the window w, or returns the state as
// it is when w remembers nothing.
func encodeSnapshot(state []byte, w *cmdWindow) []byte {
	saved, undecoded := w.undecoded() // written back as it was
	var win []byte
	if !undecoded {
		if w.len() == 0 {
			return state
		}
		win = make([]byte, 0, binary.MaxVarintLen64+w.len()*64)
		win = binary.AppendUvarint(win, uint64(w.len()))
		w.each(func(id string, rec cmdRecord) {
			win = binary.AppendUvarint(win, uint64(len(id)))
			win = append(win, id...)
			win = binary.AppendUvarint(win, rec.last)
			win = binary.AppendUvarint(win, uint64(rec.n))
			win = binary.BigEndian.AppendUint64(win, rec.sum)
		})
	}
	size := len(saved) + len(win) // one of them is empty
	b := make([]byte, 0, len(snapMagic)+binary.MaxVarintLen64+size+len(state))
	b = append(b, snapMagic...)
	b = binary.AppendUvarint(b, uint64(size))
	b = append(b, saved...)
	b = append(b, win...)
	return append(b, state...)
}

// decodeSnapshot splits a snapshot's data into the state and the encoded
// window (nil without the envelope: the data is the state alone). The
// window is checked whole, so that it decodes later without error
// (cmdWindow.loadSaved).
func decodeSnapshot(data []byte) (state, win []byte, err error) {
	rest, ok := bytes.CutPrefix(data, []byte(snapMagic))
	if !ok {
		return data, nil, nil
	}
	size, k := binary.Uvarint(rest)
	if k <= 0 || size > uint64(len(rest)-k) {
		return nil, nil, errSnapshotEnvelope
	}
	win, state = rest[k:k+int(size)], rest[k+int(size):]
	if err := parseWindow(win, nil); err != nil {
		return nil, nil, err
	}
	return state, win, nil
}

// parseWindow reads an encoded window, calling fn (when not nil) with each
// record, oldest first. With a string window the ids are substrings of it.
func parseWindow[T ~string | ~[]byte](win T, fn func(id T, rec cmdRecord)) error {
	off := 0
	uv := func() (uint64, bool) {
		v, k := uvarint(win[off:])
		if k <= 0 {
			return 0, false
		}
		off += k
		return v, true
	}
	count, ok := uv()
	if !ok || count > uint64(len(win)) {
		return errSnapshotEnvelope
	}
	for range count {
		idLen, ok := uv()
		if !ok || idLen > uint64(len(win)-off) {
			return errSnapshotEnvelope
		}
		id := win[off : off+int(idLen)]
		off += int(idLen)
		last, ok1 := uv()
		n, ok2 := uv()
		if !ok1 || !ok2 || len(win)-off < 8 || n > last {
			return errSnapshotEnvelope
		}
		var sum uint64
		for _, c := range []byte(win[off : off+8]) {
			sum = sum<<8 | uint64(c)
		}
		off += 8
		rec := cmdRecord{last: last, n: int(n), sum: sum}
		if n > 0 {
			rec.first = last - n + 1
		}
		if fn != nil {
			fn(id, rec)
		}
	}
	if off != len(win) {
		return errSnapshotEnvelope
	}
	return nil
}

// uvarint is binary.Uvarint for a string or a byte slice.
func uvarint[T ~string | ~[]byte](b T) (uint64, int) {
	var x uint64
	var shift uint
	for i := 0; i < len(b) && i < binary.MaxVarintLen64; i++ {
		c := b[i]
		if c < 0x80 {
			if i == binary.MaxVarintLen64-1 && c > 1 {
				return 0, -(i + 1) // overflow
			}
			return x | uint64(c)<<shift, i + 1
		}
		x |= uint64(c&0x7f) << shift
		shift += 7
	}
	return 0, 0
}

package actors

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"time"
)

// derivedID is the id of event i of the command cmdID on stream: a UUID
// (version 8, "custom") made of a SHA-256 of the three. A repeated command
// therefore presents the store with the same ids, which the store answers
// as an idempotent retry instead of a second append.
func derivedID(stream, cmdID string, i int) string {
	var buf [128]byte // the usual stream and id fit: no allocation
	in := append(buf[:0], stream...)
	in = append(in, 0)
	in = append(in, cmdID...)
	in = append(in, 0)
	in = strconv.AppendInt(in, int64(i), 10)
	b := sha256.Sum256(in)
	var u [16]byte
	copy(u[:], b[:])
	u[6] = u[6]&0x0f | 0x80 // version 8
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	return formatUUID(u)
}

// newID is a UUIDv7: 48 bits of Unix milliseconds then random bits, so ids
// sort roughly by creation time, which keeps store indexes local.
func newID(now time.Time) string {
	var u [16]byte
	ms := uint64(now.UnixMilli())
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], ms)
	copy(u[:6], ts[2:])
	rand.Read(u[6:]) // never fails (crypto/rand documents it)
	u[6] = u[6]&0x0f | 0x70
	u[8] = u[8]&0x3f | 0x80
	return formatUUID(u)
}

func formatUUID(u [16]byte) string {
	var s [36]byte
	hex.Encode(s[0:8], u[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], u[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], u[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], u[8:10])
	s[23] = '-'
	hex.Encode(s[24:], u[10:])
	return string(s[:])
}

package pebblestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/b6368a97/engine/events"
)

// Key layout. Each keyspace starts with one byte so that a keyspace is one
// contiguous key range and iterators can be bounded to it.
//
//	'e' stream 0x00 BE64(version)  -> BE64(position)   stream index: one stream is one sequential range
//	'p' BE64(position)             -> event value      the global log, in commit order
//	'i' id                         -> stream 0x00 BE64(version)   idempotency index
//	's' stream                     -> uvarint(version) snapshot-data
//	'q' stream                     -> (empty)          pending index
//	'm' name                       -> meta: "format" (format version), "epoch" (the store's epoch)
//
// Each event's bytes are written once, under its position: the global log
// is what cluster nodes follow (ReadAll, Follow), and a sequential read of
// it stays one pass over consecutive keys. A stream key holds only the
// event's position. Positions grow with versions within a stream, so a
// stream read walks the stream's index range with one iterator and
// resolves the positions with a second one over the log, whose seeks only
// ever move forward: consecutive positions (events appended together, or
// a stream that had the log to itself) are one Next each, and Pebble
// turns a forward SeekGE near the current key into a few Nexts. The
// opposite choice, the value under the stream key and a pointer in the
// log, made a sequential read of the log one random Get per event (27-35k
// events/s against 450-600k on 200,000 events, docs/benchmarks.md).
//
// Format 1 (before the stream index) held the full value under both keys;
// Open rewrites such a store's stream keys in place (upgrade.go).
//
// Stream ids never contain 0x00 (events.ParseStreamID allows only
// [a-z:A-Za-z0-9_.-]), so 'e' stream 0x00 is a prefix of exactly that
// stream's keys and 'e' stream 0x01 bounds it from above.
const (
	prefixEvent   = 'e'
	prefixPos     = 'p'
	prefixID      = 'i'
	prefixSnap    = 's'
	prefixPending = 'q'
	prefixMeta    = 'm'
)

// formatVersion is stored under metaFormatKey; Open upgrades a store of
// format 1 (upgrade.go) and refuses any other format instead of
// misreading it.
const formatVersion = 2

var metaFormatKey = []byte{prefixMeta, 'f', 'o', 'r', 'm', 'a', 't'}

// metaEpochKey holds the store's epoch (events.Store.Epoch) as its text,
// written by the open that creates the store, in the same synced batch as
// the format marker. It lives in the meta keyspace, whose names the store
// alone chooses, so no stream, position or event id can produce it. A
// store written before epochs existed gets one at its next open.
var metaEpochKey = []byte{prefixMeta, 'e', 'p', 'o', 'c', 'h'}

// errCorrupt marks a stored value that does not decode.
var errCorrupt = errors.New("pebblestore: corrupt record")

// streamPrefix appends 'e' stream 0x00 to dst.
func streamPrefix(dst []byte, stream string) []byte {
	dst = append(dst, prefixEvent)
	dst = append(dst, stream...)
	return append(dst, 0)
}

// streamUpper appends the exclusive upper bound of a stream's keys.
func streamUpper(dst []byte, stream string) []byte {
	dst = append(dst, prefixEvent)
	dst = append(dst, stream...)
	return append(dst, 1)
}

// eventKey appends the key of one event of a stream.
func eventKey(dst []byte, stream string, version uint64) []byte {
	return binary.BigEndian.AppendUint64(streamPrefix(dst, stream), version)
}

// posKey appends the global-log key of a position.
func posKey(dst []byte, pos uint64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, prefixPos), pos)
}

func idKey(dst []byte, id string) []byte {
	return append(append(dst, prefixID), id...)
}

func snapKey(dst []byte, stream string) []byte {
	return append(append(dst, prefixSnap), stream...)
}

func pendingKey(dst []byte, stream string) []byte {
	return append(append(dst, prefixPending), stream...)
}

// idRef is the value of an id-index entry: the stream key of the event
// without its 'e', i.e. stream 0x00 BE64(version).
func idRef(dst []byte, stream string, version uint64) []byte {
	dst = append(dst, stream...)
	dst = append(dst, 0)
	return binary.BigEndian.AppendUint64(dst, version)
}

// streamRef is the value of a stream key: the event's position.
func streamRef(dst []byte, pos uint64) []byte {
	return binary.BigEndian.AppendUint64(dst, pos)
}

// streamRefLen is the size of a stream key's value.
const streamRefLen = 8

// parseStreamRef reads the position a stream key refers to.
func parseStreamRef(v []byte) (uint64, error) {
	if len(v) != streamRefLen {
		return 0, fmt.Errorf("%w: stream index value of %d bytes", errCorrupt, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// parseIDRef splits an id-index value.
func parseIDRef(v []byte) (stream []byte, version uint64, err error) {
	if len(v) < 9 || v[len(v)-9] != 0 {
		return nil, 0, fmt.Errorf("%w: id index value of %d bytes", errCorrupt, len(v))
	}
	return v[:len(v)-9], binary.BigEndian.Uint64(v[len(v)-8:]), nil
}

// Event values. Position, version and time sit at fixed offsets so that
// the caller of Append encodes the whole value on its own goroutine and the
// single writer only patches in the position and version it assigns; a
// reader can also peek at the position without decoding the rest.
//
//	[0]      valueTag
//	[1:9]    BE64 position
//	[9:17]   BE64 version
//	[17:25]  BE64 time, Unix milliseconds
//	uvarint-length-prefixed: stream, id, type, meta.correlation, meta.causation
//	the rest: data (a JSON object)
const (
	valueTag    = 1
	offPosition = 1
	offVersion  = 9
	offTime     = 17
	headerLen   = 25
)

// encodedLen is the size of e's value with the given stream.
func encodedLen(stream string, e *events.Event) int {
	n := headerLen
	for _, s := range [...]string{stream, e.ID, e.Type, e.Meta.Correlation, e.Meta.Causation} {
		n += uvarintLen(uint64(len(s))) + len(s)
	}
	data := events.NormalizeData(e.Data)
	return n + len(data)
}

// encodeEvent appends e's value with position and version left zero (see
// patchValue) and returns the extended slice and the offset of the data.
// e.Time must already be normalised.
func encodeEvent(dst []byte, stream string, e *events.Event) ([]byte, int) {
	dst = append(dst, valueTag)
	dst = append(dst, make([]byte, 16)...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.Time.UnixMilli()))
	for _, s := range [...]string{stream, e.ID, e.Type, e.Meta.Correlation, e.Meta.Causation} {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	off := len(dst)
	return append(dst, events.NormalizeData(e.Data)...), off
}

// patchValue writes the position and version the writer assigned.
func patchValue(v []byte, pos, version uint64) {
	binary.BigEndian.PutUint64(v[offPosition:], pos)
	binary.BigEndian.PutUint64(v[offVersion:], version)
}

// valuePosition peeks at a value's position.
func valuePosition(v []byte) (uint64, error) {
	if len(v) < headerLen || v[0] != valueTag {
		return 0, fmt.Errorf("%w: event value of %d bytes", errCorrupt, len(v))
	}
	return binary.BigEndian.Uint64(v[offPosition:]), nil
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// decoder turns values into Events for one read call. It amortises
// allocations: event types and streams repeat, so they are interned for
// the call, and data and ids are carved out of shared chunks rather than
// allocated one by one.
type decoder struct {
	types   map[string]string
	streams map[string]string
	// stream, when set, is the stream every value is expected to belong to
	// (ReadStream), so its string is reused instead of interned.
	stream string
	arena  []byte
}

// arenaChunk is the size of the chunks that data and ids are copied into.
// A chunk stays alive while any event carved from it does, so it is kept
// small relative to what one page of events holds.
const arenaChunk = 32 << 10

// copyBytes copies b into the arena. The returned slice has its capacity
// capped so that an append by the caller cannot overwrite a neighbour.
func (d *decoder) copyBytes(b []byte) []byte {
	if len(b) > arenaChunk/4 {
		out := make([]byte, len(b))
		copy(out, b)
		return out
	}
	if cap(d.arena)-len(d.arena) < len(b) {
		d.arena = make([]byte, 0, arenaChunk)
	}
	start := len(d.arena)
	d.arena = append(d.arena, b...)
	return d.arena[start:len(d.arena):len(d.arena)]
}

func (d *decoder) intern(m *map[string]string, b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if *m == nil {
		*m = make(map[string]string, 8)
	}
	if s, ok := (*m)[string(b)]; ok { // no allocation for the lookup
		return s
	}
	if len(*m) >= 1024 { // many distinct values: stop growing the map
		return string(b)
	}
	s := string(b)
	(*m)[s] = s
	return s
}

// decode parses one stored event value.
func (d *decoder) decode(v []byte) (events.Event, error) {
	if len(v) < headerLen || v[0] != valueTag {
		return events.Event{}, fmt.Errorf("%w: event value of %d bytes", errCorrupt, len(v))
	}
	e := events.Event{
		Position: binary.BigEndian.Uint64(v[offPosition:]),
		Version:  binary.BigEndian.Uint64(v[offVersion:]),
		Time:     time.UnixMilli(int64(binary.BigEndian.Uint64(v[offTime:]))).UTC(),
	}
	rest := v[headerLen:]
	var fields [5][]byte
	for i := range fields {
		n, k := binary.Uvarint(rest)
		if k <= 0 || uint64(len(rest)-k) < n {
			return events.Event{}, fmt.Errorf("%w: truncated event value", errCorrupt)
		}
		fields[i] = rest[k : k+int(n)]
		rest = rest[k+int(n):]
	}
	if d.stream != "" && string(fields[0]) == d.stream {
		e.Stream = d.stream
	} else {
		e.Stream = d.intern(&d.streams, fields[0])
	}
	e.ID = string(fields[1])
	e.Type = d.intern(&d.types, fields[2])
	if len(fields[3]) > 0 {
		e.Meta.Correlation = string(fields[3])
	}
	if len(fields[4]) > 0 {
		e.Meta.Causation = string(fields[4])
	}
	e.Data = d.copyBytes(rest)
	return e, nil
}

// encodeSnapshot is the value of a snapshot key.
func encodeSnapshot(version uint64, data []byte) []byte {
	v := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64+len(data)), version)
	return append(v, data...)
}

func decodeSnapshotVersion(v []byte) (uint64, int, error) {
	version, k := binary.Uvarint(v)
	if k <= 0 {
		return 0, 0, fmt.Errorf("%w: snapshot value", errCorrupt)
	}
	return version, k, nil
}

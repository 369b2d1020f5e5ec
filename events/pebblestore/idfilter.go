package pebblestore

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
)

// idFilter answers "is this event id certainly not stored?" without
// touching Pebble. Every append must check that its ids are new, and for a
// new id a Pebble Get has to search every memtable, which measured as the
// largest single cost of an append (see docs/benchmarks.md); the filter
// answers in a few cache-line reads.
//
// It is a scalable Bloom filter: a list of blocked Bloom filters (each key
// sets bits in one 512-bit block, so a probe costs one cache miss per
// part), each twice the capacity of the previous, new ids going into the
// last. It never gives a false negative; a false positive only costs the
// Get it would have cost anyway.
//
// It is filled from two sides: Open starts a scan of the id index (so Open
// itself stays fast), and every append adds its ids in its pre-check,
// before they are assigned, so well before the watermark passes them
// (precheckIDs). The filter is usable (ready) once the
// scan has finished. If it would grow past maxIDs it retires for good and
// every check goes to Pebble again.
type idFilter struct {
	maxIDs  int64
	ready   atomic.Bool
	retired atomic.Bool

	mu    sync.Mutex // serialises growth
	parts atomic.Pointer[[]*bloomPart]
}

// bloomPart is one blocked Bloom filter. Bits are set with atomic OR, so
// adds (writer, scan) and tests (callers) run concurrently.
type bloomPart struct {
	words    []atomic.Uint64 // blocks of 8 words = 512 bits
	blocks   uint64
	capacity int64
	n        atomic.Int64
}

const (
	bloomFirstCapacity = 1 << 20
	bloomBitsPerID     = 16 // ~0.1% false positives per full part with 11 probes
	bloomProbes        = 11
)

func newIDFilter(maxIDs int64) *idFilter {
	f := &idFilter{maxIDs: maxIDs}
	parts := []*bloomPart{newBloomPart(bloomFirstCapacity)}
	f.parts.Store(&parts)
	return f
}

func newBloomPart(capacity int64) *bloomPart {
	blocks := uint64(capacity*bloomBitsPerID+511) / 512
	return &bloomPart{words: make([]atomic.Uint64, blocks*8), blocks: blocks, capacity: capacity}
}

// idSeed seeds hashID. One seed for the process: requests hash their ids
// when they are built, before they meet a store.
var idSeed = maphash.MakeSeed()

// hashID is the hash of an event id that the id filter and the writer's
// recent-id map work with.
func hashID(id string) uint64 { return maphash.String(idSeed, id) }

// add records id. Safe for concurrent use.
func (f *idFilter) add(id string) { f.addHash(hashID(id)) }

func (f *idFilter) addHash(h uint64) { f.testAndAdd(h) }

// testAndAdd adds h and reports whether it was certainly absent before:
// absentHash and addHash in one pass over the block, which a new id
// touches only once.
func (f *idFilter) testAndAdd(h uint64) (absent bool) {
	if f.retired.Load() {
		return false
	}
	m := probeMasks(h)
	parts := *f.parts.Load()
	absent = f.ready.Load()
	last := parts[len(parts)-1]
	for _, p := range parts[:len(parts)-1] {
		if absent && p.has(h, &m) {
			absent = false
		}
	}
	if h>>countShift&(countSample-1) == 0 && last.n.Add(countSample) > last.capacity {
		full := last
		if last = f.grow(full); last == nil {
			return false
		}
		if absent && full.has(h, &m) {
			absent = false
		}
		last.n.Add(countSample)
	}
	if last.testAndSet(h, &m) {
		absent = false
	}
	return absent && !f.retired.Load()
}

// A part counts its ids by sampling: one id in countSample, picked by
// hash bits the probes do not use, adds countSample. Every add on every
// goroutine would otherwise write one shared counter; the estimate is
// within a few percent of a million ids, which is all growth needs.
const (
	countSample = 64
	countShift  = 18
)

// grow appends a part twice as big as full, unless another add did already
// or the filter reached maxIDs (then it retires and returns nil).
func (f *idFilter) grow(full *bloomPart) *bloomPart {
	f.mu.Lock()
	defer f.mu.Unlock()
	parts := *f.parts.Load()
	if last := parts[len(parts)-1]; last != full {
		return last
	}
	total := 2 * full.capacity
	for _, p := range parts {
		total += p.capacity
	}
	if total > f.maxIDs {
		f.retire()
		return nil
	}
	next := append(append([]*bloomPart(nil), parts...), newBloomPart(2*full.capacity))
	f.parts.Store(&next)
	return next[len(next)-1]
}

// retire gives the filter up: checks go to Pebble from now on, and the
// memory is released.
func (f *idFilter) retire() {
	f.retired.Store(true)
	f.ready.Store(false)
	empty := []*bloomPart{newBloomPart(1)}
	f.parts.Store(&empty)
}

// absent reports whether id is certainly not stored. It is false while the
// scan runs, after the filter retired, and for ids that may be stored.
func (f *idFilter) absent(id string) bool { return f.absentHash(hashID(id)) }

// absentHash is absent for an id's hashID.
func (f *idFilter) absentHash(h uint64) bool {
	if !f.ready.Load() {
		return false
	}
	m := probeMasks(h)
	for _, p := range *f.parts.Load() {
		if p.has(h, &m) {
			return false
		}
	}
	return !f.retired.Load()
}

// The high 32 bits of a key's hash pick its block; the low bits give the
// probes within it by double hashing (a + i*b mod 512, b odd). masks holds
// the probes' bits for each of the block's 8 words, the same in every part.
type masks [8]uint64

func probeMasks(h uint64) (m masks) {
	a, b := h&511, (h>>9)&511|1
	for i := range uint64(bloomProbes) {
		bit := (a + i*b) & 511
		m[bit/64] |= 1 << (bit % 64)
	}
	return m
}

func (p *bloomPart) block(h uint64) []atomic.Uint64 {
	base := ((h >> 32) * p.blocks >> 32) * 8
	return p.words[base : base+8 : base+8]
}

// has reports whether every bit of m is set in h's block.
func (p *bloomPart) has(h uint64, m *masks) bool {
	w := p.block(h)
	for i := range m {
		if w[i].Load()&m[i] != m[i] {
			return false
		}
	}
	return true
}

// testAndSet sets m's bits in h's block, writing only the words that lack
// some, and reports whether every bit was set already.
func (p *bloomPart) testAndSet(h uint64, m *masks) bool {
	w := p.block(h)
	had := true
	for i := range m {
		if w[i].Load()&m[i] != m[i] {
			w[i].Or(m[i])
			had = false
		}
	}
	return had
}

// scan adds every id of the id index to f and then marks it ready. It
// stops early, leaving f not ready, when ctx is done. Ids written while it
// runs are added by their appends' pre-checks, so the union covers every
// stored id.
func (f *idFilter) scan(ctx context.Context, db *pebble.DB) error {
	it, err := db.NewIter(&pebble.IterOptions{
		LowerBound: []byte{prefixID},
		UpperBound: []byte{prefixID + 1},
	})
	if err != nil {
		return fmt.Errorf("scan ids: %w", err)
	}
	defer it.Close()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		f.addHash(maphash.Bytes(idSeed, it.Key()[1:]))
		if n++; n%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("scan ids: %w", err)
	}
	if !f.retired.Load() {
		f.ready.Store(true)
	}
	return nil
}

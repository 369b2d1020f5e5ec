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

func (f *idFilter) addHash(h uint64) {
	if f.retired.Load() {
		return
	}
	parts := *f.parts.Load()
	last := parts[len(parts)-1]
	if last.n.Add(1) > last.capacity {
		last = f.grow(last)
		if last == nil {
			return
		}
		last.n.Add(1)
	}
	last.set(h)
}

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
	for _, p := range *f.parts.Load() {
		if p.test(h) {
			return false
		}
	}
	return !f.retired.Load()
}

// The high 32 bits of a key's hash pick its block; the low bits give the
// probes within it by double hashing (a + i*b mod 512, b odd).
func (p *bloomPart) set(h uint64) {
	base := ((h >> 32) * p.blocks >> 32) * 8
	a, b := h&511, (h>>9)&511|1
	for i := range uint64(bloomProbes) {
		bit := (a + i*b) & 511
		p.words[base+bit/64].Or(1 << (bit % 64))
	}
}

func (p *bloomPart) test(h uint64) bool {
	base := ((h >> 32) * p.blocks >> 32) * 8
	a, b := h&511, (h>>9)&511|1
	for i := range uint64(bloomProbes) {
		bit := (a + i*b) & 511
		if p.words[base+bit/64].Load()&(1<<(bit%64)) == 0 {
			return false
		}
	}
	return true
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

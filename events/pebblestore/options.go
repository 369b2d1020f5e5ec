package pebblestore

import (
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
)

// pebbleOptions tunes Pebble for an append-only event log: a steady stream
// of small synced batches, keys that arrive in order within each keyspace,
// point lookups for ids that are almost always absent, and long sequential
// scans.
func pebbleOptions(cfg Config) *pebble.Options {
	o := &pebble.Options{
		// The newest on-disk format: columnar blocks and the current WAL.
		FormatMajorVersion: pebble.FormatNewest,
		// Every append is acknowledged only after its WAL sync; the WAL is
		// never disabled and every commit goes through it.
		DisableWAL: false,
		// Larger memtables than the 4 MiB default: at ~400 bytes written
		// per event (the value, a stream index entry and an id entry, each
		// with its key and skiplist node), 4 MiB would flush several
		// times a second under load, and every flush is an L0 file that
		// compactions must then merge. 64 MiB flushes about once a second
		// at 100k events/s and absorbs bursts.
		MemTableSize: uint64(cfg.MemTableSize),
		// Let a second memtable fill while one flushes (and a third queue)
		// before writes stall: flushes compete with the writer for the two
		// cores, and a stall would show up directly as append latency.
		MemTableStopWritesThreshold: 4,
		// L0 absorbs bursts of flushes before compactions catch up; a
		// higher stop threshold than the default 12 trades some read
		// amplification for never stalling acknowledged-write latency.
		L0CompactionThreshold: 4,
		L0StopWritesThreshold: 24,
		// Base level sized to a few memtables so L0->Lbase compactions stay
		// proportionate to flush size.
		LBaseMaxBytes: 256 << 20,
		CacheSize:     cfg.CacheSize,
		Logger:        slogAdapter{cfg.Logger},
		// With MustExist, open checks first (mustExist); this catches a
		// store removed in between.
		ErrorIfNotExists: cfg.MustExist,
	}
	// Compactions run in the background beside the writer; on a small
	// machine more than two would only steal CPU from appends.
	o.CompactionConcurrencyRange = func() (int, int) { return 1, 2 }
	for i := range o.Levels {
		// Bloom filters on every level: each append looks up its event ids
		// in the id index, and those lookups almost always miss, which a
		// filter answers without reading a data block.
		o.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
		o.Levels[i].FilterType = pebble.TableFilter
		// 32 KiB blocks instead of 4 KiB: scans dominate reads, and bigger
		// blocks mean fewer block fetches and better compression of the
		// JSON payloads.
		o.Levels[i].BlockSize = 32 << 10
	}
	// Larger files than the 2 MiB default for L0: fewer files per flush
	// of a 64 MiB memtable.
	o.TargetFileSizes[0] = 16 << 20
	o.EnsureDefaults()
	return o
}

// slogAdapter routes Pebble's logging into the store's slog.Logger. Pebble
// is chatty at Info level (every flush and compaction), so Info becomes
// Debug.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Infof(format string, args ...any) {
	a.l.Debug("pebble: " + fmt.Sprintf(format, args...))
}

func (a slogAdapter) Errorf(format string, args ...any) {
	a.l.Error("pebble: " + fmt.Sprintf(format, args...))
}

// Fatalf is called when Pebble cannot continue (corruption, a failed WAL
// write). Pebble expects it not to return; panicking keeps the stack,
// where Pebble's own default calls os.Exit.
func (a slogAdapter) Fatalf(format string, args ...any) {
	msg := "pebble: " + fmt.Sprintf(format, args...)
	a.l.Error(msg)
	panic(msg)
}

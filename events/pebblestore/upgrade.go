package pebblestore

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// formatUpgrading1 is the format marker while Open rewrites a format-1
// store: a build that reads only format 1 refuses it rather than misread
// the stream keys already rewritten, and this build resumes the upgrade.
const formatUpgrading1 = 0x102

// upgradeBatch is how many stream keys one upgrade batch rewrites; tests
// lower it.
var upgradeBatch = 4096

// upgradeHook, when set (tests), runs after each upgrade batch is
// committed; an error stops the upgrade there, as a crash would.
var upgradeHook func(rewritten int) error

// upgradeFormat1 rewrites a store of format 1, in which every stream key
// held a full copy of its event's value, to format 2, in which it holds
// the event's position (codec.go). The log keys already hold every value,
// so nothing is lost whenever the upgrade stops: it first marks the store
// as being upgraded (synced), then rewrites the stream keys in batches,
// skipping those already rewritten (a position is 8 bytes, a format-1
// value at least headerLen), and writes the format-2 marker last, after
// everything before it is synced. Interrupted, it starts over at the next
// Open and only redoes what is left. marker is the format found.
func upgradeFormat1(db *pebble.DB, marker uint64) error {
	if marker == 1 {
		if err := db.Set(metaFormatKey, binary.AppendUvarint(nil, formatUpgrading1), pebble.Sync); err != nil {
			return err
		}
	}
	it, err := db.NewIter(&pebble.IterOptions{
		LowerBound: []byte{prefixEvent},
		UpperBound: []byte{prefixEvent + 1},
	})
	if err != nil {
		return err
	}
	defer it.Close()
	b := db.NewBatch()
	defer func() { b.Close() }()
	n, total := 0, 0
	var ref []byte
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		if len(v) == streamRefLen {
			continue // rewritten by an interrupted upgrade
		}
		pos, err := valuePosition(v)
		if err != nil {
			return fmt.Errorf("stream key %x: %w", it.Key(), err)
		}
		ref = streamRef(ref[:0], pos)
		if err := b.Set(it.Key(), ref, nil); err != nil {
			return err
		}
		if n++; n == upgradeBatch {
			if err := b.Commit(pebble.NoSync); err != nil {
				return err
			}
			total += n
			n = 0
			b.Close()
			b = db.NewBatch()
			if upgradeHook != nil {
				if err := upgradeHook(total); err != nil {
					return err
				}
			}
		}
	}
	if err := it.Error(); err != nil {
		return err
	}
	// The marker rides the last batch, synced with everything before it
	// (the WAL is synced in order).
	if err := b.Set(metaFormatKey, binary.AppendUvarint(nil, formatVersion), nil); err != nil {
		return err
	}
	return b.Commit(pebble.Sync)
}

package pebblestore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
)

// repairWindow is how far below the last position repairTail looks for a
// gap: the most positions Config.MaxInFlightEvents lets be assigned and not
// durable at once.
const repairWindow = 1 << 16

// repairTail makes the log gap-free again after a crash.
//
// The writer puts batches into the WAL in position order, and Pebble
// replays the WAL in order up to its first damaged record, so a crash
// leaves the log gap-free. This is the guard for a log that is not, which
// the writer does not produce: positions committed above one that is
// not. None of those was acknowledged: an append is acknowledged
// once every position up to its own is durable. They are removed here, before the store
// serves anything, with their stream and id entries, so that the log,
// the stream heads and the id index agree again; a caller that did not
// hear back retries them like any unacknowledged append.
//
// While the store runs, at most MaxInFlightEvents positions are in flight
// (or one append alone), so every position more than repairWindow below
// the last one is durable, and only the last repairWindow positions are
// scanned. Each is one key; a clean store costs that scan, a few
// milliseconds.
func repairTail(db *pebble.DB, log *slog.Logger) error {
	last, err := lastPosition(db)
	if err != nil || last == 0 {
		return err
	}
	from := uint64(1)
	if last > repairWindow {
		from = last - repairWindow + 1
	}
	var lower, upper [9]byte
	it, err := db.NewIter(&pebble.IterOptions{
		LowerBound: posKey(lower[:0], from),
		UpperBound: posKey(upper[:0], last+1),
	})
	if err != nil {
		return err
	}
	defer it.Close()
	gap := uint64(0)
	next := from
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != 9 {
			return fmt.Errorf("%w: log key %x", errCorrupt, k)
		}
		if p := binary.BigEndian.Uint64(k[1:]); p != next {
			gap = next
			break
		}
		next++
	}
	if err := it.Error(); err != nil {
		return err
	}
	if gap == 0 {
		return nil
	}

	// Delete every event from the gap up.
	b := db.NewBatch()
	defer b.Close()
	n := 0
	var key [9]byte
	var kb []byte
	for ok := it.SeekGE(posKey(key[:0], gap)); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		var d decoder
		e, err := d.decode(v)
		if err != nil {
			return err
		}
		pos := binary.BigEndian.Uint64(it.Key()[1:])
		if e.Position != pos {
			return fmt.Errorf("%w: position %d holds the event of position %d", errCorrupt, pos, e.Position)
		}
		if err := b.Delete(it.Key(), nil); err != nil {
			return err
		}
		// The stream and id entries were written in the event's batch;
		// delete them only where they still refer to it.
		kb = eventKey(kb[:0], e.Stream, e.Version)
		if ref, ok, err := get(db, kb); err != nil {
			return err
		} else if ok && bytes.Equal(ref, streamRef(nil, pos)) {
			if err := b.Delete(kb, nil); err != nil {
				return err
			}
		}
		kb = idKey(kb[:0], e.ID)
		if ref, ok, err := get(db, kb); err != nil {
			return err
		} else if ok && bytes.Equal(ref, idRef(nil, e.Stream, e.Version)) {
			if err := b.Delete(kb, nil); err != nil {
				return err
			}
		}
		n++
	}
	if err := it.Error(); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("repair: %w", err)
	}
	log.Warn("pebblestore: removed unacknowledged events committed above a gap in the log",
		"gap", gap, "removed", n, "last", last)
	return nil
}

// get returns a copy of key's value, and whether it exists.
func get(db *pebble.DB, key []byte) ([]byte, bool, error) {
	v, closer, err := db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer closer.Close()
	return bytes.Clone(v), true, nil
}

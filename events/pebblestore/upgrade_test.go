package pebblestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/b6368a97/engine/events"
)

// writeFormat1 writes a store the way format 1 did (a full copy of each
// value under its stream key and its log key, an id entry, the format-1
// marker and an epoch): streams streams of perStream events, appended
// round-robin one event at a time so that the streams interleave in the
// log, plus a snapshot and a pending entry. It returns the events written,
// in log order.
func writeFormat1(t *testing.T, dir string, streams, perStream int) []events.Event {
	t.Helper()
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	var all []events.Event
	rawDB(t, dir, func(db *pebble.DB) error {
		b := db.NewBatch()
		defer b.Close()
		if err := b.Set(metaFormatKey, binary.AppendUvarint(nil, 1), nil); err != nil {
			return err
		}
		if err := b.Set(metaEpochKey, []byte("epoch-of-format-1"), nil); err != nil {
			return err
		}
		pos := uint64(0)
		for v := 1; v <= perStream; v++ {
			for st := range streams {
				pos++
				stream := fmt.Sprintf("room:f1-%d", st)
				e := events.Event{
					ID: fmt.Sprintf("f1-%d-%d", st, v), Type: "Old", Time: at.Add(time.Duration(pos) * time.Millisecond),
					Data: fmt.Appendf(nil, `{"st":%d,"v":%d}`, st, v),
					Meta: events.Meta{Correlation: "c", Causation: fmt.Sprint(pos)},
				}
				val, _ := encodeEvent(nil, stream, &e)
				patchValue(val, pos, uint64(v))
				if err := b.Set(eventKey(nil, stream, uint64(v)), val, nil); err != nil {
					return err
				}
				if err := b.Set(posKey(nil, pos), val, nil); err != nil {
					return err
				}
				if err := b.Set(idKey(nil, e.ID), idRef(nil, stream, uint64(v)), nil); err != nil {
					return err
				}
				e.Stream, e.Version, e.Position = stream, uint64(v), pos
				all = append(all, e)
			}
		}
		if err := b.Set(snapKey(nil, "room:f1-0"), encodeSnapshot(2, []byte(`{"snap":1}`)), nil); err != nil {
			return err
		}
		if err := b.Set(pendingKey(nil, "room:f1-1"), nil, nil); err != nil {
			return err
		}
		return b.Commit(pebble.Sync)
	})
	return all
}

func readFormat(t *testing.T, dir string) uint64 {
	t.Helper()
	var f uint64
	rawDB(t, dir, func(db *pebble.DB) error {
		v, closer, err := db.Get(metaFormatKey)
		if err != nil {
			return err
		}
		defer closer.Close()
		f, _ = binary.Uvarint(v)
		return nil
	})
	return f
}

// checkUpgraded checks that a store upgraded from writeFormat1 holds
// exactly what was written, and takes appends and retries as any store.
func checkUpgraded(t *testing.T, s *Store, want []events.Event, streams, perStream int) {
	t.Helper()
	ctx := t.Context()
	if s.Epoch() != "epoch-of-format-1" {
		t.Fatalf("epoch %q, want the format-1 store's", s.Epoch())
	}
	all := checkLog(t, s)
	if len(all) != len(want) {
		t.Fatalf("log holds %d events, %d were written", len(all), len(want))
	}
	for i, e := range all {
		w := want[i]
		if e.Stream != w.Stream || e.ID != w.ID || e.Type != w.Type || e.Version != w.Version || e.Position != w.Position ||
			!e.Time.Equal(w.Time) || string(e.Data) != string(w.Data) || e.Meta != w.Meta {
			t.Fatalf("log[%d] = %+v, want %+v", i, e, w)
		}
	}
	infos, err := s.Streams(ctx, "room", "", 0)
	if err != nil || len(infos) != streams {
		t.Fatalf("Streams: %d streams, %v; want %d", len(infos), err, streams)
	}
	for _, in := range infos {
		if in.Version != uint64(perStream) {
			t.Fatalf("Streams: %+v, want version %d", in, perStream)
		}
	}
	if snap, err := s.LoadSnapshot(ctx, "room:f1-0"); err != nil || snap.Version != 2 || string(snap.Data) != `{"snap":1}` {
		t.Fatalf("LoadSnapshot: %+v, %v", snap, err)
	}
	if p, err := s.Pending(ctx); err != nil || len(p) != 1 || p[0] != "room:f1-1" {
		t.Fatalf("Pending: %v, %v", p, err)
	}
	// A retry of an old append is recognised and answered from the
	// upgraded layout.
	old := want[0]
	res, err := s.Append(ctx, old.Stream, events.AnyVersion, []events.Event{{ID: old.ID, Type: old.Type, Data: old.Data}})
	if err != nil || !res.Duplicate || res.Events[0].Position != old.Position || string(res.Events[0].Data) != string(old.Data) {
		t.Fatalf("retry of %s: %+v, %v", old.ID, res, err)
	}
	res, err = s.Append(ctx, old.Stream, events.Exactly(uint64(perStream)), testEvents("new", 2))
	if err != nil || res.Events[0].Position != uint64(len(want)+1) || res.Events[0].Version != uint64(perStream+1) {
		t.Fatalf("append after the upgrade: %+v, %v", res, err)
	}
	checkLog(t, s)
}

// TestUpgradeFormat1: Open rewrites a format-1 store to format 2 and
// reads everything back.
func TestUpgradeFormat1(t *testing.T) {
	const streams, perStream = 7, 30
	dir := t.TempDir()
	want := writeFormat1(t, dir, streams, perStream)
	s := mustOpen(t, dir, testConfig(t))
	checkUpgraded(t, s, want, streams, perStream)
	closeStore(t, s)
	if f := readFormat(t, dir); f != formatVersion {
		t.Fatalf("format after the upgrade: %d, want %d", f, formatVersion)
	}
}

// TestUpgradeFormat1Interrupted: an upgrade stopped after some batches
// leaves a store that a format-1 build refuses (the marker says so) and
// that the next Open finishes upgrading, losing nothing.
func TestUpgradeFormat1Interrupted(t *testing.T) {
	const streams, perStream = 5, 40
	dir := t.TempDir()
	want := writeFormat1(t, dir, streams, perStream)

	stop := errors.New("stopped")
	defer func(n int) { upgradeBatch, upgradeHook = n, nil }(upgradeBatch)
	upgradeBatch = 16
	upgradeHook = func(n int) error {
		if n >= 48 {
			return stop
		}
		return nil
	}
	if s, err := Open(dir, testConfig(t)); !errors.Is(err, stop) {
		if err == nil {
			_ = s.Close()
		}
		t.Fatalf("Open with the upgrade stopped: %v, want %v", err, stop)
	}
	if f := readFormat(t, dir); f != formatUpgrading1 {
		t.Fatalf("format after an interrupted upgrade: %#x, want %#x", f, formatUpgrading1)
	}
	rewritten := 0
	rawDB(t, dir, func(db *pebble.DB) error {
		it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixEvent}, UpperBound: []byte{prefixEvent + 1}})
		if err != nil {
			return err
		}
		defer it.Close()
		for ok := it.First(); ok; ok = it.Next() {
			if len(it.Value()) == streamRefLen {
				rewritten++
			}
		}
		return it.Error()
	})
	if rewritten != 48 {
		t.Fatalf("%d stream keys rewritten before the stop, want 48", rewritten)
	}

	upgradeHook = nil
	s := mustOpen(t, dir, testConfig(t))
	checkUpgraded(t, s, want, streams, perStream)
}

// TestOpenRefusesUnknownFormat: a format this build does not know fails
// Open instead of being misread.
func TestOpenRefusesUnknownFormat(t *testing.T) {
	dir := t.TempDir()
	closeStore(t, mustOpen(t, dir, testConfig(t)))
	rawDB(t, dir, func(db *pebble.DB) error {
		return db.Set(metaFormatKey, binary.AppendUvarint(nil, formatVersion+1), pebble.Sync)
	})
	if s, err := Open(dir, testConfig(t)); err == nil {
		_ = s.Close()
		t.Fatal("Open of an unknown format: want an error")
	}
}

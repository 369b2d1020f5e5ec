package events

import (
	"context"
	"fmt"
	"iter"
	"strconv"
)

// ExpectedVersion is the optimistic-concurrency condition of an append:
// an exact version (Exactly(v)), NoStream (the stream has no events), or
// AnyVersion (no check).
type ExpectedVersion int64

const (
	// AnyVersion appends whatever version the stream is at.
	AnyVersion ExpectedVersion = -1
	// NoStream requires that the stream has no events yet. It equals
	// Exactly(0).
	NoStream ExpectedVersion = 0
)

// Exactly requires the stream to be at version v.
func Exactly(v uint64) ExpectedVersion { return ExpectedVersion(v) }

func (e ExpectedVersion) String() string {
	switch {
	case e == AnyVersion:
		return "any"
	case e == NoStream:
		return "no stream"
	case e < 0:
		return "invalid(" + strconv.FormatInt(int64(e), 10) + ")"
	}
	return strconv.FormatInt(int64(e), 10)
}

// Matches reports whether a stream at version current satisfies e.
func (e ExpectedVersion) Matches(current uint64) bool {
	return e == AnyVersion || (e >= 0 && uint64(e) == current)
}

// AppendResult describes events as they were stored.
type AppendResult struct {
	// Events are the appended events with Stream, Version, Position and
	// Time filled in. For an idempotent retry they are the events stored by
	// the first append.
	Events []Event
	// Duplicate is true when every id was already stored: nothing new was
	// written and Events describes the original append.
	Duplicate bool
}

// Version is the version of the last event of the append.
func (r AppendResult) Version() uint64 {
	if len(r.Events) == 0 {
		return 0
	}
	return r.Events[len(r.Events)-1].Version
}

// Position is the global position of the last event of the append.
func (r AppendResult) Position() uint64 {
	if len(r.Events) == 0 {
		return 0
	}
	return r.Events[len(r.Events)-1].Position
}

// Snapshot is a stream's state serialised by its owner at a version.
type Snapshot struct {
	Stream  string
	Version uint64
	Data    []byte
}

// StreamInfo is one stream of a listing (Store.Streams).
type StreamInfo struct {
	Stream  string
	Version uint64
}

// ValidateKind checks a stream kind as ParseStreamID does: 1–32 lower-case
// letters. Errors match ErrInvalidStream.
func ValidateKind(kind string) error {
	_, err := ParseStreamID(kind + ":x")
	if err != nil {
		return Refuse(ErrInvalidStream, "stream kind %q must be 1-32 lower-case letters", Clip(kind, 40))
	}
	return nil
}

// Store is the durable event log. Every implementation passes the
// conformance suite in events/storetest.
//
// Guarantees, for every method (Epoch, which takes no context and cannot
// fail, only the first):
//   - Safe for concurrent use by any number of goroutines.
//   - Honours ctx: a call whose context is already done returns ctx.Err()
//     (wrapped) and has no effect; a call cancelled while waiting may or may
//     not have taken effect, exactly like a lost reply, and a retry with the
//     same event ids is safe.
//   - After Close, every call returns an error matching ErrClosed.
//   - A stream id that does not parse returns ErrInvalidStream and has no
//     effect.
type Store interface {
	// Epoch identifies the store's data: an id created together with the
	// data (NewEpoch: 16 random bytes as 32 lower-case hex digits) and, in
	// a durable store, written with it and read back on every later open.
	// It is stable for the life of the data (across calls, restarts and
	// reopens) and new when the data is new: a new or wiped data directory
	// gets a new epoch, and so does an import into a fresh store (the
	// importer's epoch, not the exporter's). A file-level copy of the data
	// carries the epoch it was copied with. Clients compare epochs to
	// notice that versions they remember belong to other data
	// (docs/protocol.md, "Epochs"). Epoch is cheap (no I/O after open)
	// and does not fail, also after Close; its value is 1 to MaxEpochLen
	// visible ASCII characters, so that it travels unescaped in JSON, URL
	// queries and headers.
	Epoch() string

	// Append writes events to the end of one stream, atomically: all of them
	// or none. It returns only once the events are durable (a crash of the
	// process or the machine right after the return loses nothing).
	//
	// The store assigns each event its Stream, consecutive Versions starting
	// at the stream's current version + 1, and global Positions that are
	// strictly increasing in commit order with no gaps; it sets Time to the
	// current UTC time (millisecond precision) when it is zero.
	//
	// If the stream is not at the expected version Append stores nothing and
	// returns a *WrongExpectedVersionError (errors.Is ErrWrongExpectedVersion)
	// carrying the current version. Of racing appends with the same exact
	// expected version exactly one succeeds.
	//
	// Idempotency: if every event id of the batch is already stored in this
	// stream, Append stores nothing and returns the original events with
	// Duplicate set, whatever the expected version. If only some are, or they
	// belong to another stream, it returns ErrDuplicateID.
	//
	// Bad input stores nothing: no events is ErrNoEvents; an event failing
	// Event.Validate is ErrInvalidEvent or ErrTooLarge; two events with the
	// same id in one batch is ErrInvalidEvent.
	Append(ctx context.Context, stream string, expected ExpectedVersion, events []Event) (AppendResult, error)

	// ReadStream returns up to limit events of one stream with Version >
	// after, in version order. A limit ≤ 0 means no limit. A stream with no
	// events returns an empty slice and no error. Only durable events are
	// returned.
	ReadStream(ctx context.Context, stream string, after uint64, limit int) ([]Event, error)

	// ReadAll returns up to limit events of the global log with Position >
	// after, in position order, with no gaps. A limit ≤ 0 means no limit.
	// Only durable events are returned: a reader never sees an event that a
	// crash could still take back.
	ReadAll(ctx context.Context, after uint64, limit int) ([]Event, error)

	// StreamVersion returns the stream's current (durable) version, 0 for a
	// stream with no events.
	StreamVersion(ctx context.Context, stream string) (uint64, error)

	// Head returns the position of the last durable event, 0 for an empty
	// store.
	Head(ctx context.Context) (uint64, error)

	// Follow calls fn with every event of the global log with Position >
	// after, in position order, first those already stored (catch-up), then
	// each new one as soon as it is durable (live), with no gap and no
	// duplicate while appends race. fn runs on Follow's goroutine, one call
	// at a time; Follow returns when ctx is done (ctx.Err()), when fn returns
	// an error (that error), or when the store closes (ErrClosed).
	Follow(ctx context.Context, after uint64, fn func(Event) error) error

	// SaveSnapshot stores the latest snapshot of a stream, replacing an older
	// one. A snapshot at a lower version than the stored one is ignored.
	// A snapshot beyond the stream's version is ErrInvalidEvent.
	SaveSnapshot(ctx context.Context, snap Snapshot) error

	// LoadSnapshot returns the latest snapshot of a stream, or an error
	// matching ErrNotFound when there is none.
	LoadSnapshot(ctx context.Context, stream string) (Snapshot, error)

	// SetPending adds a stream to (pending true) or removes it from the
	// index of streams that still owe background work. The index lets a
	// restarted engine find unfinished work without scanning the log. It is
	// durable when SetPending returns.
	SetPending(ctx context.Context, stream string, pending bool) error

	// Pending lists the streams in the pending index, sorted.
	Pending(ctx context.Context) ([]string, error)

	// Streams lists the streams of one kind that have (durable) events, in
	// byte order of their ids, with their current versions: those whose id
	// is strictly greater than after (any string; "" or anything below
	// "kind:" starts at the first stream of the kind), at most limit of
	// them (≤ 0: no limit). A kind that is not 1–32 lower-case letters is
	// ErrInvalidStream. Paging: pass the last id of a page as the next
	// page's after.
	Streams(ctx context.Context, kind string, after string, limit int) ([]StreamInfo, error)

	// Close waits for in-flight appends to finish, ends every Follow with
	// ErrClosed and releases the store. Closing twice is a no-op.
	Close() error
}

// DefaultPageSize is how many events the iterators read per call.
const DefaultPageSize = 512

// StreamReader is the one method IterStream needs.
type StreamReader interface {
	ReadStream(ctx context.Context, stream string, after uint64, limit int) ([]Event, error)
}

// LogReader is the one method IterAll needs.
type LogReader interface {
	ReadAll(ctx context.Context, after uint64, limit int) ([]Event, error)
}

// IterStream yields the events of one stream with Version > after, in
// order, reading a page at a time. It stops at the first error, which it
// yields with a zero Event.
func IterStream(ctx context.Context, r StreamReader, stream string, after uint64) iter.Seq2[Event, error] {
	return pages(after, func(after uint64) ([]Event, error) {
		page, err := r.ReadStream(ctx, stream, after, DefaultPageSize)
		if err != nil {
			return nil, fmt.Errorf("read %s after %d: %w", stream, after, err)
		}
		return page, nil
	}, func(e Event) uint64 { return e.Version })
}

// IterAll yields the events of the global log with Position > after, in
// order, reading a page at a time, up to the head at the time each page is
// read. It stops at the first error, which it yields with a zero Event.
func IterAll(ctx context.Context, r LogReader, after uint64) iter.Seq2[Event, error] {
	return pages(after, func(after uint64) ([]Event, error) {
		page, err := r.ReadAll(ctx, after, DefaultPageSize)
		if err != nil {
			return nil, fmt.Errorf("read log after %d: %w", after, err)
		}
		return page, nil
	}, func(e Event) uint64 { return e.Position })
}

// pages yields the events of the pages read after the cursor, which key
// takes from each event, until a short page or the first error.
func pages(after uint64, read func(after uint64) ([]Event, error), key func(Event) uint64) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		for {
			page, err := read(after)
			if err != nil {
				yield(Event{}, err)
				return
			}
			for _, e := range page {
				if !yield(e, nil) {
					return
				}
				after = key(e)
			}
			if len(page) < DefaultPageSize {
				return
			}
		}
	}
}

package storetest_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/b6368a97/engine/events"
	"github.com/b6368a97/engine/events/memstore"
	"github.com/b6368a97/engine/events/storetest"
)

// TestRunMemstore runs the suite against the reference store.
func TestRunMemstore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) events.Store { return memstore.New() })
}

// TestRunDurable runs the persistence tests against a memstore that
// outlives its handles: each "directory" keeps one memstore, and opening
// it again returns a new handle on the same data. It checks the durable
// tests themselves before a disk store runs them.
func TestRunDurable(t *testing.T) {
	var mu sync.Mutex
	dirs := make(map[string]*memstore.Store)
	storetest.RunDurable(t, func(t *testing.T, dir string) events.Store {
		mu.Lock()
		defer mu.Unlock()
		inner, ok := dirs[dir]
		if !ok {
			inner = memstore.New()
			dirs[dir] = inner
			t.Cleanup(func() { _ = inner.Close() })
		}
		return newHandle(inner)
	})
}

// handle is one open "store" on a shared memstore: Close ends this handle
// only, the way closing a disk store leaves its files.
type handle struct {
	inner *memstore.Store
	// mu is held shared by every call and exclusively by Close, so Close
	// waits for calls in flight.
	mu      sync.RWMutex
	closed  bool
	stopped context.Context // done once Close ran; ends Follow
	stop    context.CancelFunc
}

func newHandle(inner *memstore.Store) *handle {
	ctx, cancel := context.WithCancel(context.Background())
	return &handle{inner: inner, stopped: ctx, stop: cancel}
}

func (h *handle) enter() error {
	h.mu.RLock()
	if h.closed {
		h.mu.RUnlock()
		return events.ErrClosed
	}
	return nil
}

// Epoch is the shared memstore's: the data's, whichever handle asks.
func (h *handle) Epoch() string { return h.inner.Epoch() }

func (h *handle) Append(ctx context.Context, s string, exp events.ExpectedVersion, evs []events.Event) (events.AppendResult, error) {
	if err := h.enter(); err != nil {
		return events.AppendResult{}, err
	}
	defer h.mu.RUnlock()
	return h.inner.Append(ctx, s, exp, evs)
}

func (h *handle) ReadStream(ctx context.Context, s string, after uint64, limit int) ([]events.Event, error) {
	if err := h.enter(); err != nil {
		return nil, err
	}
	defer h.mu.RUnlock()
	return h.inner.ReadStream(ctx, s, after, limit)
}

func (h *handle) ReadAll(ctx context.Context, after uint64, limit int) ([]events.Event, error) {
	if err := h.enter(); err != nil {
		return nil, err
	}
	defer h.mu.RUnlock()
	return h.inner.ReadAll(ctx, after, limit)
}

func (h *handle) StreamVersion(ctx context.Context, s string) (uint64, error) {
	if err := h.enter(); err != nil {
		return 0, err
	}
	defer h.mu.RUnlock()
	return h.inner.StreamVersion(ctx, s)
}

func (h *handle) Head(ctx context.Context) (uint64, error) {
	if err := h.enter(); err != nil {
		return 0, err
	}
	defer h.mu.RUnlock()
	return h.inner.Head(ctx)
}

func (h *handle) Follow(ctx context.Context, after uint64, fn func(events.Event) error) error {
	if err := h.enter(); err != nil {
		return err
	}
	// Not held while following: Close must be able to end it.
	h.mu.RUnlock()
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	unhook := context.AfterFunc(h.stopped, cancel)
	defer unhook()
	err := h.inner.Follow(fctx, after, fn)
	if errors.Is(err, context.Canceled) && ctx.Err() == nil && h.stopped.Err() != nil {
		return events.ErrClosed
	}
	return err
}

func (h *handle) SaveSnapshot(ctx context.Context, snap events.Snapshot) error {
	if err := h.enter(); err != nil {
		return err
	}
	defer h.mu.RUnlock()
	return h.inner.SaveSnapshot(ctx, snap)
}

func (h *handle) LoadSnapshot(ctx context.Context, s string) (events.Snapshot, error) {
	if err := h.enter(); err != nil {
		return events.Snapshot{}, err
	}
	defer h.mu.RUnlock()
	return h.inner.LoadSnapshot(ctx, s)
}

func (h *handle) SetPending(ctx context.Context, s string, on bool) error {
	if err := h.enter(); err != nil {
		return err
	}
	defer h.mu.RUnlock()
	return h.inner.SetPending(ctx, s, on)
}

func (h *handle) Pending(ctx context.Context) ([]string, error) {
	if err := h.enter(); err != nil {
		return nil, err
	}
	defer h.mu.RUnlock()
	return h.inner.Pending(ctx)
}

func (h *handle) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	h.stop()
	return nil
}

func (h *handle) Streams(ctx context.Context, kind, after string, limit int) ([]events.StreamInfo, error) {
	if err := h.enter(); err != nil {
		return nil, err
	}
	defer h.mu.RUnlock()
	return h.inner.Streams(ctx, kind, after, limit)
}

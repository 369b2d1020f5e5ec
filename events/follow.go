package events

import (
	"context"
	"fmt"
	"sync"
)

// Watermark is the position of the last durable event, with a way to wait
// for it to move. Stores advance it after each durable commit, cap reads at
// it, and build Follow on it. The zero value is ready to use at position 0.
type Watermark struct {
	mu     sync.Mutex
	pos    uint64
	moved  chan struct{} // closed and replaced on every advance
	closed bool
}

// Load returns the current position.
func (w *Watermark) Load() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pos
}

// Advance moves the watermark forward to pos and wakes every waiter. A pos
// at or below the current one is ignored.
func (w *Watermark) Advance(pos uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if pos <= w.pos {
		return
	}
	w.pos = pos
	if w.moved != nil {
		close(w.moved)
		w.moved = nil
	}
}

// Close wakes every waiter for good; Wait then returns ErrClosed.
func (w *Watermark) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	if w.moved != nil {
		close(w.moved)
		w.moved = nil
	}
}

// Wait blocks until the watermark is beyond after and returns it, or
// returns ctx's error, or ErrClosed once Close was called.
func (w *Watermark) Wait(ctx context.Context, after uint64) (uint64, error) {
	for {
		w.mu.Lock()
		if w.closed {
			w.mu.Unlock()
			return 0, ErrClosed
		}
		if w.pos > after {
			pos := w.pos
			w.mu.Unlock()
			return pos, nil
		}
		if w.moved == nil {
			w.moved = make(chan struct{})
		}
		moved := w.moved
		w.mu.Unlock()
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-moved:
		}
	}
}

// Follow implements Store.Follow for any store that can read its log in
// pages and advances w after each durable commit: it reads pages after the
// last delivered position until it is at the watermark, then waits for the
// watermark to move. Positions have no gaps, so resuming from the last
// delivered position neither skips nor repeats an event.
func Follow(ctx context.Context, r LogReader, w *Watermark, after uint64, fn func(Event) error) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		page, err := r.ReadAll(ctx, after, DefaultPageSize)
		if err != nil {
			return fmt.Errorf("follow after %d: %w", after, err)
		}
		for _, e := range page {
			if err := fn(e); err != nil {
				return err
			}
			after = e.Position
		}
		if len(page) == DefaultPageSize {
			continue
		}
		if _, err := w.Wait(ctx, after); err != nil {
			return err
		}
	}
}

// Package counter counts work in flight and lets a caller wait, within a
// context, until none is left: the one implementation behind the
// runtime's actor and reader tracking, the server's request and
// connection accounting and a connection's commands in flight.
//
// Concurrency: every method is safe for concurrent use. The zero value is
// ready to use and must not be copied after first use.
package counter

import (
	"context"
	"sync"
)

// Counter is a count of work in flight.
type Counter struct {
	mu   sync.Mutex
	n    int
	zero chan struct{} // closed when n reaches 0; nil while no one waits
}

// Add counts one more.
func (c *Counter) Add() {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
}

// Done counts one less.
func (c *Counter) Done() {
	c.mu.Lock()
	c.n--
	if c.n == 0 && c.zero != nil {
		close(c.zero)
		c.zero = nil
	}
	c.mu.Unlock()
}

// N is the current count.
func (c *Counter) N() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// Wait returns once the count is zero, or ctx's error if ctx ends first.
func (c *Counter) Wait(ctx context.Context) error {
	c.mu.Lock()
	if c.n == 0 {
		c.mu.Unlock()
		return nil
	}
	if c.zero == nil {
		c.zero = make(chan struct{})
	}
	z := c.zero
	c.mu.Unlock()
	select {
	case <-z:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

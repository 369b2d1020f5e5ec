package counter

import (
	"context"
	"errors"
	"testing"
)

func TestCounter(t *testing.T) {
	var c Counter
	if err := c.Wait(context.Background()); err != nil {
		t.Fatalf("Wait on zero: %v", err)
	}
	c.Add()
	c.Add()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait with work in flight and a cancelled context = %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait(context.Background()) }()
	c.Done()
	select {
	case err := <-done:
		t.Fatalf("Wait returned %v with one still in flight", err)
	default:
	}
	c.Done()
	if err := <-done; err != nil {
		t.Fatalf("Wait = %v", err)
	}
	if c.N() != 0 {
		t.Fatalf("N = %d", c.N())
	}
}

package client

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Refresh replaces the connection's token, and a refreshed token is the
// one the next reconnect presents; a refused one changes nothing.
func TestRefresh(t *testing.T) {
	f := newFakeServer(t)
	f.SetTokens(map[string]int64{"t1": 1000, "t2": 2000})
	var st states
	o := fastOptions(&st)
	o.Token = "t1"
	c := dial(t, f, o)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()

	exp, err := c.Refresh(ctx, "t2")
	if err != nil || !exp.Equal(time.Unix(2000, 0)) {
		t.Fatalf("Refresh: %v, %v; want exp 2000", exp, err)
	}
	if _, err := c.Refresh(ctx, "forged"); ErrorCode(err) != "unauthorized" {
		t.Fatalf("Refresh with a bad token: %v, want unauthorized", err)
	}
	if _, err := c.Refresh(ctx, ""); err == nil {
		t.Fatal("Refresh with no token succeeded")
	}

	// Only t2 is valid from now on: the reconnect must present it.
	f.SetTokens(map[string]int64{"t2": 2000})
	f.DropAll(websocket.StatusPolicyViolation)
	waitUntil(t, "the reconnect", func() bool { return st.count(StateReconnected) == 1 })
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.Upgrades(); !slices.Equal(got, []string{"t1", "t2"}) {
		t.Fatalf("upgrades presented %q, want t1 then t2", got)
	}
}

// A refresh whose reply is lost with the connection is sent again on the
// next one; the reconnect presents the old token, which is still the one
// in force.
func TestRefreshAcrossReconnect(t *testing.T) {
	f := newFakeServer(t)
	f.SetTokens(map[string]int64{"t1": 1000, "t2": 2000})
	var st states
	o := fastOptions(&st)
	o.Token = "t1"
	c := dial(t, f, o)
	f.LoseAck("refresh", 1)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if exp, err := c.Refresh(ctx, "t2"); err != nil || exp.Unix() != 2000 {
		t.Fatalf("Refresh across a reconnect: %v, %v", exp, err)
	}
	if st.count(StateReconnected) != 1 {
		t.Fatalf("%d reconnects, want 1", st.count(StateReconnected))
	}
	if got := f.Upgrades(); !slices.Equal(got, []string{"t1", "t1"}) {
		t.Fatalf("upgrades presented %q, want t1 twice", got)
	}
}

// TokenSource is asked before every connection attempt; its error fails
// Dial, and fails a reconnect attempt, which is retried.
func TestTokenSource(t *testing.T) {
	f := newFakeServer(t)
	f.SetTokens(map[string]int64{"t1": 1000})
	var calls, failures atomic.Int32
	var fail atomic.Bool
	tokens := []string{"t1", "t2", "t3"}
	o := fastOptions(nil)
	o.Token = "ignored"
	o.TokenSource = func(ctx context.Context) (string, error) {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		if fail.Load() {
			failures.Add(1)
			return "", errors.New("identity provider down")
		}
		n := calls.Add(1)
		return tokens[min(int(n), len(tokens))-1], nil
	}
	c := dial(t, f, o)

	f.SetTokens(map[string]int64{"t2": 2000})
	fail.Store(true)
	f.DropAll(websocket.StatusPolicyViolation)
	// Attempts fail while the source does; the client keeps trying.
	waitUntil(t, "failed attempts", func() bool { return failures.Load() >= 2 })
	fail.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.Upgrades(); !slices.Equal(got, []string{"t1", "t2"}) {
		t.Fatalf("upgrades presented %q, want t1 then t2", got)
	}

	t.Run("Dial fails with the source's error", func(t *testing.T) {
		o := fastOptions(nil)
		o.TokenSource = func(context.Context) (string, error) { return "", errors.New("no token for you") }
		if _, err := Dial(context.Background(), f.URL(), o); err == nil || err.Error() != "token source: no token for you" {
			t.Fatalf("Dial: %v", err)
		}
	})
}

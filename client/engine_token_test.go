package client_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/b6368a97/engine/client"
	"github.com/b6368a97/engine/transport"
	"github.com/b6368a97/engine/transport/transporttest"
)

// Against the real server, whose clock stands still one second before the
// first token's exp: Refresh keeps a connection past that exp, and a
// connection closed for an expired token comes back with TokenSource's
// next token.
func TestTokensAgainstEngine(t *testing.T) {
	secret := []byte("client-token-secret")
	const left = time.Second
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	now := exp.Add(-left)
	h := transporttest.New(t, func(c *transport.Config) {
		c.Auth.JWTSecret = secret
		c.Now = func() time.Time { return now }
	})
	mint := func(sub string, exp time.Time) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": sub, "exp": exp.Unix()}).SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	t.Run("refresh", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), transporttest.Timeout)
		defer cancel()
		var disconnects atomic.Int32
		start := time.Now()
		c, err := client.Dial(ctx, h.WSBase+"/ws", client.Options{
			Token: mint("ann", exp),
			OnState: func(sc client.StateChange) {
				if sc.State == client.StateDisconnected {
					disconnects.Add(1)
				}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Refresh(ctx, mint("bob", exp.Add(time.Hour))); client.ErrorCode(err) != "forbidden" {
			t.Fatalf("Refresh as another user: %v, want forbidden", err)
		}
		got, err := c.Refresh(ctx, mint("ann", exp.Add(time.Hour)))
		if err != nil || !got.Equal(exp.Add(time.Hour)) {
			t.Fatalf("Refresh: %v, %v", got, err)
		}
		<-time.After(time.Until(start.Add(2 * left))) // outlive the first token
		if err := c.Ping(ctx); err != nil {
			t.Fatal(err)
		}
		if n := disconnects.Load(); n != 0 {
			t.Fatalf("%d disconnects", n)
		}
	})

	t.Run("token source after expiry", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), transporttest.Timeout)
		defer cancel()
		var mu sync.Mutex
		var changes []client.StateChange
		reconnected := make(chan struct{})
		var calls atomic.Int32
		c, err := client.Dial(ctx, h.WSBase+"/ws", client.Options{
			TokenSource: func(context.Context) (string, error) {
				if calls.Add(1) == 1 {
					return mint("ann", exp), nil
				}
				return mint("ann", exp.Add(time.Hour)), nil
			},
			ReconnectMin: time.Millisecond,
			ReconnectMax: 10 * time.Millisecond,
			OnState: func(sc client.StateChange) {
				mu.Lock()
				changes = append(changes, sc)
				mu.Unlock()
				if sc.State == client.StateReconnected {
					close(reconnected)
				}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		select {
		case <-reconnected:
		case <-ctx.Done():
			t.Fatal("no reconnect after the token expired")
		}
		mu.Lock()
		defer mu.Unlock()
		if len(changes) != 3 || changes[1].State != client.StateDisconnected || websocket.CloseStatus(changes[1].Err) != websocket.StatusPolicyViolation {
			t.Fatalf("states %v, want connected, disconnected by 1008, reconnected", changes)
		}
		if err := c.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

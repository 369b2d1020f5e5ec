package transport_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/b6368a97/engine/transport"
	"github.com/b6368a97/engine/transport/transporttest"
)

var wsSecret = []byte("ws-token-secret")

// mint signs an HS256 token for sub expiring at exp; streams nil leaves
// the claim out.
func mint(t testing.TB, sub string, exp time.Time, streams []string) string {
	t.Helper()
	c := map[string]any{"sub": sub, "exp": exp.Unix()}
	if streams != nil {
		c["streams"] = streams
	}
	return transporttest.Sign(t, wsSecret, c)
}

// expiringServer is a server with auth on whose clock stands still at
// left before exp: its tokens are valid whenever they are checked, and a
// connection's expiry timer fires left after the connection starts.
func expiringServer(t *testing.T, left time.Duration) (*transporttest.Harness, time.Time) {
	t.Helper()
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	now := exp.Add(-left)
	h := transporttest.New(t, func(c *transport.Config) {
		c.Auth.JWTSecret = wsSecret
		c.Now = func() time.Time { return now }
	})
	return h, exp
}

func wantError(t *testing.T, f map[string]any, ref any, code, message string) {
	t.Helper()
	if f["op"] != "error" || f["ref"] != ref || f["code"] != code || (message != "" && f["message"] != message) {
		t.Fatalf("got %v, want an error %s (%q) with ref %v", f, code, message, ref)
	}
}

// A connection whose token expires gets an error frame (unauthorized,
// "token expired") and close 1008 at exp; a refused refresh changes
// nothing.
func TestWSTokenExpires(t *testing.T) {
	const left = time.Second
	h, exp := expiringServer(t, left)
	ann := mint(t, "ann", exp, []string{"room:*"})

	t.Run("ws", func(t *testing.T) {
		t.Parallel()
		start := time.Now()
		w := h.Dial(t, "/ws?token="+ann)
		w.Send(`{"op":"subscribe","stream":"room:a","ref":"s"}`)
		if f := w.FrameOp("subscribed", "presence"); f["ref"] != "s" {
			t.Fatalf("got %v", f)
		}
		w.Send(fmt.Sprintf(`{"op":"refresh","token":%q,"ref":"r"}`, mint(t, "bob", exp.Add(time.Hour), nil)))
		wantError(t, w.FrameOp("error", "presence"), "r", "forbidden", "the new token is for another user")

		f := w.FrameOp("error", "presence")
		wantError(t, f, nil, "unauthorized", "token expired")
		if _, ok := f["ref"]; ok {
			t.Fatalf("the expiry error carries a ref: %v", f)
		}
		code, reason := w.CloseStatus()
		if code != websocket.StatusPolicyViolation || reason != "token expired" {
			t.Fatalf("closed with %d %q, want 1008 token expired", code, reason)
		}
		if d := time.Since(start); d < left {
			t.Fatalf("closed after %s, before the token expired (%s)", d, left)
		}
	})

	t.Run("chat-room", func(t *testing.T) {
		t.Parallel()
		w := h.Dial(t, "/chat-room?token="+ann)
		if got := w.Text(); got != "error: unauthorized: token expired" {
			t.Fatalf("got %q", got)
		}
		if code, reason := w.CloseStatus(); code != websocket.StatusPolicyViolation || reason != "token expired" {
			t.Fatalf("closed with %d %q, want 1008 token expired", code, reason)
		}
	})

	t.Run("live-score", func(t *testing.T) {
		t.Parallel()
		w := h.Dial(t, "/live-score?token="+ann)
		if code, reason := w.CloseStatus(); code != websocket.StatusPolicyViolation || reason != "token expired" {
			t.Fatalf("closed with %d %q, want 1008 token expired", code, reason)
		}
	})

	t.Cleanup(func() {
		transporttest.Eventually(t, "connections closed", func() bool { return h.Metric("engine_connections") == 0 })
	})
}

// A refresh before exp keeps the connection working past the first
// token's exp, under the new token's claims, until the new token expires;
// invalid refreshes are answered with an error and keep the old token.
func TestWSTokenRefresh(t *testing.T) {
	const left = time.Second
	h, exp := expiringServer(t, left)
	start := time.Now()
	w := h.Dial(t, "/ws?token="+mint(t, "ann", exp, []string{"room:*"}))
	w.Send(`{"op":"subscribe","stream":"room:a","ref":"s"}`)
	w.FrameOp("subscribed", "presence")

	// The new token expires 2 s after the first; it also allows game:*.
	exp2 := exp.Add(2 * time.Second)
	w.Send(fmt.Sprintf(`{"op":"refresh","token":%q,"ref":"ok"}`, mint(t, "ann", exp2, []string{"room:*", "game:*"})))
	if f := w.FrameOp("refreshed", "presence"); f["ref"] != "ok" || f["exp"] != float64(exp2.Unix()) {
		t.Fatalf("got %v, want refreshed with exp %d", f, exp2.Unix())
	}

	// Refusals leave the new token in force (its expiry is checked below).
	for _, c := range []struct {
		name, frame, code, message string
	}{
		{"no token", `{"op":"refresh","ref":"r"}`, "bad_request", "token is required"},
		{"token not a string", `{"op":"refresh","token":7,"ref":"r"}`, "bad_request", ""},
		{"garbage", `{"op":"refresh","token":"garbage","ref":"r"}`, "unauthorized", "invalid token: malformed"},
		{"expired", fmt.Sprintf(`{"op":"refresh","token":%q,"ref":"r"}`, mint(t, "ann", exp.Add(-time.Hour), nil)), "unauthorized", "invalid token: expired"},
		{"another user", fmt.Sprintf(`{"op":"refresh","token":%q,"ref":"r"}`, mint(t, "bob", exp.Add(time.Hour), nil)), "forbidden", "the new token is for another user"},
		{"a subscribed stream not allowed", fmt.Sprintf(`{"op":"refresh","token":%q,"ref":"r"}`, mint(t, "ann", exp.Add(time.Hour), []string{"game:*"})), "forbidden", "the new token does not allow subscribed stream room:a: unsubscribe first"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := w.On(t)
			w.Send(c.frame)
			wantError(t, w.FrameOp("error", "presence"), "r", c.code, c.message)
		})
	}

	// Outlive the first token (a wait for time to pass, not for the
	// server), then use the connection.
	<-time.After(time.Until(start.Add(2 * left)))
	w.Send(`{"op":"ping","ref":"p"}`)
	if f := w.FrameOp("pong", "presence"); f["ref"] != "p" {
		t.Fatalf("got %v", f)
	}
	w.Send(`{"op":"command","stream":"game:g","type":"UpdateScore","data":{"team":"home","score":1},"ref":"c"}`)
	if f := w.FrameOp("ack", "presence"); f["ref"] != "c" {
		t.Fatalf("a stream the new token allows: %v", f)
	}

	// The new token's expiry is in force.
	wantError(t, w.FrameOp("error", "presence", "event"), nil, "unauthorized", "token expired")
	if code, reason := w.CloseStatus(); code != websocket.StatusPolicyViolation || reason != "token expired" {
		t.Fatalf("closed with %d %q, want 1008 token expired", code, reason)
	}
	if d := time.Since(start); d < left+2*time.Second {
		t.Fatalf("closed after %s, before the new token expired (%s)", d, left+2*time.Second)
	}
}

// With auth off a refresh changes nothing and is answered without exp.
func TestWSRefreshAuthOff(t *testing.T) {
	h := transporttest.New(t)
	w := h.Dial(t, "/ws")
	w.Send(`{"op":"refresh","token":"anything","ref":"r"}`)
	if f := w.Frame(); f["op"] != "refreshed" || f["ref"] != "r" || len(f) != 2 {
		t.Fatalf("got %v, want refreshed without exp", f)
	}
	w.Send(`{"op":"refresh","ref":"r2"}`)
	wantError(t, w.Frame(), "r2", "bad_request", "token is required")
}

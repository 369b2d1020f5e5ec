package transport_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/b6368a97/engine/transport/transporttest"
)

// TestEpochHTTP: state and event pages carry the store's epoch; a read
// with from and another epoch is refused with 409 epoch_changed.
func TestEpochHTTP(t *testing.T) {
	h := transporttest.New(t)
	epoch := h.Store.Epoch()
	for i := range 3 {
		h.Do("POST", "/streams/room:ep/commands", transporttest.PostMessage("ann", fmt.Sprint("m", i+1)))
	}

	r := h.Do("GET", "/streams/room:ep", "")
	st := r.JSON(t)
	if r.Status != 200 || st["epoch"] != epoch || st["version"] != float64(3) || st["stream"] != "room:ep" || r.Header.Get("ETag") != `"3"` {
		t.Fatalf("state: %d %s, want version 3 and epoch %s", r.Status, r.Body, epoch)
	}

	for _, c := range []struct {
		name, query string
		events      int
	}{
		{"no epoch", "?from=1", 2},
		{"the store's epoch", "?from=1&epoch=" + epoch, 2},
		{"another epoch without from is informational", "?epoch=other", 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := h.Do("GET", "/streams/room:ep/events"+c.query, "")
			m := r.JSON(t)
			if r.Status != 200 || m["epoch"] != epoch || len(m["events"].([]any)) != c.events {
				t.Fatalf("%d %s, want %d events and epoch %s", r.Status, r.Body, c.events, epoch)
			}
		})
	}
	for _, q := range []string{"?from=1&epoch=other", "?from=0&epoch=other", "?from=3&limit=5&epoch=" + strings.ToUpper(epoch)} {
		t.Run("refused "+q, func(t *testing.T) {
			p := transporttest.WantProblem(t, h.Do("GET", "/streams/room:ep/events"+q, ""), 409, "epoch_changed")
			if d, _ := p["detail"].(string); !strings.Contains(d, "restored or replaced") {
				t.Fatalf("detail %q", d)
			}
		})
	}
}

// TestEpochWS: subscribed carries the epoch; a subscribe with from and
// another epoch is refused with epoch_changed and subscribes nothing (an
// existing subscription to the stream stays); without from the epoch is
// informational.
func TestEpochWS(t *testing.T) {
	h := transporttest.New(t)
	epoch := h.Store.Epoch()
	for i := range 2 {
		h.Do("POST", "/streams/room:ws/commands", transporttest.PostMessage("ann", fmt.Sprint("m", i+1)))
	}

	t.Run("resume under the store's epoch", func(t *testing.T) {
		c := h.Dial(t, "/ws")
		c.Send(`{"op":"subscribe","stream":"room:ws","from":1,"epoch":"` + epoch + `","ref":"s"}`)
		if f := c.Frame(); !transporttest.JSONEq(t, f, `{"op":"subscribed","stream":"room:ws","version":2,"epoch":"`+epoch+`","ref":"s"}`) {
			t.Fatalf("got %v", f)
		}
		if f := c.NonPresence(); f["op"] != "event" || f["version"] != float64(2) {
			t.Fatalf("got %v, want event 2", f)
		}
	})

	t.Run("resume under another epoch", func(t *testing.T) {
		c := h.Dial(t, "/ws")
		for i, from := range []string{"1", "0"} {
			ref := fmt.Sprint("r", i)
			c.Send(`{"op":"subscribe","stream":"room:ws","from":` + from + `,"epoch":"old","ref":"` + ref + `"}`)
			f := c.Frame()
			if f["op"] != "error" || f["code"] != "epoch_changed" || f["ref"] != ref || !strings.Contains(f["message"].(string), "without from") {
				t.Fatalf("from %s: got %v, want error epoch_changed", from, f)
			}
		}
		// Nothing was subscribed: a new event is not sent, and the pong
		// is the next frame.
		h.Do("POST", "/streams/room:ws/commands", transporttest.PostMessage("ann", "unseen"))
		c.Send(`{"op":"ping","ref":"p"}`)
		if f := c.Frame(); !transporttest.JSONEq(t, f, `{"op":"pong","ref":"p"}`) {
			t.Fatalf("got %v, want the pong", f)
		}
	})

	t.Run("a refused resume leaves the subscription", func(t *testing.T) {
		c := h.Dial(t, "/ws")
		c.Send(`{"op":"subscribe","stream":"game:ep","epoch":"whatever","ref":"live"}`)
		if f := c.Frame(); !transporttest.JSONEq(t, f, `{"op":"subscribed","stream":"game:ep","version":0,"epoch":"`+epoch+`","ref":"live"}`) {
			t.Fatalf("got %v", f)
		}
		c.Send(`{"op":"subscribe","stream":"game:ep","from":0,"epoch":"old","ref":"again"}`)
		if f := c.Frame(); f["op"] != "error" || f["code"] != "epoch_changed" {
			t.Fatalf("got %v, want error epoch_changed", f)
		}
		h.Do("POST", "/streams/game:ep/commands", `{"type":"UpdateScore","data":{"team":"home","score":1}}`)
		if f := c.Frame(); f["op"] != "event" || f["stream"] != "game:ep" || f["version"] != float64(1) {
			t.Fatalf("got %v, want the live event of the first subscription", f)
		}
	})

	t.Run("epoch must be a string", func(t *testing.T) {
		c := h.Dial(t, "/ws")
		c.Send(`{"op":"subscribe","stream":"room:ws","from":1,"epoch":7,"ref":"n"}`)
		if f := c.Frame(); f["op"] != "error" || f["code"] != "bad_request" || f["ref"] != "n" {
			t.Fatalf("got %v, want bad_request", f)
		}
	})
}

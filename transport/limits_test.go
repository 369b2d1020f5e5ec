package transport_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/b6368a97/engine/transport"
	"github.com/b6368a97/engine/transport/transporttest"
)

func TestSubscriptionLimit(t *testing.T) {
	h := transporttest.New(t, func(c *transport.Config) { c.MaxSubscriptions = 2 })
	for _, s := range []string{"room:a", "room:b", "room:c"} {
		if r := h.Do("POST", "/streams/"+s+"/commands", transporttest.PostMessage("bob", "hi")); r.Status != 200 {
			t.Fatalf("%s: %d %s", s, r.Status, r.Body)
		}
	}
	members := func(stream string) string {
		t.Helper()
		r := h.Do("GET", "/streams/"+stream, "")
		if r.Status != 200 {
			t.Fatalf("%s: %d %s", stream, r.Status, r.Body)
		}
		return fmt.Sprint(r.JSON(t)["members"])
	}
	c := h.Dial(t, "/ws")
	c.Send(`{"op":"subscribe","stream":"room:a","user":"ann","ref":"a"}`)
	c.FrameOp("subscribed", "presence")
	c.Send(`{"op":"subscribe","stream":"room:b","user":"ann","ref":"b"}`)
	c.FrameOp("subscribed", "presence")

	// The third stream is refused, and nothing is subscribed: ann does
	// not join its presence.
	c.Send(`{"op":"subscribe","stream":"room:c","user":"ann","ref":"c"}`)
	f := c.FrameOp("error", "presence")
	if f["code"] != "limit_exceeded" || f["ref"] != "c" || !strings.Contains(f["message"].(string), "2 subscriptions") {
		t.Fatalf("third subscribe: %v", f)
	}
	if got := members("room:c"); got != "[]" {
		t.Fatalf("room:c members %s after a refused subscribe", got)
	}

	// A subscribe to a stream the connection has replaces it: not counted
	// twice.
	c.Send(`{"op":"subscribe","stream":"room:a","from":0,"user":"ann","ref":"again"}`)
	if f := c.FrameOp("subscribed", "presence", "event"); f["ref"] != "again" {
		t.Fatalf("resubscribe: %v", f)
	}
	// Unsubscribing makes room.
	c.Send(`{"op":"unsubscribe","stream":"room:b","ref":"u"}`)
	c.FrameOp("unsubscribed", "presence", "event")
	c.Send(`{"op":"subscribe","stream":"room:c","user":"ann","ref":"c2"}`)
	if f := c.FrameOp("subscribed", "presence", "event"); f["ref"] != "c2" {
		t.Fatalf("subscribe after unsubscribe: %v", f)
	}
	transporttest.Eventually(t, "ann in room:c", func() bool { return members("room:c") == "[ann]" })
}

package transport_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/b6368a97/engine/transport/transporttest"
	"github.com/coder/websocket"
)

// BenchmarkWSCommand measures one /ws command's round trip (frame in,
// actor, durable in-memory append, ack out) on one connection.
func BenchmarkWSCommand(b *testing.B) {
	h := transporttest.New(b)
	c := h.Dial(b, "/ws")
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		msg := fmt.Sprintf(`{"op":"command","stream":"game:bench","type":"UpdateScore","data":{"team":"home","score":%d}}`, i)
		if err := c.C.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			b.Fatal(err)
		}
		if _, _, err := c.C.Read(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFanOut measures delivering one event to 100 subscribed
// connections, each reading its event frame.
func BenchmarkFanOut(b *testing.B) {
	h := transporttest.New(b)
	const subs = 100
	clients := make([]*transporttest.WSClient, subs)
	for i := range clients {
		clients[i] = h.Dial(b, "/ws")
		clients[i].Send(`{"op":"subscribe","stream":"game:fan"}`)
		clients[i].FrameOp("subscribed")
	}
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		msg := fmt.Sprintf(`{"op":"command","stream":"game:fan","type":"UpdateScore","data":{"team":"home","score":%d}}`, i)
		if err := clients[0].C.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			b.Fatal(err)
		}
		for j, c := range clients {
			want := 1
			if j == 0 {
				want = 2 // the ack as well
			}
			for range want {
				if _, _, err := c.C.Read(ctx); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
}

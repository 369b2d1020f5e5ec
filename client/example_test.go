package client_test

import (
	"context"
	"fmt"
	"log"

	"github.com/b6368a97/engine/client"
	"github.com/b6368a97/engine/events"
)

// The README's tour: subscribe from the beginning (catch-up, then live),
// send a command and wait for its durable ack. A reconnect resumes the
// subscription from the last version seen. The example runs against an
// engine started in this process; against a real one the URL is
// ws://localhost:8080/ws.
func Example() {
	addr, stop := startEngine()
	defer stop()

	ctx := context.Background()
	c, err := client.Dial(ctx, "ws://"+addr+"/ws", client.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	seen := make(chan events.Event, 1)
	_, err = c.Subscribe(ctx, "room:lobby", client.From(0), "ann", func(e events.Event) {
		seen <- e
	})
	if err != nil {
		log.Fatal(err)
	}
	ack, err := c.Command(ctx, "room:lobby", "PostMessage", map[string]string{"user": "ann", "text": "hello"}, "")
	if client.ErrorCode(err) == "bad_request" {
		log.Fatal("refused: ", err)
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("durable at version", ack.Version)
	e := <-seen
	fmt.Println("event", e.Version, e.Type, string(e.Data))
	// Output:
	// durable at version 1
	// event 1 MessagePosted {"user":"ann","text":"hello"}
}

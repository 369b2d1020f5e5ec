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
// subscription from the last version seen.
func Example() {
	ctx := context.Background()
	c, err := client.Dial(ctx, "ws://localhost:8080/ws", client.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	_, err = c.Subscribe(ctx, "room:lobby", client.From(0), "ann", func(e events.Event) {
		fmt.Println(e.Version, e.Type, string(e.Data))
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
}

package client_test

import (
	"context"
	"log"
	"log/slog"
	"net"
	"time"

	"github.com/b6368a97/engine/actors"
	"github.com/b6368a97/engine/actors/kinds"
	"github.com/b6368a97/engine/events/memstore"
	"github.com/b6368a97/engine/transport"
)

// startEngine runs the engine in this process, on an in-memory store and
// 127.0.0.1:0, for the package's examples. It returns the address and a
// function that stops everything in the engine's order.
func startEngine() (addr string, stop func()) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	quiet := slog.New(slog.DiscardHandler)
	store := memstore.New()
	rt, err := actors.New(actors.Config{Store: store, Kinds: kinds.All(kinds.Config{}), Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	if err := rt.Start(ctx); err != nil {
		log.Fatal(err)
	}
	srv, err := transport.New(transport.Config{API: rt, Log: store, Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	srv.SetReady(true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	return ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			log.Print(err)
		}
		<-served
		if err := rt.Stop(ctx); err != nil {
			log.Print(err)
		}
		_ = store.Close()
	}
}

package kinds

import (
	"time"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/actors/game"
	"github.com/b6368a97/engine/actors/kitchen"
	"github.com/b6368a97/engine/actors/order"
	"github.com/b6368a97/engine/actors/room"
	"github.com/b6368a97/engine/actors/user"
)

// Config holds the settings of the kinds that take any. The zero value
// takes each kind's defaults.
type Config struct {
	// CookTime is how long an order's cook step waits (order.New).
	CookTime time.Duration
}

// All returns every kind the engine serves. Adding a kind is one line
// here and a package of its own.
func All(cfg Config) []decider.Kind {
	return []decider.Kind{
		room.New(),
		game.New(),
		order.New(cfg.CookTime),
		user.New(),
		kitchen.New(),
	}
}

// ByName returns the kind of that name with its default settings; it fits
// actors.NewReplayer and actors.Replay.
func ByName(name string) (decider.Kind, bool) {
	for _, k := range All(Config{}) {
		if k.Name() == name {
			return k, true
		}
	}
	return nil, false
}

package kinds

import (
	"github.com/b6368a97/engine/actors"
	"github.com/b6368a97/engine/actors/game"
	"github.com/b6368a97/engine/actors/kitchen"
	"github.com/b6368a97/engine/actors/order"
	"github.com/b6368a97/engine/actors/room"
	"github.com/b6368a97/engine/actors/user"
)

// Room is the chat room kind, with presence.
func Room() actors.Kind {
	return actors.NewKind(actors.Decider[room.State]{
		Name:        room.Kind,
		Initial:     room.Initial,
		Decide:      room.Decide,
		Evolve:      room.Evolve,
		WithMembers: room.WithMembers,
	})
}

// Game is the score board kind.
func Game() actors.Kind {
	return actors.NewKind(actors.Decider[game.State]{
		Name:    game.Kind,
		Initial: game.Initial,
		Decide:  game.Decide,
		Evolve:  game.Evolve,
	})
}

// Order is the order kind, with its background steps.
func Order() actors.Kind {
	return actors.NewKind(actors.Decider[order.State]{
		Name:          order.Kind,
		Initial:       order.Initial,
		Decide:        order.Decide,
		Evolve:        order.Evolve,
		Steps:         order.Steps,
		Complete:      order.Complete,
		RecordAttempt: order.RecordAttempt,
		Attempts:      order.Attempts,
	})
}

// User is the user kind, with its welcome email step.
func User() actors.Kind {
	return actors.NewKind(actors.Decider[user.State]{
		Name:          user.Kind,
		Initial:       user.Initial,
		Decide:        user.Decide,
		Evolve:        user.Evolve,
		Steps:         user.Steps,
		Complete:      user.Complete,
		RecordAttempt: user.RecordAttempt,
		Attempts:      user.Attempts,
	})
}

// Kitchen is the kitchen kind.
func Kitchen() actors.Kind {
	return actors.NewKind(actors.Decider[kitchen.State]{
		Name:    kitchen.Kind,
		Initial: kitchen.Initial,
		Decide:  kitchen.Decide,
		Evolve:  kitchen.Evolve,
	})
}

// All returns every kind the engine serves.
func All() []actors.Kind {
	return []actors.Kind{Room(), Game(), Order(), User(), Kitchen()}
}

// ByName returns the kind of that name; it fits actors.NewReplayer and
// actors.Replay.
func ByName(name string) (actors.Kind, bool) {
	switch name {
	case room.Kind:
		return Room(), true
	case game.Kind:
		return Game(), true
	case order.Kind:
		return Order(), true
	case user.Kind:
		return User(), true
	case kitchen.Kind:
		return Kitchen(), true
	}
	return nil, false
}

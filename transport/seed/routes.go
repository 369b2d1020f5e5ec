package seed

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/b6368a97/engine/actors"
	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/actors/game"
	"github.com/b6368a97/engine/actors/order"
	"github.com/b6368a97/engine/actors/user"
	"github.com/b6368a97/engine/events"
	"github.com/b6368a97/engine/transport"
)

// Config configures the seed routes. Zero values take the defaults.
type Config struct {
	// Log is the global log /live-score follows. Required; pass the
	// events.Store.
	Log Log
	// OrderTimeout bounds how long POST /order/{item} waits for the order
	// to be ready. Default 30 s.
	OrderTimeout time.Duration
}

// DefaultOrderTimeout is Config.OrderTimeout's default.
const DefaultOrderTimeout = 30 * time.Second

// Log is the part of the event log /live-score reads. events.Store
// satisfies it.
type Log interface {
	Follow(ctx context.Context, after uint64, fn func(events.Event) error) error
	Head(ctx context.Context) (uint64, error)
}

// Routes returns the extension that registers the seed application's
// routes and WebSocket endpoints on a transport.Server.
func Routes(cfg Config) transport.Extension {
	if cfg.OrderTimeout <= 0 {
		cfg.OrderTimeout = DefaultOrderTimeout
	}
	return func(r *transport.Routes) {
		h := &handlers{s: r.Server(), cfg: cfg}
		r.Post("/signup", h.signup)
		r.Post("/orders", h.postOrders)
		r.Post("/order/:item", h.postOrderItem)
		r.Post("/update-score", h.updateScore)
		ls := liveScore{log: cfg.Log}
		r.WebSocket(&transport.Endpoint{Path: "/chat", Frame: chatFrame})
		r.WebSocket(&transport.Endpoint{Path: "/chat-room", Check: chatRoomCheck, Start: chatRoomStart, Frame: chatRoomFrame, Render: chatRoomRender,
			Expired: []byte("error: unauthorized: token expired")})
		r.WebSocket(&transport.Endpoint{Path: "/live-score", Check: ls.check, Start: ls.start})
	}
}

// handlers are the seed's HTTP routes: thin shortcuts over stream
// commands that existing clients call.
type handlers struct {
	s   *transport.Server
	cfg Config
}

// newStreamID is a random stream id: 96 bits, hex.
func newStreamID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand documents it)
	return hex.EncodeToString(b[:])
}

// orderStream is the stream of a new order: derived from the request's
// idempotency key when it has one, so that a retry lands on the same
// order, else random. With auth on the key is the user's own: two users
// sending the same key get two orders (each its owner's) rather than one
// refused.
func orderStream(user, key string) string {
	id := newStreamID()
	switch {
	case key != "" && user != "":
		id = keyedStreamID(user + "\x00" + key)
	case key != "":
		id = keyedStreamID(key)
	}
	return order.Kind + ":" + id
}

// keyedStreamID derives a stream id from an idempotency key, so that a
// retried request lands on the stream of the first one.
func keyedStreamID(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:12])
}

type signupBody struct {
	Email string `json:"email"`
	Name  string `json:"name"`
}

// signup: POST /signup {"email","name"} → 202 {"message":"Welcome!","user":"user:ID"}.
func (h *handlers) signup(c *fiber.Ctx) error {
	var body signupBody
	if err := transport.DecodeJSON(c, &body); err != nil {
		return err
	}
	id, err := user.IDForEmail(body.Email)
	if err != nil {
		return err
	}
	key, err := transport.IdempotencyKey(c)
	if err != nil {
		return err
	}
	data, err := json.Marshal(user.SignUp{Email: body.Email, Name: body.Name})
	if err != nil {
		return err
	}
	stream := user.Kind + ":" + id
	if _, err := h.s.Command(c, stream, user.CommandSignUp, data, key); err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"message": "Welcome!", "user": stream})
}

// ordersBody is POST /orders' body, decoded only to refuse unknown fields
// and wrong types; the order kind validates the values.
type ordersBody struct {
	Items []order.Item `json:"items"`
	Email *string      `json:"email"`
}

// postOrders: POST /orders {"items","email"?} → 202 {"order","status","version"}.
func (h *handlers) postOrders(c *fiber.Ctx) error {
	var body ordersBody
	if err := transport.DecodeJSON(c, &body); err != nil {
		return err
	}
	key, err := transport.IdempotencyKey(c)
	if err != nil {
		return err
	}
	po := order.PlaceOrder{Items: body.Items}
	if body.Email != nil {
		po.Email = *body.Email
	}
	data, err := json.Marshal(po)
	if err != nil {
		return err
	}
	stream := orderStream(transport.User(c), key)
	res, err := h.s.Command(c, stream, order.CommandPlaceOrder, data, key)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"order": stream, "status": order.StatusPlaced, "version": res.Version})
}

// errOrderFailed: the order's steps failed for good.
var errOrderFailed = errors.New("the order could not be prepared")

// postOrderItem: POST /order/{item} places a one-item order and answers
// once it is ready: 200 {"order":"ITEM","status":"ready!"}.
func (h *handlers) postOrderItem(c *fiber.Ctx) error {
	item, err := transport.PathParam(c, "item")
	if err != nil {
		return err
	}
	key, err := transport.IdempotencyKey(c)
	if err != nil {
		return err
	}
	stream := orderStream(transport.User(c), key)
	data, err := json.Marshal(order.PlaceOrder{Items: []order.Item{{Name: item, Qty: 1}}})
	if err != nil {
		return err
	}

	if _, err := h.s.Command(c, stream, order.CommandPlaceOrder, data, key); err != nil {
		return err
	}
	// Subscribe once the order is placed (with auth on, nobody may read an
	// order before it has an owner), from the start of the stream, so that
	// no step's event can be missed, even on a retried key.
	w := newWaitSink()
	from := uint64(0)
	sub, err := h.s.Subscribe(c, actors.SubscribeRequest{Stream: stream, From: &from, Sink: w})
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", stream, err)
	}
	defer sub.Cancel()
	timer := time.NewTimer(h.cfg.OrderTimeout)
	defer timer.Stop()
	for {
		select {
		case ev := <-w.events:
			switch ev.Type {
			case order.EventOrderReady:
				return c.JSON(fiber.Map{"order": item, "status": "ready!"})
			case order.EventOrderCancelled:
				return transport.ClientError(decider.ErrConflict, "order %s was cancelled", stream)
			case order.EventStepFailed:
				var f order.StepFailed
				_ = json.Unmarshal(ev.Data, &f)
				if f.Step == order.StepKitchen || f.Step == order.StepCook {
					h.s.Logger().Warn("order failed", "stream", stream, "step", f.Step, "err", f.Error)
					return transport.ClientError(errOrderFailed, "order %s failed at its %s step", stream, f.Step)
				}
			}
		case <-w.overflow:
			return fmt.Errorf("order %s: %w", stream, errOrderFailed)
		case <-timer.C:
			return transport.ClientError(actors.ErrUnavailable, "order %s was not ready within %s; it goes on: GET /streams/%s", stream, h.cfg.OrderTimeout, stream)
		case <-h.s.Context().Done():
			return transport.ErrDraining
		}
	}
}

// waitSink hands one HTTP request the events of an order. An order has a
// handful of events; a sink that fills anyway reports overflow.
type waitSink struct {
	events   chan *events.Event
	overflow chan struct{}
	once     sync.Once
}

func newWaitSink() *waitSink {
	return &waitSink{
		events:   make(chan *events.Event, 64),
		overflow: make(chan struct{}),
	}
}

func (w *waitSink) Enqueue(d actors.Delivery) bool {
	if d.Event == nil {
		return true
	}
	select {
	case w.events <- d.Event:
		return true
	default:
		return false
	}
}

// WaitRoom does not pace the catch-up: an order's handful of events fits,
// and Enqueue reports a sink that fills anyway.
func (w *waitSink) WaitRoom(ctx context.Context) error { return ctx.Err() }

func (w *waitSink) Overflow() { w.once.Do(func() { close(w.overflow) }) }

// updateScore: POST /update-score?game=G&team=T&score=S → 200 {"updated":true}.
func (h *handlers) updateScore(c *fiber.Ctx) error {
	g := transport.QueryParam(c, "game", "main")
	team := transport.QueryParam(c, "team", "")
	q := c.Query("score")
	score, err := strconv.ParseInt(q, 10, 64)
	if err != nil {
		return transport.BadRequest("score must be a whole number, got %q", transport.Clip(q))
	}
	key, err := transport.IdempotencyKey(c)
	if err != nil {
		return err
	}
	data, err := json.Marshal(game.ScoreUpdated{Team: team, Score: score})
	if err != nil {
		return err
	}
	if _, err := h.s.Command(c, game.Kind+":"+g, game.CommandUpdateScore, data, key); err != nil {
		return err
	}
	return c.JSON(fiber.Map{"updated": true})
}

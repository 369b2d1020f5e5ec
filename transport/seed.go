package transport

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/b6368a97/engine/actors"
	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/actors/game"
	"github.com/b6368a97/engine/actors/order"
	"github.com/b6368a97/engine/actors/user"
	"github.com/b6368a97/engine/events"
)

// The seed application's routes: thin shortcuts over stream commands that
// existing clients call.

// newStreamID is a random stream id: 96 bits, hex.
func newStreamID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand documents it)
	return hex.EncodeToString(b[:])
}

// keyedStreamID derives a stream id from an idempotency key, so that a
// retried request lands on the stream of the first one.
func keyedStreamID(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:12])
}

// run executes a command built by a seed route, after the auth checks a
// stream route makes.
func (s *Server) run(c *fiber.Ctx, stream, typ string, data []byte, key string) (actors.Result, error) {
	if err := checkStream(stream); err != nil {
		return actors.Result{}, err
	}
	p := principalOf(c)
	if err := p.allow(stream); err != nil {
		return actors.Result{}, err
	}
	return s.execute(s.base, decider.Command{
		Stream: stream,
		Type:   typ,
		Data:   data,
		ID:     key,
		User:   p.userName(),
		Time:   s.cfg.Now(),
	}, events.AnyVersion)
}

type signupBody struct {
	Email string `json:"email"`
	Name  string `json:"name"`
}

// signup: POST /signup {"email","name"} → 202 {"message":"Welcome!","user":"user:ID"}.
func (s *Server) signup(c *fiber.Ctx) error {
	if err := requireJSON(c); err != nil {
		return err
	}
	var body signupBody
	if err := decodeStrict(c.Body(), &body); err != nil {
		return err
	}
	id, err := user.IDForEmail(body.Email)
	if err != nil {
		return err
	}
	key, err := idempotencyKey(c)
	if err != nil {
		return err
	}
	data, err := json.Marshal(user.SignUp{Email: body.Email, Name: body.Name})
	if err != nil {
		return err
	}
	stream := user.Kind + ":" + id
	if _, err := s.run(c, stream, user.CommandSignUp, data, key); err != nil {
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
func (s *Server) postOrders(c *fiber.Ctx) error {
	if err := requireJSON(c); err != nil {
		return err
	}
	var body ordersBody
	if err := decodeStrict(c.Body(), &body); err != nil {
		return err
	}
	key, err := idempotencyKey(c)
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
	id := newStreamID()
	if key != "" {
		id = keyedStreamID(key)
	}
	stream := order.Kind + ":" + id
	res, err := s.run(c, stream, order.CommandPlaceOrder, data, key)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"order": stream, "status": order.StatusPlaced, "version": res.Version})
}

// errOrderFailed: the order's steps failed for good.
var errOrderFailed = errors.New("the order could not be prepared")

// postOrderItem: POST /order/{item} places a one-item order and answers
// once it is ready: 200 {"order":"ITEM","status":"ready!"}.
func (s *Server) postOrderItem(c *fiber.Ctx) error {
	raw := c.Params("item")
	item, err := url.PathUnescape(raw)
	if err != nil {
		return badRequest("item %q is not valid percent-encoding", clip(raw))
	}
	item = strings.Clone(item)
	key, err := idempotencyKey(c)
	if err != nil {
		return err
	}
	id := newStreamID()
	if key != "" {
		id = keyedStreamID(key)
	}
	stream := order.Kind + ":" + id
	p := principalOf(c)
	if err := p.allow(stream); err != nil {
		return err
	}
	data, err := json.Marshal(order.PlaceOrder{Items: []order.Item{{Name: item, Qty: 1}}})
	if err != nil {
		return err
	}

	// Subscribe before placing, from the start of the stream, so that no
	// step's event can be missed, even on a retried key.
	w := newWaitSink()
	from := uint64(0)
	ctx, cancel := context.WithTimeout(s.base, s.cfg.CommandTimeout)
	sub, err := s.cfg.API.Subscribe(ctx, actors.SubscribeRequest{Stream: stream, From: &from, Sink: w})
	cancel()
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", stream, err)
	}
	defer sub.Cancel()

	if _, err := s.run(c, stream, order.CommandPlaceOrder, data, key); err != nil {
		return err
	}
	timer := time.NewTimer(s.cfg.OrderTimeout)
	defer timer.Stop()
	for {
		select {
		case ev := <-w.events:
			switch ev.Type {
			case order.EventOrderReady:
				return c.JSON(fiber.Map{"order": item, "status": "ready!"})
			case order.EventOrderCancelled:
				return fmt.Errorf("%w: order %s was cancelled", decider.ErrConflict, stream)
			case order.EventStepFailed:
				var f order.StepFailed
				_ = json.Unmarshal(ev.Data, &f)
				if f.Step == order.StepKitchen || f.Step == order.StepCook {
					s.log.Warn("order failed", "stream", stream, "step", f.Step, "err", f.Error)
					return newClientError(errOrderFailed, "order %s failed at its %s step", stream, f.Step)
				}
			}
		case <-w.overflow:
			return fmt.Errorf("order %s: %w", stream, errOrderFailed)
		case <-timer.C:
			return newClientError(actors.ErrUnavailable, "order %s was not ready within %s; it goes on: GET /streams/%s", stream, s.cfg.OrderTimeout, stream)
		case <-s.base.Done():
			return errDraining
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

func (w *waitSink) Overflow() { w.once.Do(func() { close(w.overflow) }) }

// updateScore: POST /update-score?game=G&team=T&score=S → 200 {"updated":true}.
func (s *Server) updateScore(c *fiber.Ctx) error {
	g := strings.Clone(c.Query("game", "main"))
	team := strings.Clone(c.Query("team"))
	q := c.Query("score")
	score, err := strconv.ParseInt(q, 10, 64)
	if err != nil {
		return badRequest("score must be a whole number, got %q", clip(q))
	}
	key, err := idempotencyKey(c)
	if err != nil {
		return err
	}
	data, err := json.Marshal(game.ScoreUpdated{Team: team, Score: score})
	if err != nil {
		return err
	}
	if _, err := s.run(c, game.Kind+":"+g, game.CommandUpdateScore, data, key); err != nil {
		return err
	}
	return c.JSON(fiber.Map{"updated": true})
}

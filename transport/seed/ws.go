package seed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/gofiber/contrib/websocket"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/actors/game"
	"github.com/b6368a97/engine/actors/room"
	"github.com/b6368a97/engine/events"
	"github.com/b6368a97/engine/transport"
)

// lobby is the room of /chat-room.
const lobby = room.Kind + ":lobby"

// /chat: echo.

func chatFrame(c *transport.Conn, typ int, data []byte) {
	if typ == websocket.BinaryMessage {
		c.SendBinary(data)
		return
	}
	out := make([]byte, 0, len("You said: ")+len(data))
	out = append(append(out, "You said: "...), data...)
	c.Send(out)
}

// /chat-room: every text frame is a message to room:lobby.

// chatRoomUser is who a /chat-room client speaks as: the token's subject
// with auth on, else ?user=, else "anonymous".
func chatRoomUser(req *transport.Upgrade) string {
	if u := req.User(); u != "" {
		return u
	}
	if u := req.UserParam(); u != "" {
		return u
	}
	return "anonymous"
}

func chatRoomCheck(_ *transport.Server, req *transport.Upgrade) error {
	if u := req.User(); u != "" && req.UserParam() != "" && req.UserParam() != u {
		return transport.ClientError(decider.ErrForbidden, "user %q may not speak as %q", u, transport.Clip(req.UserParam()))
	}
	return req.Allow(lobby)
}

func chatRoomStart(c *transport.Conn) error {
	return c.SubscribeLive(lobby, chatRoomUser(c.Upgrade()))
}

func chatRoomFrame(c *transport.Conn, typ int, data []byte) {
	reply := func(err error) {
		code, detail := c.Problem(err)
		c.Send([]byte("error: " + code + ": " + detail))
	}
	if typ != websocket.TextMessage {
		reply(transport.BadRequest("send text frames"))
		return
	}
	if c.Limited() {
		c.Send([]byte("error: rate_limited: slow down"))
		return
	}
	payload, err := json.Marshal(room.PostMessage{User: chatRoomUser(c.Upgrade()), Text: string(data)})
	if err != nil {
		return
	}
	cmd := decider.Command{Stream: lobby, Type: room.CommandPostMessage, Data: payload, Time: c.Server().Now()}
	ok := c.Submit(lobby, func() {
		if _, err := c.Execute(cmd); err != nil {
			reply(err)
		}
	})
	if !ok {
		reply(transport.ErrDraining)
	}
}

func chatRoomRender(ev *events.Event) ([]byte, bool) {
	if ev.Type != room.EventMessagePosted {
		return nil, false
	}
	var m room.MessagePosted
	if err := json.Unmarshal(ev.Data, &m); err != nil {
		return nil, false
	}
	return []byte(m.User + ": " + m.Text), true
}

// /live-score: every ScoreUpdated of every game, from the global log.

type scoreFrame struct {
	Game  string `json:"game"`
	Team  string `json:"team"`
	Score int64  `json:"score"`
}

// errStopFollow ends a /live-score follower whose connection is closing.
var errStopFollow = errors.New("connection closing")

// liveScore follows the global log for /live-score clients.
type liveScore struct{ log Log }

// check reads the log's head before the upgrade is answered, so that
// every score update a client causes after its handshake completes is
// delivered to it.
func (l liveScore) check(s *transport.Server, req *transport.Upgrade) error {
	ctx, cancel := context.WithTimeout(s.Context(), s.CommandTimeout())
	defer cancel()
	head, err := l.log.Head(ctx)
	if err != nil {
		return fmt.Errorf("live-score: log head: %w", err)
	}
	req.Data = head
	return nil
}

func (l liveScore) start(c *transport.Conn) error {
	head, _ := c.Upgrade().Data.(uint64)
	c.Go(func(ctx context.Context) {
		err := l.log.Follow(ctx, head, func(ev events.Event) error {
			return sendScore(c, &ev)
		})
		if err != nil && ctx.Err() == nil && !errors.Is(err, errStopFollow) {
			c.Server().Logger().Warn("live-score follower ended", "err", err)
			c.CloseFor(err)
		}
	})
	return nil
}

func sendScore(c *transport.Conn, ev *events.Event) error {
	if ev.Type != game.EventScoreUpdated {
		return nil
	}
	id, err := events.ParseStreamID(ev.Stream)
	if err != nil || id.Kind != game.Kind || c.Upgrade().Allow(ev.Stream) != nil {
		return nil
	}
	var d game.ScoreUpdated
	if err := json.Unmarshal(ev.Data, &d); err != nil {
		return nil
	}
	data, err := json.Marshal(scoreFrame{Game: id.ID, Team: d.Team, Score: d.Score})
	if err != nil {
		return nil
	}
	if !c.Send(data) {
		return errStopFollow
	}
	return nil
}

package transport

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/contrib/websocket"

	"github.com/b6368a97/engine/actors/decider"
)

// connAuth is a connection's token: who the connection speaks for now
// (the upgrade's principal until a refresh replaces it), and the timer
// that closes the connection when that token expires.
//
// The timer is the connection's: armed when the connection starts and on
// each refresh, stopped at teardown. When it fires it only queues the
// endpoint's Expired frame and the close (1008 "token expired") on the
// send queue, which the writer sends like any other close; it never
// writes itself. gen makes a firing that lost the race with a refresh or
// the teardown a no-op.
type connAuth struct {
	p atomic.Pointer[principal]

	mu    sync.Mutex
	timer *time.Timer // nil when the token never expires (auth off)
	gen   uint64      // the arming the timer belongs to
	ended bool        // expired or torn down: nothing is armed again
}

// principal is who the connection speaks for now.
func (c *Conn) principal() *principal { return c.auth.p.Load() }

// setPrincipal makes p the connection's principal and arms the expiry
// timer for p's token: exp + Auth.Leeway, measured from the server's
// clock. It reports false when the connection has expired or ended
// already.
func (c *Conn) setPrincipal(p *principal) bool {
	a := &c.auth
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ended {
		return false
	}
	a.p.Store(p)
	a.gen++
	if a.timer != nil {
		a.timer.Stop()
		a.timer = nil
	}
	if p == nil || p.expires.IsZero() {
		return true
	}
	gen := a.gen
	d := p.expires.Add(c.s.cfg.Auth.Leeway).Sub(c.s.cfg.Now())
	a.timer = time.AfterFunc(d, func() { c.expire(gen) })
	return true
}

// expire closes the connection because its token expired: the endpoint's
// Expired frame, then close 1008 "token expired", both through the queue.
func (c *Conn) expire(gen uint64) {
	a := &c.auth
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ended || a.gen != gen {
		return
	}
	a.ended = true
	a.timer = nil
	if len(c.ep.Expired) > 0 {
		c.q.push(outItem{typ: websocket.TextMessage, data: c.ep.Expired, size: len(c.ep.Expired)})
	}
	c.q.closeWith(websocket.ClosePolicyViolation, "token expired", true)
}

// endAuth stops the expiry timer for good (teardown). A firing already
// under way finds ended set and does nothing.
func (c *Conn) endAuth() {
	a := &c.auth
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ended = true
	if a.timer != nil {
		a.timer.Stop()
		a.timer = nil
	}
}

// refreshedFrame is the reply to refresh: the new token's exp in seconds
// since the epoch, absent when auth is off.
type refreshedFrame struct {
	Op  string  `json:"op"`
	Ref *string `json:"ref,omitempty"`
	Exp int64   `json:"exp,omitempty"`
}

// opRefresh replaces the connection's token with a fresh one. The new
// token must be valid (else unauthorized), speak for the same user (else
// forbidden) and allow every stream the connection is subscribed to (else
// forbidden); on any refusal the old token stays in force, expiry
// included. Once accepted, the new token's claims govern every later
// request and its exp the connection's expiry.
//
// It runs apart from the reader (see apart): a signature check goes
// deeper than a reader's stack needs to be.
func (c *Conn) opRefresh(ref *string, f *clientFrame) {
	apart(func() { c.refresh(ref, f) })
}

func (c *Conn) refresh(ref *string, f *clientFrame) {
	if f.Token == "" {
		c.replyError(ref, badRequest("token is required"))
		return
	}
	p, err := c.s.authenticate(f.Token)
	if err != nil {
		c.replyError(ref, err)
		return
	}
	if old := c.principal(); old == nil || p.anonymous != old.anonymous || p.userName() != old.userName() {
		c.replyError(ref, newClientError(decider.ErrForbidden, "the new token is for another user"))
		return
	}
	for stream := range c.subs {
		if p.allow(stream) != nil {
			c.replyError(ref, newClientError(decider.ErrForbidden, "the new token does not allow subscribed stream %s: unsubscribe first", stream))
			return
		}
	}
	if !c.setPrincipal(p) {
		return // expired meanwhile: the connection is closing
	}
	var exp int64
	if !p.expires.IsZero() {
		exp = p.expires.Unix()
	}
	c.sendJSON(refreshedFrame{Op: "refreshed", Ref: ref, Exp: exp})
}

package transport

import (
	"context"
	"fmt"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

// Limits of GET /streams.
const (
	defaultListLimit = 50
	maxListLimit     = 500
)

type streamEntry struct {
	Stream  string `json:"stream"`
	Version uint64 `json:"version"`
}

type streamsReply struct {
	Kind    string        `json:"kind"`
	Streams []streamEntry `json:"streams"`
	// Next is the last stream of the page when more follow, else null.
	Next *string `json:"next"`
}

// listStreams: GET /streams?kind=K&after=A&limit=L, the streams of a kind
// that have events, in byte order of their ids, strictly after A. Who may
// list is the runtime's rule (API.CheckList: a private kind's streams are
// listed to admins only, auth on); the token's streams claim leaves out the
// streams it does not allow.
func (s *Server) listStreams(c *fiber.Ctx) error {
	kind := QueryParam(c, "kind", "")
	if kind == "" {
		return badRequest("kind is required")
	}
	if err := events.ValidateKind(kind); err != nil {
		return badRequest("unknown stream kind %q", clip(kind))
	}
	after := QueryParam(c, "after", "")
	if after != "" {
		id, err := events.ParseStreamID(after)
		if err != nil || id.Kind != kind {
			return badRequest("after must be a stream id of kind %s, got %q", kind, clip(after))
		}
	}
	limit := defaultListLimit
	if q := c.Query("limit"); q != "" || c.Context().QueryArgs().Has("limit") {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 || n > maxListLimit {
			return badRequest("limit must be 1-%d, got %q", maxListLimit, clip(q))
		}
		limit = n
	}
	p := principalOf(c)
	if err := s.cfg.API.CheckList(kind, p.caller()); err != nil {
		return fmt.Errorf("list %s: %w", kind, err)
	}
	ctx, cancel := context.WithTimeout(s.base, s.cfg.CommandTimeout)
	defer cancel()
	// One more than the page, to know whether more follow; pages again
	// while the streams claim leaves streams out.
	out := make([]streamEntry, 0, min(limit+1, 64))
	for cursor := after; len(out) <= limit; {
		want := limit + 1 - len(out)
		page, err := s.cfg.Log.Streams(ctx, kind, cursor, want)
		if err != nil {
			return fmt.Errorf("list %s: %w", kind, err)
		}
		for _, in := range page {
			if p.allow(in.Stream) == nil {
				out = append(out, streamEntry{Stream: in.Stream, Version: in.Version})
			}
		}
		if len(page) < want {
			break // the kind has no more streams
		}
		cursor = page[len(page)-1].Stream
	}
	rep := streamsReply{Kind: kind, Streams: out}
	if len(out) > limit {
		rep.Streams = out[:limit]
		last := out[limit-1].Stream
		rep.Next = &last
	}
	return c.JSON(rep)
}

// stateAt is GET /streams/{stream}?at=N: the state folded up to version N.
func (s *Server) stateAt(c *fiber.Ctx, stream string) error {
	q := c.Query("at")
	at, err := strconv.ParseUint(q, 10, 64)
	if err != nil {
		return badRequest("at must be a version (a non-negative integer), got %q", clip(q))
	}
	ctx, cancel := context.WithTimeout(s.base, s.cfg.CommandTimeout)
	defer cancel()
	view, err := s.cfg.API.StateAt(ctx, stream, at, principalOf(c).caller())
	if err != nil {
		return fmt.Errorf("state of %s at %d: %w", stream, at, err)
	}
	c.Set(fiber.HeaderETag, etag(view.Version))
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(withEpoch(view.JSON, s.cfg.Log.Epoch()))
}

// subscribedState is the state a subscribe with "state":true carries: the
// stream's state at version v as GET /streams/{s}?at=v shows it, or JSON
// null for v = 0.
func (s *Server) subscribedState(ctx context.Context, stream string, v uint64, c decider.Caller) ([]byte, error) {
	if v == 0 {
		return []byte("null"), nil
	}
	view, err := s.cfg.API.StateAt(ctx, stream, v, c)
	if err != nil {
		return nil, err
	}
	return withEpoch(view.JSON, s.cfg.Log.Epoch()), nil
}

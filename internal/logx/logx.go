// Package logx holds logging helpers shared by the engine's packages.
package logx

import (
	"context"
	"log/slog"
)

// AtLeast returns a handler that passes on h's records of level min and
// above only: protoactor logs every activation at info, which would drown
// the engine's own logs.
func AtLeast(h slog.Handler, min slog.Level) slog.Handler { return levelFilter{h: h, min: min} }

type levelFilter struct {
	h   slog.Handler
	min slog.Level
}

func (f levelFilter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= f.min && f.h.Enabled(ctx, l)
}
func (f levelFilter) Handle(ctx context.Context, r slog.Record) error { return f.h.Handle(ctx, r) }
func (f levelFilter) WithAttrs(as []slog.Attr) slog.Handler {
	return levelFilter{f.h.WithAttrs(as), f.min}
}
func (f levelFilter) WithGroup(name string) slog.Handler {
	return levelFilter{f.h.WithGroup(name), f.min}
}

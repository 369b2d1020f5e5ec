package transport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/b6368a97/engine/actors"
	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/events"
)

// Protocol error codes (docs: protocol.md, "HTTP").
const (
	codeBadRequest      = "bad_request"
	codeUnauthorized    = "unauthorized"
	codeForbidden       = "forbidden"
	codeNotFound        = "not_found"
	codeConflict        = "conflict"
	codeWrongVersion    = "wrong_expected_version"
	codeTooLarge        = "too_large"
	codeUnsupportedType = "unsupported_media_type"
	codeRateLimited     = "rate_limited"
	codeUnavailable     = "unavailable"
	// codeEpochChanged refuses a resume (from with an epoch) whose epoch
	// is not the store's: the versions it counts from are another store's.
	codeEpochChanged = "epoch_changed"
	// codeInternal is the code of a 500, which the protocol leaves
	// unnamed: a server fault, its detail only in the server's log.
	codeInternal = "internal"
)

// The transport's own failures. Each is wrapped with a detail for the
// client and mapped by errorTable.
var (
	errBadRequest       = errors.New("bad request")
	errUnauthorized     = errors.New("unauthorized")
	errUnsupportedMedia = errors.New("unsupported media type")
	errRateLimited      = errors.New("rate limited")
	errBodyTooLarge     = errors.New("request body too large")
	errEpochChanged     = errors.New("epoch changed")
	errDraining         = &clientError{actors.ErrUnavailable, "the server is shutting down"}
)

// errorTable is the one mapping from errors to protocol statuses and codes,
// used by HTTP problems and WebSocket error frames alike. The first row
// whose err matches (errors.Is) wins. expose says whether the error's own
// text is safe to show the client; when false the client gets detail.
var errorTable = []struct {
	err    error
	status int
	code   string
	expose bool
	detail string
}{
	// A stream whose stored events its kind cannot fold is the server's
	// fault, whatever the kind's error wraps: first, so that no row below
	// can read it as the client's mistake.
	{actors.ErrCorruptStream, http.StatusInternalServerError, codeInternal, false, internalDetail},
	{events.ErrWrongExpectedVersion, http.StatusConflict, codeWrongVersion, true, ""},
	{errEpochChanged, http.StatusConflict, codeEpochChanged, true, ""},
	{events.ErrInvalidStream, http.StatusBadRequest, codeBadRequest, true, ""},
	{decider.ErrInvalid, http.StatusBadRequest, codeBadRequest, true, ""},
	{decider.ErrUnknownCommand, http.StatusBadRequest, codeBadRequest, true, ""},
	{events.ErrInvalidEvent, http.StatusBadRequest, codeBadRequest, true, ""},
	{actors.ErrUnknownKind, http.StatusBadRequest, codeBadRequest, true, ""},
	{errBadRequest, http.StatusBadRequest, codeBadRequest, true, ""},
	{errUnauthorized, http.StatusUnauthorized, codeUnauthorized, true, ""},
	{decider.ErrForbidden, http.StatusForbidden, codeForbidden, true, ""},
	{events.ErrNotFound, http.StatusNotFound, codeNotFound, true, ""},
	{decider.ErrConflict, http.StatusConflict, codeConflict, true, ""},
	{events.ErrDuplicateID, http.StatusConflict, codeConflict, true, ""},
	{events.ErrTooLarge, http.StatusRequestEntityTooLarge, codeTooLarge, true, ""},
	{errBodyTooLarge, http.StatusRequestEntityTooLarge, codeTooLarge, true, ""},
	{errUnsupportedMedia, http.StatusUnsupportedMediaType, codeUnsupportedType, true, ""},
	{errRateLimited, http.StatusTooManyRequests, codeRateLimited, true, ""},
	{context.DeadlineExceeded, http.StatusServiceUnavailable, codeUnavailable, false, "the stream's actor did not answer in time"},
	{actors.ErrUnavailable, http.StatusServiceUnavailable, codeUnavailable, false, "the service is unavailable; retry later"},
	{context.Canceled, http.StatusServiceUnavailable, codeUnavailable, false, "the request was cancelled"},
	{events.ErrClosed, http.StatusServiceUnavailable, codeUnavailable, false, "the service is unavailable; retry later"},
}

// fiberCode maps the status of one of Fiber's own errors (routing, body
// limit, upgrade) to a protocol status and code. A 405 is reported as the
// protocol's 404 not_found: the protocol knows no 405, and for a client
// the route does not exist.
func fiberCode(status int) (int, string) {
	switch {
	case status == http.StatusNotFound, status == http.StatusMethodNotAllowed:
		return http.StatusNotFound, codeNotFound
	case status == http.StatusRequestEntityTooLarge:
		return status, codeTooLarge
	case status == http.StatusUnsupportedMediaType:
		return status, codeUnsupportedType
	case status == http.StatusTooManyRequests:
		return status, codeRateLimited
	case status == http.StatusServiceUnavailable:
		return status, codeUnavailable
	case status >= 400 && status < 500:
		return http.StatusBadRequest, codeBadRequest
	}
	return http.StatusInternalServerError, codeInternal
}

// problem is an RFC 9457 problem detail with the protocol's code.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	Code   string `json:"code"`
}

// internalDetail is the detail of every 500: its cause is in the log only.
const internalDetail = "internal server error"

// classify maps err to a problem. internal is true for a 500, whose
// cause the caller logs and the client never sees.
func classify(err error) (p problem, internal bool) {
	p.Type = "about:blank"
	for _, row := range errorTable {
		if errors.Is(err, row.err) {
			p.Status, p.Code, p.Detail = row.status, row.code, row.detail
			p.Title = http.StatusText(p.Status)
			if row.status == http.StatusInternalServerError {
				return p, true
			}
			var ce *clientError
			switch {
			case row.expose:
				p.Detail = err.Error()
			case errors.As(err, &ce):
				p.Detail = ce.msg
			}
			return p, false
		}
	}
	var fe *fiber.Error
	if errors.As(err, &fe) {
		if status, code := fiberCode(fe.Code); code != codeInternal {
			p.Status, p.Code, p.Detail = status, code, fe.Message
			p.Title = http.StatusText(p.Status)
			return p, false
		}
	}
	p.Status, p.Code, p.Detail = http.StatusInternalServerError, codeInternal, internalDetail
	p.Title = http.StatusText(p.Status)
	return p, true
}

func (p problem) marshal() []byte {
	b, err := json.Marshal(p)
	if err != nil { // a struct of strings and an int always marshals
		return []byte(`{"type":"about:blank","title":"Internal Server Error","status":500,"code":"internal"}`)
	}
	return b
}

// clientError is one of the transport's sentinels with a message for the
// client; the message alone is the problem's detail.
type clientError struct {
	kind error
	msg  string
}

func (e *clientError) Error() string { return e.msg }
func (e *clientError) Unwrap() error { return e.kind }

// badRequest describes a client mistake (400 bad_request).
func badRequest(format string, args ...any) error {
	return &clientError{errBadRequest, fmt.Sprintf(format, args...)}
}

// checkEpoch refuses a resume under another epoch than the store's: from
// given (a resume from a version the client has read) together with a
// non-empty epoch that differs from current. Without from, or without
// epoch, there is nothing to check. redo tells the client how to start
// over.
func checkEpoch(from bool, epoch, current, redo string) error {
	if !from || epoch == "" || epoch == current {
		return nil
	}
	return &clientError{errEpochChanged, "the store was restored or replaced since the versions you hold were read (epoch " +
		strconv.Quote(clip(epoch)) + " is not the store's): " + redo + " and rebuild your state"}
}

// newClientError describes a failure of kind with a message for the client.
func newClientError(kind error, format string, args ...any) error {
	return &clientError{kind, fmt.Sprintf(format, args...)}
}

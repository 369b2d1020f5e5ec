package transport

import (
	"context"
	"encoding/json"
	"errors"
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
	codeIdemMismatch    = "idempotency_mismatch"
	codeWrongVersion    = "wrong_expected_version"
	codeTooLarge        = "too_large"
	codeUnsupportedType = "unsupported_media_type"
	codeRateLimited     = "rate_limited"
	codeUnavailable     = "unavailable"
	// codeLimitExceeded refuses what would take a client over one of its
	// limits: subscriptions of a connection, connections of an address.
	codeLimitExceeded = "limit_exceeded"
	// codeEpochChanged refuses a resume (from with an epoch) whose epoch
	// is not the store's: the versions it counts from are another store's.
	codeEpochChanged = "epoch_changed"
	// codeInternal is the code of a 500, which the protocol leaves
	// unnamed: a server fault, its detail only in the server's log.
	codeInternal = "internal"
)

// The transport's own failures. Each is wrapped with a message for the
// client (newClientError, badRequest) and mapped by errorTable.
var (
	errBadRequest       = errors.New("bad request")
	errUnauthorized     = errors.New("unauthorized")
	errUnsupportedMedia = errors.New("unsupported media type")
	errRateLimited      = errors.New("rate limited")
	errLimitExceeded    = errors.New("limit exceeded")
	errBodyTooLarge     = errors.New("request body too large")
	errEpochChanged     = errors.New("epoch changed")
	errDraining         = newClientError(actors.ErrUnavailable, "the server is shutting down")
)

// What a client reads.
//
// A problem's detail (HTTP) and an error frame's message (WebSocket) are
// text written for the client, never an error's Error(), which is a chain
// of wrapped errors for the log ("room:a PostMessage: invalid command:
// text is required"). The one mechanism: an error that has a message for
// the client implements clientMessager. classify finds the error's row
// in errorTable, then the outermost error in the chain that is a
// clientMessager and itself matches the row's sentinel, and shows its
// ClientMessage; when there is none, the row's fixed detail. So:
//
//   - Refusals are made with a message: events.Refuse(sentinel, …) (the
//     kinds through decider.Invalid, Conflict, Forbidden and
//     UnknownCommand; the runtime; package events for stream ids, event
//     data and sizes), newClientError and badRequest here, ClientError for
//     extensions. events.WrongExpectedVersionError and rateLimitError
//     carry their own.
//   - Wrapping for context (fmt.Errorf("%s %s: %w", stream, type, err)) is
//     free: it shows in the log, never to the client.
//   - An error that matches a row but carries no message shows the row's
//     fixed detail, so text nobody wrote for a client never leaks.
//   - A 500's detail is always internalDetail; its cause goes to the log
//     with the request id.
//   - Fiber's own errors (no route, body over the hard limit, upgrade
//     required) show a fixed sentence per status (fiberCode), not
//     Fiber's message.
//
// Messages are one clause in the protocol's terms (fields, streams,
// limits), lower case, without a final period, Go names or the code's own
// text: "text must be 1-4096 characters, got 0".
type clientMessager interface {
	error
	ClientMessage() string
}

// errorTable is the one mapping from errors to protocol statuses and codes,
// used by HTTP problems and WebSocket error frames alike. The first row
// whose err matches (errors.Is) wins. detail is what the client reads when
// the error carries no message of its own (see clientMessager).
var errorTable = []struct {
	err    error
	status int
	code   string
	detail string
}{
	// A stream whose stored events its kind cannot fold is the server's
	// fault, whatever the kind's error wraps: first, so that no row below
	// can read it as the client's mistake.
	{actors.ErrCorruptStream, http.StatusInternalServerError, codeInternal, internalDetail},
	{events.ErrWrongExpectedVersion, http.StatusConflict, codeWrongVersion, "the stream is not at the expected version"},
	{errEpochChanged, http.StatusConflict, codeEpochChanged, "the store's epoch changed: start over from version 0"},
	{events.ErrInvalidStream, http.StatusBadRequest, codeBadRequest, "invalid stream id"},
	{decider.ErrInvalid, http.StatusBadRequest, codeBadRequest, "invalid command"},
	{decider.ErrUnknownCommand, http.StatusBadRequest, codeBadRequest, "unknown command type"},
	{events.ErrInvalidEvent, http.StatusBadRequest, codeBadRequest, "the command's events are invalid"},
	{actors.ErrUnknownKind, http.StatusBadRequest, codeBadRequest, "unknown stream kind"},
	{errBadRequest, http.StatusBadRequest, codeBadRequest, "bad request"},
	{errUnauthorized, http.StatusUnauthorized, codeUnauthorized, "a valid bearer token is required"},
	{decider.ErrForbidden, http.StatusForbidden, codeForbidden, "not allowed"},
	{events.ErrNotFound, http.StatusNotFound, codeNotFound, "not found"},
	{decider.ErrConflict, http.StatusConflict, codeConflict, "the command is not allowed in the stream's current state"},
	{events.ErrDuplicateID, http.StatusConflict, codeConflict, "an event id is used already"},
	{actors.ErrIdempotencyMismatch, http.StatusUnprocessableEntity, codeIdemMismatch, "the idempotency key was used for another command"},
	{events.ErrTooLarge, http.StatusRequestEntityTooLarge, codeTooLarge, "an event is over the size limit"},
	{errBodyTooLarge, http.StatusRequestEntityTooLarge, codeTooLarge, "the request body is over the size limit"},
	{errUnsupportedMedia, http.StatusUnsupportedMediaType, codeUnsupportedType, "the body must be JSON"},
	{errRateLimited, http.StatusTooManyRequests, codeRateLimited, "too many requests: slow down"},
	{errLimitExceeded, http.StatusTooManyRequests, codeLimitExceeded, "a limit of this client was reached"},
	{context.DeadlineExceeded, http.StatusServiceUnavailable, codeUnavailable, "the stream's actor did not answer in time"},
	{actors.ErrUnavailable, http.StatusServiceUnavailable, codeUnavailable, "the service is unavailable; retry later"},
	{context.Canceled, http.StatusServiceUnavailable, codeUnavailable, "the request was cancelled"},
	{events.ErrClosed, http.StatusServiceUnavailable, codeUnavailable, "the service is unavailable; retry later"},
}

// clientMessage is the ClientMessage of the outermost error in err's tree
// that is a clientMessager matching kind, if there is one.
func clientMessage(err, kind error) (string, bool) {
	for err != nil {
		if m, ok := err.(clientMessager); ok && errors.Is(m, kind) {
			if msg := m.ClientMessage(); msg != "" {
				return msg, true
			}
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if msg, ok := clientMessage(e, kind); ok {
					return msg, true
				}
			}
			return "", false
		default:
			return "", false
		}
	}
	return "", false
}

// fiberCode maps the status of one of Fiber's own errors (routing, body
// limit, upgrade) to a protocol status and code, and the detail the client
// reads instead of Fiber's message. A 405 is reported as the protocol's
// 404 not_found: the protocol knows no 405, and for a client the route
// does not exist.
func fiberCode(status int) (int, string, string) {
	switch {
	case status == http.StatusNotFound, status == http.StatusMethodNotAllowed:
		return http.StatusNotFound, codeNotFound, "no route for this method and path"
	case status == http.StatusRequestEntityTooLarge:
		return status, codeTooLarge, "the request body is over the size limit"
	case status == http.StatusUnsupportedMediaType:
		return status, codeUnsupportedType, "the body must be JSON"
	case status == http.StatusTooManyRequests:
		return status, codeRateLimited, "too many requests: slow down"
	case status == http.StatusServiceUnavailable:
		return status, codeUnavailable, "the service is unavailable; retry later"
	case status == http.StatusRequestTimeout:
		return http.StatusBadRequest, codeBadRequest, "the request was not received within the read timeout"
	case status == http.StatusUpgradeRequired:
		return http.StatusBadRequest, codeBadRequest, "this is a WebSocket endpoint: send an upgrade request"
	case status >= 400 && status < 500:
		return http.StatusBadRequest, codeBadRequest, "malformed request"
	}
	return http.StatusInternalServerError, codeInternal, internalDetail
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
			if msg, ok := clientMessage(err, row.err); ok {
				p.Detail = msg
			}
			return p, false
		}
	}
	var fe *fiber.Error
	if errors.As(err, &fe) {
		if status, code, detail := fiberCode(fe.Code); code != codeInternal {
			p.Status, p.Code, p.Detail = status, code, detail
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

// badRequest describes a client mistake (400 bad_request).
func badRequest(format string, args ...any) error {
	return events.Refuse(errBadRequest, format, args...)
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
	return newClientError(errEpochChanged, "the store was restored or replaced since the versions you hold were read (epoch %s is not the store's): %s and rebuild your state",
		strconv.Quote(clip(epoch)), redo)
}

// newClientError describes a failure of kind (a sentinel of errorTable)
// with a message for the client.
func newClientError(kind error, format string, args ...any) error {
	return events.Refuse(kind, format, args...)
}

package mail

import (
	"errors"
	"net/textproto"
)

// PermanentError is a failure that sending the same message again will not
// fix: the server rejected it with a 5xx reply (unknown recipient,
// authentication refused, policy), the message itself is invalid (see
// ErrInvalidHeader), or the configuration cannot work. Anything else (4xx replies, network errors,
// timeouts, cancellation) is transient.
//
// The server's reply, when there was one, is in the chain as a
// *textproto.Error.
type PermanentError struct {
	Err error
}

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent reports true. It lets a caller that does not import this
// package (the actors runtime) recognise the error through an interface.
func (e *PermanentError) Permanent() bool { return true }

// IsPermanent reports whether err says that a retry will not help.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

func permanent(err error) error { return &PermanentError{Err: err} }

// classify marks 5xx replies permanent; everything else stays transient.
func classify(err error) error {
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 500 && te.Code <= 599 {
		return permanent(err)
	}
	return err
}

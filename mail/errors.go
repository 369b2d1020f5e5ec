package mail

import (
	"errors"
	"net/textproto"

	"github.com/b6368a97/engine/actors/decider"
)

// classify marks 5xx replies permanent; everything else stays transient.
func classify(err error) error {
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 500 && te.Code <= 599 {
		return decider.Permanent(err)
	}
	return err
}

package events

import (
	"fmt"
	"time"
)

// ValidateAppend checks an Append call's input the same way for every store:
// a parsable stream id, a valid expected version, at least one event, every
// event valid, and no id twice in the batch.
func ValidateAppend(stream string, expected ExpectedVersion, evs []Event) error {
	if _, err := ParseStreamID(stream); err != nil {
		return err
	}
	if expected < AnyVersion {
		return fmt.Errorf("%w: expected version %d", ErrInvalidEvent, int64(expected))
	}
	if len(evs) == 0 {
		return ErrNoEvents
	}
	for _, e := range evs {
		if err := e.Validate(); err != nil {
			return err
		}
	}
	// Ids must differ within one append. Most appends hold an event or a
	// few: compare those pairwise rather than build a set.
	if len(evs) <= 8 {
		for i := 1; i < len(evs); i++ {
			for j := range i {
				if evs[i].ID == evs[j].ID {
					return fmt.Errorf("%w: id %s twice in one append", ErrInvalidEvent, evs[i].ID)
				}
			}
		}
		return nil
	}
	seen := make(map[string]struct{}, len(evs))
	for _, e := range evs {
		if _, dup := seen[e.ID]; dup {
			return fmt.Errorf("%w: id %s twice in one append", ErrInvalidEvent, e.ID)
		}
		seen[e.ID] = struct{}{}
	}
	return nil
}

// NormalizeTime returns t in UTC truncated to milliseconds, or now so
// normalised when t is zero. Stores store what it returns, so a time
// survives a JSON round trip unchanged.
func NormalizeTime(t time.Time, now func() time.Time) time.Time {
	if t.IsZero() {
		t = now()
	}
	return t.UTC().Truncate(time.Millisecond)
}

// emptyObject is what a store records for an event appended without data.
var emptyObject = []byte("{}")

// NormalizeData returns d, or {} when d is empty.
func NormalizeData(d []byte) []byte {
	if len(d) == 0 {
		return emptyObject
	}
	return d
}

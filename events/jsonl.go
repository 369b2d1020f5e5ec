package events

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"
)

// MaxLineSize bounds one JSON Lines record: an event of MaxEventSize plus
// its envelope, with room for escaping.
const MaxLineSize = 3 * MaxEventSize

// LineError is a decoding error that names the 1-based line it is on.
type LineError struct {
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

// Encoder writes envelopes as JSON Lines: one compact JSON object a line.
type Encoder struct {
	w   *bufio.Writer
	buf []byte
}

// NewEncoder returns an Encoder writing to w. Call Flush when done.
func NewEncoder(w io.Writer) *Encoder {
	return &Encoder{w: bufio.NewWriter(w)}
}

// Encode writes one envelope (Event.AppendJSON) and its newline.
func (e *Encoder) Encode(ev Event) error {
	e.buf = append(ev.AppendJSON(e.buf[:0]), '\n')
	_, err := e.w.Write(e.buf)
	return err
}

// Flush writes any buffered data to the underlying writer.
func (e *Encoder) Flush() error { return e.w.Flush() }

// Decoder reads JSON Lines envelopes strictly: an unknown field, a value of
// the wrong type, trailing data, a missing stream, version, id or type, or
// a time outside the years 0000-9999 in UTC is an error naming the line.
// Blank lines are skipped.
type Decoder struct {
	sc   *bufio.Scanner
	line int
}

// NewDecoder returns a Decoder reading from r.
func NewDecoder(r io.Reader) *Decoder {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), MaxLineSize)
	return &Decoder{sc: sc}
}

// Line is the 1-based number of the line last read.
func (d *Decoder) Line() int { return d.line }

// Next returns the next envelope, or io.EOF after the last one. Other errors
// are *LineError.
func (d *Decoder) Next() (Event, error) {
	for d.sc.Scan() {
		d.line++
		raw := bytes.TrimSpace(d.sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		ev, err := DecodeEnvelope(raw)
		if err != nil {
			return Event{}, &LineError{Line: d.line, Err: err}
		}
		return ev, nil
	}
	if err := d.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return Event{}, &LineError{Line: d.line + 1, Err: fmt.Errorf("line longer than %d bytes", MaxLineSize)}
		}
		return Event{}, &LineError{Line: d.line + 1, Err: err}
	}
	return Event{}, io.EOF
}

// DecodeEnvelope strictly decodes one JSON envelope (see Decoder).
func DecodeEnvelope(raw []byte) (Event, error) {
	var ev Event
	if err := DecodeStrict(raw, &ev); err != nil {
		return Event{}, fmt.Errorf("bad envelope: %w", err)
	}
	switch {
	case ev.Stream == "":
		return Event{}, errors.New("bad envelope: missing stream")
	case ev.Version == 0:
		return Event{}, errors.New("bad envelope: missing version")
	case ev.ID == "":
		return Event{}, errors.New("bad envelope: missing id")
	case ev.Type == "":
		return Event{}, errors.New("bad envelope: missing type")
	}
	if _, err := ParseStreamID(ev.Stream); err != nil {
		return Event{}, err
	}
	// A store keeps the time in UTC, and TimeFormat has no room for a year
	// outside 0000-9999: such an event would export as a line that does
	// not import.
	if y := ev.Time.UTC().Year(); y < 0 || y > 9999 {
		return Event{}, fmt.Errorf("bad envelope: time %s is outside the years 0000-9999 in UTC", ev.Time.Format(time.RFC3339Nano))
	}
	return ev, nil
}

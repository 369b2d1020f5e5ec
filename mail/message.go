package mail

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"time"

	"github.com/b6368a97/engine/actors/decider"
)

// ErrInvalidHeader is in the chain of every refusal by the header policy
// (see the package documentation): a To or Subject with a line break or
// another control character, a To that is not one valid address. Such an
// error is also permanent.
var ErrInvalidHeader = errors.New("invalid header")

// message is one rendered email: its envelope and its RFC 5322 text.
type message struct {
	rcpt string // envelope recipient, a bare address
	id   string // Message-ID
	data []byte // headers and body, CRLF line endings, not dot-stuffed
}

// render builds the message for key: the one place where headers are
// built and checked, for the Outbox and SMTP alike. Every error is
// permanent: the input will be just as wrong next time.
func render(from *mail.Address, now time.Time, key string, msg decider.Email) (message, error) {
	if key == "" {
		return message{}, decider.Permanent(errors.New("mail: empty key"))
	}
	// A CR or LF in a header value would let the step's input add headers
	// (a Bcc) or end the headers early; refuse rather than repair, so that
	// a bad message is visible in the step's failure.
	to, err := parseAddress("recipient", msg.To)
	if err != nil {
		return message{}, err
	}
	if err := checkValue("subject", msg.Subject); err != nil {
		return message{}, err
	}
	id := MessageID(key)
	fields := []struct{ name, value string }{
		{"From", from.String()},
		{"To", to.String()},
		// QEncoding leaves a printable ASCII subject as it is.
		{"Subject", mime.QEncoding.Encode("utf-8", msg.Subject)},
		{"Date", now.Format(time.RFC1123Z)},
		{"Message-ID", id},
		{"MIME-Version", "1.0"},
		{"Content-Type", "text/plain; charset=utf-8"},
		// Quoted-printable keeps the body 7-bit clean and its lines short
		// whatever it holds, so no server can reject or rewrap it; hard
		// line breaks (CRLF, LF or a lone CR) become CRLF.
		{"Content-Transfer-Encoding", "quoted-printable"},
	}
	var b bytes.Buffer
	for _, f := range fields {
		// The inputs were checked above; this holds every value written,
		// whatever produced it, to the same rule.
		if err := checkValue(f.name, f.value); err != nil {
			return message{}, err
		}
		b.WriteString(fold(f.name+": "+f.value, 78))
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	if _, err := qp.Write([]byte(msg.Body)); err != nil {
		return message{}, decider.Permanent(fmt.Errorf("mail: encode body: %w", err))
	}
	if err := qp.Close(); err != nil {
		return message{}, decider.Permanent(fmt.Errorf("mail: encode body: %w", err))
	}
	if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	return message{rcpt: to.Address, id: id, data: b.Bytes()}, nil
}

// parseAddress checks an address header value (the recipient of a
// message, a configured sender): no control characters, exactly one
// RFC 5322 address. Its errors are permanent and match ErrInvalidHeader.
func parseAddress(what, value string) (*mail.Address, error) {
	if err := checkValue(what, value); err != nil {
		return nil, err
	}
	a, err := mail.ParseAddress(value)
	if err != nil {
		return nil, decider.Permanent(fmt.Errorf("mail: %w: %s %q is not one valid address: %w", ErrInvalidHeader, what, value, err))
	}
	return a, nil
}

// checkValue refuses a header value holding a line break (CR or LF) or
// another ASCII control character (NUL, …, DEL; a tab is allowed), none
// of which belongs in a one-line header value.
func checkValue(what, value string) error {
	i := strings.IndexFunc(value, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f })
	if i < 0 {
		return nil
	}
	problem := "a line break (CR or LF)"
	if c := value[i]; c != '\r' && c != '\n' {
		problem = fmt.Sprintf("the control character %U", rune(c))
	}
	return decider.Permanent(fmt.Errorf("mail: %w: %s %q contains %s (refused, not repaired)", ErrInvalidHeader, what, value, problem))
}

// MessageID is the Message-ID of the email sent for key: derived from it,
// so that a receiver can tell a repeat. The Outbox and SMTP use the same.
func MessageID(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "<" + hex.EncodeToString(sum[:16]) + "@" + messageIDDomain + ">"
}

// messageIDDomain is the right-hand side of every Message-ID.
const messageIDDomain = "engine.local"

// fold breaks a header line before spaces so that its lines stay within
// limit where the words allow (RFC 5322 2.2.3). Unfolding removes only
// the CRLF, so the text is unchanged; encoded words (RFC 2047) are
// separated by spaces and never longer than 75 characters, so a
// non-ASCII subject folds too.
func fold(line string, limit int) string {
	if len(line) <= limit {
		return line
	}
	var b strings.Builder
	width := 0
	for i, word := range strings.Split(line, " ") {
		if i > 0 {
			// An empty word (a run of spaces) never starts a line: a
			// line of only whitespace is not a valid fold.
			if width+1+len(word) > limit && width > 0 && word != "" {
				b.WriteString("\r\n")
				width = 0
			}
			b.WriteByte(' ')
			width++
		}
		b.WriteString(word)
		width += len(word)
	}
	return b.String()
}

package mail

import (
	"bytes"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"time"

	"github.com/b6368a97/engine/events"
)

// message is one rendered email: its envelope and its RFC 5322 text.
type message struct {
	rcpt string // envelope recipient, a bare address
	id   string // Message-ID
	data []byte // headers and body, CRLF line endings, not dot-stuffed
}

// render builds the message for key. Every error is permanent: the input
// will be just as wrong next time.
func render(from *mail.Address, now time.Time, key string, msg events.Email) (message, error) {
	if key == "" {
		return message{}, permanent(errors.New("mailer: empty key"))
	}
	// A CR or LF in a header value would let the step's input add headers
	// (a Bcc) or end the headers early; refuse rather than repair, so that
	// a bad message is visible in the step's failure.
	if hasControl(msg.To) {
		return message{}, permanent(fmt.Errorf("mailer: recipient %q contains a control character", msg.To))
	}
	if hasControl(msg.Subject) {
		return message{}, permanent(fmt.Errorf("mailer: subject %q contains a control character", msg.Subject))
	}
	to, err := mail.ParseAddress(msg.To)
	if err != nil {
		return message{}, permanent(fmt.Errorf("mailer: recipient %q: %w", msg.To, err))
	}
	id := MessageID(key)

	var b bytes.Buffer
	header := func(name, value string) {
		b.WriteString(fold(name+": "+value, 78))
		b.WriteString("\r\n")
	}
	header("From", from.String())
	header("To", to.String())
	// QEncoding leaves a printable ASCII subject as it is.
	header("Subject", mime.QEncoding.Encode("utf-8", msg.Subject))
	header("Date", now.Format(time.RFC1123Z))
	header("Message-ID", id)
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	// Quoted-printable keeps the body 7-bit clean and its lines short
	// whatever it holds, so no server can reject or rewrap it; hard line
	// breaks (CRLF, LF or a lone CR) become CRLF.
	header("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	if _, err := qp.Write([]byte(msg.Body)); err != nil {
		return message{}, permanent(fmt.Errorf("mailer: encode body: %w", err))
	}
	if err := qp.Close(); err != nil {
		return message{}, permanent(fmt.Errorf("mailer: encode body: %w", err))
	}
	if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	return message{rcpt: to.Address, id: id, data: b.Bytes()}, nil
}

// hasControl reports ASCII control characters (CR, LF, NUL, …) and DEL,
// none of which belongs in a one-line header value.
func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f })
}

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

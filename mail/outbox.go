package mail

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/b6368a97/engine/events"
)

// Outbox "sends" email by writing one RFC 5322 message per step key
// into a directory (the engine uses <data>/outbox/), where a person or a
// relay picks it up. The file is named after the key and written
// atomically (a temporary file renamed into place), and a key whose file
// exists is not written again: a repeated step leaves exactly one message.
//
// Safe for concurrent use; steps with distinct keys write distinct files.
type Outbox struct {
	// Dir is the outbox directory; it is created on first use.
	Dir string
	// From is the sender address. Default "engine <noreply@engine.local>".
	From string
	// Now stamps the Date header. Default time.Now.
	Now func() time.Time
}

// NewOutbox returns an Outbox writing into dir.
func NewOutbox(dir string) *Outbox {
	return &Outbox{Dir: dir}
}

// messageIDDomain is the right-hand side of every Message-ID.
const messageIDDomain = "engine.local"

// Send implements Sender.
func (m *Outbox) Send(ctx context.Context, key string, msg events.Email) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if key == "" {
		return permanent(errors.New("outbox: empty key"))
	}
	to, err := mail.ParseAddress(msg.To)
	if err != nil {
		return permanent(fmt.Errorf("outbox: recipient %q: %w", msg.To, err))
	}
	path := filepath.Join(m.Dir, OutboxFileName(key))
	if _, err := os.Stat(path); err == nil {
		return nil // sent before: no second message
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("outbox: %w", err)
	}
	body, err := m.render(key, to, msg)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(m.Dir, 0o755); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return writeAtomic(m.Dir, path, body)
}

func (m *Outbox) render(key string, to *mail.Address, msg events.Email) ([]byte, error) {
	from := m.From
	if from == "" {
		from = "engine <noreply@" + messageIDDomain + ">"
	}
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	var b bytes.Buffer
	header := func(name, value string) {
		b.WriteString(name)
		b.WriteString(": ")
		b.WriteString(value)
		b.WriteString("\r\n")
	}
	header("From", from)
	header("To", to.String())
	header("Subject", mime.QEncoding.Encode("utf-8", oneLine(msg.Subject)))
	header("Date", now().Format(time.RFC1123Z))
	header("Message-ID", MessageID(key))
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	// Quoted-printable keeps lines under 78 characters and 7-bit clean
	// whatever the body holds; hard line breaks become CRLF.
	qp := quotedprintable.NewWriter(&b)
	body := strings.ReplaceAll(msg.Body, "\r\n", "\n")
	body = strings.ReplaceAll(body, "\n", "\r\n")
	if _, err := qp.Write([]byte(body)); err != nil {
		return nil, fmt.Errorf("outbox: encode body: %w", err)
	}
	if err := qp.Close(); err != nil {
		return nil, fmt.Errorf("outbox: encode body: %w", err)
	}
	if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	return b.Bytes(), nil
}

// oneLine keeps a header value on one line: a CR or LF in a subject would
// otherwise inject headers.
func oneLine(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\r' || r == '\n' }), " ")
}

// MessageID is the Message-ID of the email sent for key: derived from it,
// so that a receiver can tell a repeat.
func MessageID(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "<" + hex.EncodeToString(sum[:16]) + "@" + messageIDDomain + ">"
}

// OutboxFileName is the file an Outbox writes for key: the key with
// every character outside [A-Za-z0-9._-] replaced by '_', plus ".eml"
// ("order:42/receipt" -> "order_42_receipt.eml"). Keys longer than 200
// bytes are cut and suffixed with a hash of the whole key.
func OutboxFileName(key string) string {
	b := []byte(key)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	name := string(b)
	if len(name) > 200 {
		sum := sha256.Sum256([]byte(key))
		name = name[:200] + "-" + hex.EncodeToString(sum[:8])
	}
	if strings.Trim(name, ".") == "" {
		name = "_" + name // never "." or ".."
	}
	return name + ".eml"
}

// writeAtomic writes data to path through a temporary file in dir, synced
// and renamed into place, then syncs dir: a reader sees the whole message
// or none, and a crash leaves no half-written message under the final name.
func writeAtomic(dir, path string, data []byte) (err error) {
	f, err := os.CreateTemp(dir, ".tmp-*.eml")
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("outbox: write: %w", err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("outbox: sync: %w", err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("outbox: close: %w", err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("outbox: rename: %w", err)
	}
	if d, derr := os.Open(dir); derr == nil {
		d.Sync() // best effort: the message is complete either way
		d.Close()
	}
	return nil
}

package mail

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/b6368a97/engine/actors/decider"
)

// Outbox "sends" email by writing one RFC 5322 message per step key
// into a directory (the engine uses <data>/outbox/), where a person or a
// relay picks it up. The file is named after the key and written
// atomically (a temporary file renamed into place), and a key whose file
// exists is not written again: a repeated step leaves exactly one message.
//
// A write cut short (the process killed between creating the temporary file
// and renaming it) leaves a ".tmp-*.eml" file, never a message: the first
// Send of an Outbox removes every such file from Dir before it writes
// anything, so one directory must be written by one Outbox at a time (the
// engine's data directory belongs to one process).
//
// Safe for concurrent use; steps with distinct keys write distinct files.
type Outbox struct {
	// Dir is the outbox directory; it is created on first use.
	Dir string
	// From is the sender address. Default "engine <noreply@engine.local>".
	From string
	// Now stamps the Date header. Default time.Now.
	Now func() time.Time

	// clean removes the temporary files of writes cut short, once, before
	// the first write.
	clean sync.Once
}

// tmpPattern names the temporary files of writeAtomic.
const tmpPattern = ".tmp-*.eml"

// defaultOutboxFrom is the sender of an Outbox without From.
const defaultOutboxFrom = "engine <noreply@" + messageIDDomain + ">"

// NewOutbox returns an Outbox writing into dir.
func NewOutbox(dir string) *Outbox {
	return &Outbox{Dir: dir}
}

// Send implements Sender. The message is built and checked against the
// header policy (see the package documentation) before the outbox is
// touched: a refused message writes nothing.
func (m *Outbox) Send(ctx context.Context, key string, msg decider.Email) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	fromText := m.From
	if fromText == "" {
		fromText = defaultOutboxFrom
	}
	from, err := parseAddress("sender", fromText)
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	mm, err := render(from, now(), key, msg)
	if err != nil {
		return err
	}
	path := filepath.Join(m.Dir, OutboxFileName(key))
	if _, err := os.Stat(path); err == nil {
		return nil // sent before: no second message
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("outbox: %w", err)
	}
	m.clean.Do(func() { removeStale(m.Dir) })
	if err := os.MkdirAll(m.Dir, 0o755); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return writeAtomic(m.Dir, path, mm.data)
}

// removeStale removes the temporary files left in dir by writes cut short
// (a kill between create and rename). It runs before this Outbox writes
// anything, so none of them is in use. Best effort: a file that cannot be
// removed is only clutter, never read as a message.
func removeStale(dir string) {
	entries, _ := os.ReadDir(dir) // a missing directory holds nothing
	for _, de := range entries {
		if name := de.Name(); de.Type().IsRegular() && strings.HasPrefix(name, ".tmp-") && strings.HasSuffix(name, ".eml") {
			os.Remove(filepath.Join(dir, name))
		}
	}
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
	f, err := os.CreateTemp(dir, tmpPattern)
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

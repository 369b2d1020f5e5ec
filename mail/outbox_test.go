package mail

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/b6368a97/engine/actors/decider"
)

func TestOutboxFileName(t *testing.T) {
	tests := []struct{ key, want string }{
		{"order:42/receipt", "order_42_receipt.eml"},
		{"user:ann.b-1/welcome", "user_ann.b-1_welcome.eml"},
		{"../../etc/passwd", ".._.._etc_passwd.eml"},
		{"..", "_...eml"},
		{"a b\r\nc", "a_b__c.eml"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			if got := OutboxFileName(tt.key); got != tt.want {
				t.Fatalf("OutboxFileName(%q) = %q, want %q", tt.key, got, tt.want)
			}
		})
	}
	long := OutboxFileName(strings.Repeat("x", 300))
	if len(long) > 255 || long == OutboxFileName(strings.Repeat("x", 301)) {
		t.Fatalf("long keys: %q", long)
	}
}

func TestOutbox(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox")
	at := time.Date(2026, 11, 25, 16, 37, 55, 0, time.UTC)
	m := &Outbox{Dir: dir, Now: func() time.Time { return at }}
	msg := decider.Email{To: "Ann <ann@example.com>", Subject: "Your receipt – order 42, with a subject long enough to be folded over two lines", Body: "Thanks!\nLine two, ünïcode.\n" + strings.Repeat("long ", 40)}
	ctx := context.Background()

	// Concurrent and repeated sends of one key leave one message.
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.Send(ctx, "order:42/receipt", msg); err != nil {
				t.Errorf("Send: %v", err)
			}
		}()
	}
	wg.Wait()
	if err := m.Send(ctx, "order:42/receipt", msg); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "order_42_receipt.eml" {
		t.Fatalf("outbox holds %v, want only order_42_receipt.eml", entries)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "order_42_receipt.eml"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(bytes.ReplaceAll(raw, []byte("\r\n"), nil), []byte("\n")) {
		t.Fatal("a line ends without CRLF")
	}
	parsed, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("not RFC 5322: %v\n%s", err, raw)
	}
	h := parsed.Header
	subject, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	date, err := h.Date()
	if err != nil || !date.Equal(at) {
		t.Fatalf("Date = %v, %v", date, err)
	}
	to, err := h.AddressList("To")
	if err != nil || len(to) != 1 || to[0].Address != "ann@example.com" {
		t.Fatalf("To = %v, %v", to, err)
	}
	checks := []struct{ name, got, want string }{
		{"Subject", subject, msg.Subject},
		{"Bcc", h.Get("Bcc"), ""},
		{"Message-ID", h.Get("Message-ID"), MessageID("order:42/receipt")},
		{"MIME-Version", h.Get("MIME-Version"), "1.0"},
		{"Content-Type", h.Get("Content-Type"), "text/plain; charset=utf-8"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if from, err := h.AddressList("From"); err != nil || len(from) != 1 {
		t.Errorf("From = %v, %v", from, err)
	}
	if !regexp.MustCompile(`^<[0-9a-f]{32}@engine\.local>$`).MatchString(h.Get("Message-ID")) {
		t.Errorf("Message-ID %q", h.Get("Message-ID"))
	}
	body, err := io.ReadAll(quotedprintable.NewReader(parsed.Body))
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.ReplaceAll(msg.Body, "\n", "\r\n"); strings.TrimRight(string(body), "\r\n") != strings.TrimRight(want, "\r\n") {
		t.Errorf("body = %q, want %q", body, want)
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".tmp-*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}

	t.Run("bad recipient is a permanent failure", func(t *testing.T) {
		err := m.Send(ctx, "user:x/welcome", decider.Email{To: "not an address"})
		if err == nil || !decider.IsPermanent(err) {
			t.Fatalf("Send = %v, want a permanent error", err)
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := m.Send(cctx, "user:y/welcome", msg); !errors.Is(err, context.Canceled) {
			t.Fatalf("Send = %v", err)
		}
	})
}

// A write cut short by a kill leaves a temporary file; the next process's
// outbox removes it before its first message, and leaves everything else.
func TestOutboxRemovesStaleTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	keep := []string{"order_1_receipt.eml", ".tmp-notes.txt", "tmp-1.eml"}
	for _, name := range append([]string{".tmp-123.eml", ".tmp-456.eml"}, keep...) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, ".tmp-dir.eml"), 0o755); err != nil {
		t.Fatal(err)
	}
	keep = append(keep, ".tmp-dir.eml")
	m := NewOutbox(dir)
	if err := m.Send(context.Background(), "order:2/receipt", decider.Email{To: "ann@example.com", Subject: "hi", Body: "hi"}); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, de := range entries {
		got = append(got, de.Name())
	}
	want := append(keep, "order_2_receipt.eml")
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("outbox holds %v, want %v", got, want)
	}
}

// An outbox whose directory does not exist yet starts cleanly.
func TestOutboxCleanMissingDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "outbox")
	if err := NewOutbox(dir).Send(context.Background(), "k", decider.Email{To: "ann@example.com", Subject: "hi", Body: "hi"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "k.eml")); err != nil {
		t.Fatal(err)
	}
}

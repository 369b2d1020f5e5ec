package mail

import (
	"context"
	"errors"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/b6368a97/engine/actors/decider"
)

// headerCases break the header policy: each is refused by both senders.
var headerCases = []struct {
	name string
	msg  decider.Email
}{
	{"CR in subject", decider.Email{To: "ann@example.com", Subject: "Hi\rBcc: evil@example.com", Body: "x"}},
	{"LF in subject", decider.Email{To: "ann@example.com", Subject: "Hi\nBcc: evil@example.com", Body: "x"}},
	{"CRLF in subject", decider.Email{To: "ann@example.com", Subject: "Hi\r\nBcc: evil@example.com", Body: "x"}},
	{"CRLF ending the subject", decider.Email{To: "ann@example.com", Subject: "Hi\r\n", Body: "x"}},
	{"CR in To", decider.Email{To: "ann@example.com\rBcc: evil@example.com", Subject: "Hi", Body: "x"}},
	{"LF in To", decider.Email{To: "ann@example.com\nBcc: evil@example.com", Subject: "Hi", Body: "x"}},
	{"CRLF in To", decider.Email{To: "ann@example.com\r\nBcc: evil@example.com", Subject: "Hi", Body: "x"}},
	// Folding white space, which net/mail would accept and unfold.
	{"CRLF folding the To", decider.Email{To: "Ann\r\n <ann@example.com>", Subject: "Hi", Body: "x"}},
	{"NUL in subject", decider.Email{To: "ann@example.com", Subject: "Hi\x00", Body: "x"}},
	{"two recipients", decider.Email{To: "ann@example.com, bob@example.com", Subject: "Hi", Body: "x"}},
	{"a group", decider.Email{To: "friends: ann@example.com, bob@example.com;", Subject: "Hi", Body: "x"}},
	{"not an address", decider.Email{To: "ann", Subject: "Hi", Body: "x"}},
	{"empty To", decider.Email{To: "", Subject: "Hi", Body: "x"}},
}

// checkRefusal: err is a permanent refusal by the header policy, and says
// so to the runtime (decider.IsPermanent).
func checkRefusal(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("Send succeeded, want a refusal")
	}
	if !errors.Is(err, ErrInvalidHeader) {
		t.Fatalf("Send = %v, want ErrInvalidHeader in the chain", err)
	}
	if !decider.IsPermanent(err) {
		t.Fatalf("Send = %v, IsPermanent = false", err)
	}
}

func TestHeaderPolicyOutbox(t *testing.T) {
	for _, tt := range headerCases {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "outbox")
			checkRefusal(t, NewOutbox(dir).Send(context.Background(), "user:ann/welcome", tt.msg))
			// Refused before the outbox is touched: not even the directory.
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("outbox directory exists after a refusal (%v)", err)
			}
		})
	}
	t.Run("a bad sender is refused too", func(t *testing.T) {
		o := &Outbox{Dir: t.TempDir(), From: "Engine\r\nBcc: evil@example.com <e@example.org>"}
		checkRefusal(t, o.Send(context.Background(), "k", decider.Email{To: "ann@example.com", Subject: "Hi"}))
	})
}

// The SMTP path refuses before it connects: the server counts every
// connection it accepts.
func TestHeaderPolicySMTP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var conns atomic.Int64
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			c.Close() // before the greeting: Send fails after the Add
		}
	}()
	addr := l.Addr().(*net.TCPAddr)
	m := NewSMTP(Config{Host: "127.0.0.1", Port: addr.Port, TLS: TLSNone, Logger: testLogger(t)})
	for _, tt := range headerCases {
		t.Run(tt.name, func(t *testing.T) {
			checkRefusal(t, m.Send(context.Background(), "user:ann/welcome", tt.msg))
			if n := conns.Load(); n != 0 {
				t.Fatalf("the mailer connected %d times", n)
			}
		})
	}
	t.Run("a bad sender is refused too", func(t *testing.T) {
		bad := NewSMTP(Config{Host: "127.0.0.1", Port: addr.Port, From: "e@example.org\r\nBcc: evil@example.com", Logger: testLogger(t)})
		checkRefusal(t, bad.Send(context.Background(), "k", decider.Email{To: "ann@example.com", Subject: "Hi"}))
		if n := conns.Load(); n != 0 {
			t.Fatalf("the mailer connected %d times", n)
		}
	})
	// The counter works: a good message does connect (and fails,
	// transiently, on the closed connection).
	t.Run("a good message connects", func(t *testing.T) {
		err := m.Send(context.Background(), "k", decider.Email{To: "ann@example.com", Subject: "Hi", Body: "x"})
		if err == nil || decider.IsPermanent(err) || errors.Is(err, ErrInvalidHeader) {
			t.Fatalf("Send = %v, want a transient error", err)
		}
		if n := conns.Load(); n != 1 {
			t.Fatalf("the mailer connected %d times, want 1", n)
		}
	})
}

func TestRenderAcceptsTheLegalEdges(t *testing.T) {
	from, err := mail.ParseAddress(defaultOutboxFrom)
	if err != nil {
		t.Fatal(err)
	}
	for _, subject := range []string{"", "tab\tinside", "ünïcode – ✓", "=?utf-8?q?looks_encoded?="} {
		if _, err := render(from, testNow, "k", decider.Email{To: "Ann <ann@example.com>", Subject: subject}); err != nil {
			t.Errorf("render(subject %q) = %v", subject, err)
		}
	}
}

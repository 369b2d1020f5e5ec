package mail

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/emersion/go-smtp"
)

var testNow = time.Date(2026, 11, 25, 16, 37, 55, 0, time.UTC)

// promptly bounds how long a Send may take to give up once its context
// ends. It is a liveness bound (the call must not hang), not a speed
// target.
const promptly = 10 * time.Second

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// parsed is a received message taken apart.
type parsed struct {
	header  mail.Header
	subject string
	body    string
}

func parse(t *testing.T, data []byte) parsed {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("received message does not parse: %v\n%s", err, data)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		t.Fatalf("subject %q: %v", m.Header.Get("Subject"), err)
	}
	if got := m.Header.Get("Content-Transfer-Encoding"); got != "quoted-printable" {
		t.Fatalf("Content-Transfer-Encoding = %q", got)
	}
	body, err := io.ReadAll(quotedprintable.NewReader(m.Body))
	if err != nil {
		t.Fatalf("body: %v", err)
	}
	return parsed{header: m.Header, subject: subject, body: string(body)}
}

// crlf is body as it arrives: every line break CRLF, ending in one.
func crlf(body string) string {
	body = strings.ReplaceAll(body, "\r\n", "\n")
	body = strings.ReplaceAll(body, "\r", "\n")
	body = strings.ReplaceAll(body, "\n", "\r\n")
	if body != "" && !strings.HasSuffix(body, "\r\n") {
		body += "\r\n"
	}
	return body
}

func TestSendDelivers(t *testing.T) {
	ts := startServer(t, serverOpts{})
	m := NewSMTP(ts.config(t))
	tests := []struct {
		name    string
		key     string
		msg     decider.Email
		rcpt    string
		toName  string
		subject string
	}{
		{
			name: "ascii",
			key:  "user:ann/welcome",
			msg:  decider.Email{To: "ann@example.com", Subject: "Welcome", Body: "Hello Ann.\nSee you soon.\n"},
			rcpt: "ann@example.com",
		},
		{
			name:   "non-ascii subject, name and body",
			key:    "order:42/receipt",
			msg:    decider.Email{To: "Änn Müller <ann@example.com>", Subject: "Your receipt – order 42 ✓", Body: "Grüße, Änn!\nTotal: 12,50 €\n日本語のテキスト\n"},
			rcpt:   "ann@example.com",
			toName: "Änn Müller",
		},
		{
			// A line holding only "." ends DATA unless it is dot-stuffed.
			name: "lines starting with a dot",
			key:  "order:43/receipt",
			msg:  decider.Email{To: "bob@example.com", Subject: ".dotted subject", Body: ".first line\n.\n..two dots\nlast line"},
			rcpt: "bob@example.com",
		},
		{
			name: "long lines, trailing spaces, CRLF and lone CR",
			key:  "order:44/receipt",
			msg:  decider.Email{To: "<carol@example.com>", Subject: strings.Repeat("long subject ", 12) + "end", Body: strings.Repeat("word ", 60) + "\r\ntrailing space \nlone\rCR\nend"},
			rcpt: "carol@example.com",
		},
		{
			name: "empty body",
			key:  "order:45/receipt",
			msg:  decider.Email{To: "dan@example.com", Subject: "", Body: ""},
			rcpt: "dan@example.com",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(ts.messages())
			if err := m.Send(context.Background(), tt.key, tt.msg); err != nil {
				t.Fatalf("Send: %v", err)
			}
			msgs := ts.messages()
			if len(msgs) != before+1 {
				t.Fatalf("server holds %d messages, want %d", len(msgs), before+1)
			}
			got := msgs[len(msgs)-1]
			if got.from != "engine@example.org" || len(got.to) != 1 || got.to[0] != tt.rcpt {
				t.Fatalf("envelope from %q to %q, want engine@example.org to [%s]", got.from, got.to, tt.rcpt)
			}
			if bytes.Contains(bytes.ReplaceAll(got.data, []byte("\r\n"), nil), []byte("\n")) {
				t.Fatalf("message has a bare LF:\n%q", got.data)
			}
			for _, line := range strings.Split(string(got.data), "\r\n") {
				if len(line) > 78 {
					t.Fatalf("line longer than 78 characters: %q", line)
				}
			}
			p := parse(t, got.data)
			from, err := mail.ParseAddress(p.header.Get("From"))
			if err != nil || from.Address != "engine@example.org" || from.Name != "Engine" {
				t.Fatalf("From = %q (%v)", p.header.Get("From"), err)
			}
			to, err := mail.ParseAddress(p.header.Get("To"))
			if err != nil || to.Address != tt.rcpt || to.Name != tt.toName {
				t.Fatalf("To = %q (%v), want %q <%s>", p.header.Get("To"), err, tt.toName, tt.rcpt)
			}
			if p.subject != tt.msg.Subject {
				t.Fatalf("Subject = %q, want %q", p.subject, tt.msg.Subject)
			}
			for _, r := range p.header.Get("Subject") {
				if r > 0x7e {
					t.Fatalf("Subject header not RFC 2047 encoded: %q", p.header.Get("Subject"))
				}
			}
			if got, want := p.header.Get("Message-ID"), MessageID(tt.key); got != want {
				t.Fatalf("Message-ID = %q, want %q", got, want)
			}
			if date, err := p.header.Date(); err != nil || !date.Equal(testNow) {
				t.Fatalf("Date = %q (%v), want %v", p.header.Get("Date"), err, testNow)
			}
			if got := p.header.Get("Content-Type"); got != "text/plain; charset=utf-8" {
				t.Fatalf("Content-Type = %q", got)
			}
			if got := p.header.Get("MIME-Version"); got != "1.0" {
				t.Fatalf("MIME-Version = %q", got)
			}
			if want := crlf(tt.msg.Body); p.body != want {
				t.Fatalf("body = %q, want %q", p.body, want)
			}
		})
	}
}

func TestSendAuth(t *testing.T) {
	users := map[string]string{"mailer@example.org": "p@ss:w/rd"}
	tests := []struct {
		name      string
		opts      serverOpts
		user      string
		pass      string
		permanent bool // else success
	}{
		{name: "good credentials", opts: serverOpts{users: users}, user: "mailer@example.org", pass: "p@ss:w/rd"},
		{name: "wrong password", opts: serverOpts{users: users}, user: "mailer@example.org", pass: "nope", permanent: true},
		{name: "server requires auth, none configured", opts: serverOpts{users: users}, permanent: true},
		{name: "credentials but server offers no AUTH", opts: serverOpts{}, user: "mailer@example.org", pass: "x", permanent: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, tt.opts)
			cfg := ts.config(t)
			cfg.Username, cfg.Password = tt.user, tt.pass
			err := NewSMTP(cfg).Send(context.Background(), "user:ann/welcome", decider.Email{To: "ann@example.com", Subject: "Hi", Body: "Hi"})
			msgs := ts.messages()
			if tt.permanent {
				if err == nil || !decider.IsPermanent(err) {
					t.Fatalf("Send = %v, want a permanent error", err)
				}
				if len(msgs) != 0 {
					t.Fatalf("server holds %d messages, want 0", len(msgs))
				}
				return
			}
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			if len(msgs) != 1 || msgs[0].user != tt.user {
				t.Fatalf("messages %+v, want one sent as %q", msgs, tt.user)
			}
		})
	}
}

// Credentials never travel in clear text to a host that is not localhost.
func TestSendAuthRefusesPlaintextToRemote(t *testing.T) {
	// 127.0.0.2 is loopback on Linux, but not a name net/smtp (or this
	// package) treats as local.
	ts := startServerOn(t, "127.0.0.2", serverOpts{users: map[string]string{"u": "p"}})
	cfg := ts.config(t)
	cfg.Username, cfg.Password = "u", "p"
	err := NewSMTP(cfg).Send(context.Background(), "k", decider.Email{To: "ann@example.com", Subject: "Hi", Body: "Hi"})
	if err == nil || !decider.IsPermanent(err) || !strings.Contains(err.Error(), "unencrypted") {
		t.Fatalf("Send = %v, want a permanent refusal to send credentials unencrypted", err)
	}
	if n := len(ts.messages()); n != 0 {
		t.Fatalf("server holds %d messages", n)
	}
}

func startServerOn(t *testing.T, host string, opts serverOpts) *testServer {
	t.Helper()
	opts.listenHost = host
	if host != "127.0.0.1" {
		// Probe first so that a system without the address skips
		// rather than fails.
		if !canListen(host) {
			t.Skipf("cannot listen on %s", host)
		}
	}
	return startServer(t, opts)
}

func TestSendTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	_, otherPool := selfSigned(t)
	tests := []struct {
		name      string
		opts      serverOpts
		mode      TLSMode
		clientTLS *tls.Config
		skip      bool
		user      string
		wantTLS   bool
		wantErr   bool
		permanent bool
	}{
		{name: "starttls offered, trusted root", opts: serverOpts{startTLS: serverTLS(cert)}, clientTLS: &tls.Config{RootCAs: pool}, wantTLS: true},
		{name: "starttls offered, skip verify", opts: serverOpts{startTLS: serverTLS(cert)}, skip: true, wantTLS: true},
		{name: "starttls required and offered, with auth", opts: serverOpts{startTLS: serverTLS(cert), users: map[string]string{"u": "p"}}, mode: TLSRequired, clientTLS: &tls.Config{RootCAs: pool}, user: "u", wantTLS: true},
		{name: "starttls offered, untrusted certificate", opts: serverOpts{startTLS: serverTLS(cert)}, clientTLS: &tls.Config{RootCAs: otherPool}, wantErr: true},
		{name: "starttls not offered, opportunistic", opts: serverOpts{}, wantTLS: false},
		{name: "starttls not offered, required", opts: serverOpts{}, mode: TLSRequired, wantErr: true, permanent: true},
		{name: "tls=none ignores the offer", opts: serverOpts{startTLS: serverTLS(cert)}, mode: TLSNone, wantTLS: false},
		{name: "implicit tls", opts: serverOpts{implicitTLS: serverTLS(cert)}, mode: TLSImplicit, clientTLS: &tls.Config{RootCAs: pool}, wantTLS: true},
		{name: "implicit tls, untrusted certificate", opts: serverOpts{implicitTLS: serverTLS(cert)}, mode: TLSImplicit, clientTLS: &tls.Config{RootCAs: otherPool}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, tt.opts)
			cfg := ts.config(t)
			cfg.TLS = tt.mode
			cfg.TLSConfig = tt.clientTLS
			cfg.InsecureSkipVerify = tt.skip
			if tt.user != "" {
				cfg.Username, cfg.Password = tt.user, tt.opts.users[tt.user]
			}
			err := NewSMTP(cfg).Send(context.Background(), "user:ann/welcome", decider.Email{To: "ann@example.com", Subject: "Hi", Body: "Hi"})
			msgs := ts.messages()
			if tt.wantErr {
				if err == nil {
					t.Fatal("Send succeeded, want an error")
				}
				if decider.IsPermanent(err) != tt.permanent {
					t.Fatalf("Send = %v, IsPermanent = %v, want %v", err, decider.IsPermanent(err), tt.permanent)
				}
				if len(msgs) != 0 {
					t.Fatalf("server holds %d messages, want 0", len(msgs))
				}
				return
			}
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			if len(msgs) != 1 {
				t.Fatalf("server holds %d messages, want 1", len(msgs))
			}
			if msgs[0].tls != tt.wantTLS {
				t.Fatalf("session TLS = %v, want %v", msgs[0].tls, tt.wantTLS)
			}
			if msgs[0].user != tt.user {
				t.Fatalf("authenticated as %q, want %q", msgs[0].user, tt.user)
			}
		})
	}
}

// A server that answers 451 N times and then accepts: N transient
// failures, then success, and exactly one message delivered.
func TestSendTransientThenSuccess(t *testing.T) {
	const refusals = 3
	ts := startServer(t, serverOpts{dataVerdict: func(n int) error {
		if n <= refusals {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
		}
		return nil
	}})
	m := NewSMTP(ts.config(t))
	msg := decider.Email{To: "ann@example.com", Subject: "Receipt", Body: "Thanks"}
	for i := 1; i <= refusals; i++ {
		err := m.Send(context.Background(), "order:42/receipt", msg)
		if err == nil {
			t.Fatalf("attempt %d succeeded, want 451", i)
		}
		if decider.IsPermanent(err) {
			t.Fatalf("attempt %d: %v is permanent, want transient", i, err)
		}
		var te *textproto.Error
		if !errors.As(err, &te) || te.Code != 451 {
			t.Fatalf("attempt %d: %v, want the 451 reply in the chain", i, err)
		}
	}
	if err := m.Send(context.Background(), "order:42/receipt", msg); err != nil {
		t.Fatalf("attempt %d: %v", refusals+1, err)
	}
	if got := ts.attempts(); got != refusals+1 {
		t.Fatalf("server saw %d DATA attempts, want %d", got, refusals+1)
	}
	msgs := ts.messages()
	if len(msgs) != 1 {
		t.Fatalf("server holds %d messages, want 1", len(msgs))
	}
	if id := parse(t, msgs[0].data).header.Get("Message-ID"); id != MessageID("order:42/receipt") {
		t.Fatalf("Message-ID = %q", id)
	}
}

func TestSendPermanentRejection(t *testing.T) {
	tests := []struct {
		name string
		opts serverOpts
		code int
	}{
		{name: "550 at RCPT", opts: serverOpts{rcptErr: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}}, code: 550},
		{name: "554 at DATA", opts: serverOpts{dataVerdict: func(int) error {
			return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "rejected by policy"}
		}}, code: 554},
		{name: "452 at RCPT is transient", opts: serverOpts{rcptErr: &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "mailbox full"}}, code: 452},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, tt.opts)
			err := NewSMTP(ts.config(t)).Send(context.Background(), "k", decider.Email{To: "nobody@example.com", Subject: "Hi", Body: "Hi"})
			var te *textproto.Error
			if err == nil || !errors.As(err, &te) || te.Code != tt.code {
				t.Fatalf("Send = %v, want reply %d in the chain", err, tt.code)
			}
			if want := tt.code >= 500; decider.IsPermanent(err) != want {
				t.Fatalf("decider.IsPermanent(%v) = %v, want %v", err, decider.IsPermanent(err), want)
			}
			if n := len(ts.messages()); n != 0 {
				t.Fatalf("server holds %d messages", n)
			}
		})
	}
}

// Send gives up promptly when its context ends while the server stalls,
// and says so with the context's error.
func TestSendContextEnds(t *testing.T) {
	msg := decider.Email{To: "ann@example.com", Subject: "Hi", Body: "Hi"}
	type setup struct {
		cfg     Config
		stalled <-chan struct{}
	}
	stallGreeting := func(t *testing.T) setup {
		host, port, accepted := stallListener(t)
		return setup{cfg: Config{Host: host, Port: port, Logger: testLogger(t)}, stalled: accepted}
	}
	stallData := func(t *testing.T) setup {
		ts := startServer(t, serverOpts{stallData: true})
		return setup{cfg: ts.config(t), stalled: ts.stalled}
	}
	tests := []struct {
		name  string
		setup func(*testing.T) setup
		// ctx returns the Send context; cancelOnStall cancels it once the
		// server reports the stall.
		timeout       time.Duration // context deadline; 0 for cancellation
		cfgTimeout    time.Duration // Config.Timeout
		cancelOnStall bool
		want          error
	}{
		{name: "cancel during DATA", setup: stallData, cancelOnStall: true, want: context.Canceled},
		{name: "cancel before the greeting", setup: stallGreeting, cancelOnStall: true, want: context.Canceled},
		{name: "deadline during DATA", setup: stallData, timeout: 200 * time.Millisecond, want: context.DeadlineExceeded},
		{name: "deadline before the greeting", setup: stallGreeting, timeout: 200 * time.Millisecond, want: context.DeadlineExceeded},
		{name: "Config.Timeout", setup: stallGreeting, cfgTimeout: 200 * time.Millisecond, want: context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.setup(t)
			cfg := s.cfg
			cfg.Timeout = tt.cfgTimeout
			if cfg.Timeout == 0 {
				cfg.Timeout = -1 // only the test's context bounds the call
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.timeout > 0 {
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			done := make(chan error, 1)
			go func() { done <- NewSMTP(cfg).Send(ctx, "k", msg) }()
			select {
			case <-s.stalled:
			case err := <-done:
				t.Fatalf("Send returned %v before the server stalled", err)
			case <-time.After(promptly):
				t.Fatal("the server never saw the connection")
			}
			if tt.cancelOnStall {
				cancel()
			}
			select {
			case err := <-done:
				if !errors.Is(err, tt.want) {
					t.Fatalf("Send = %v, want %v in the chain", err, tt.want)
				}
				if decider.IsPermanent(err) {
					t.Fatalf("Send = %v is permanent, want transient", err)
				}
			case <-time.After(promptly):
				t.Fatalf("Send still blocked %v after its context ended", promptly)
			}
		})
	}
}

// Bad input fails permanently before any connection is made: the mailer
// points at a port nobody listens on, so a dial would have been a
// transient error instead.
func TestSendRejectsBadMessages(t *testing.T) {
	host, port := closedPort(t)
	m := NewSMTP(Config{Host: host, Port: port, Logger: testLogger(t)})
	tests := []struct {
		name string
		key  string
		msg  decider.Email
	}{
		{"CRLF in subject", "k", decider.Email{To: "ann@example.com", Subject: "Hi\r\nBcc: evil@example.com", Body: "x"}},
		{"LF in subject", "k", decider.Email{To: "ann@example.com", Subject: "Hi\nBcc: evil@example.com", Body: "x"}},
		{"CR in recipient", "k", decider.Email{To: "ann@example.com\rBcc: evil@example.com", Subject: "Hi", Body: "x"}},
		{"LF in recipient", "k", decider.Email{To: "Ann\n <ann@example.com>", Subject: "Hi", Body: "x"}},
		{"NUL in subject", "k", decider.Email{To: "ann@example.com", Subject: "Hi\x00", Body: "x"}},
		{"two recipients", "k", decider.Email{To: "ann@example.com, bob@example.com", Subject: "Hi", Body: "x"}},
		{"not an address", "k", decider.Email{To: "ann", Subject: "Hi", Body: "x"}},
		{"empty recipient", "k", decider.Email{To: "", Subject: "Hi", Body: "x"}},
		{"empty key", "", decider.Email{To: "ann@example.com", Subject: "Hi", Body: "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := m.Send(context.Background(), tt.key, tt.msg)
			if err == nil || !decider.IsPermanent(err) {
				t.Fatalf("Send = %v, want a permanent error", err)
			}
		})
	}
	t.Run("a good message does dial", func(t *testing.T) {
		err := m.Send(context.Background(), "k", decider.Email{To: "ann@example.com", Subject: "Hi", Body: "x"})
		if err == nil || decider.IsPermanent(err) {
			t.Fatalf("Send = %v, want a transient dial error", err)
		}
	})
}

func TestSendInvalidConfig(t *testing.T) {
	m := NewSMTP(Config{Port: 25}) // no host
	err := m.Send(context.Background(), "k", decider.Email{To: "ann@example.com", Subject: "Hi", Body: "x"})
	if err == nil || !decider.IsPermanent(err) || !strings.Contains(err.Error(), "host") {
		t.Fatalf("Send = %v, want a permanent configuration error", err)
	}
}

func TestIsPermanent(t *testing.T) {
	p := decider.Permanent(errors.New("no"))
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain", errors.New("x"), false},
		{"permanent", p, true},
		{"wrapped", errors.Join(errors.New("ctx"), p), true},
		{"5xx reply", classify(&textproto.Error{Code: 550, Msg: "no"}), true},
		{"4xx reply", classify(&textproto.Error{Code: 421, Msg: "later"}), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := decider.IsPermanent(tt.err); got != tt.want {
				t.Fatalf("decider.IsPermanent(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func canListen(host string) bool {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// closedPort is a loopback port nobody listens on.
func closedPort(t *testing.T) (string, int) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return "127.0.0.1", port
}

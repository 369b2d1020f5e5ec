package mail

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// serverOpts shape a test SMTP server.
type serverOpts struct {
	// listenHost defaults to 127.0.0.1.
	listenHost string
	// startTLS, when set, is offered as STARTTLS.
	startTLS *tls.Config
	// implicitTLS, when set, wraps the listener: TLS from the first byte.
	implicitTLS *tls.Config
	// users enables AUTH PLAIN (allowed without TLS) and requires it.
	users map[string]string
	// rcptErr rejects every RCPT TO.
	rcptErr error
	// dataVerdict decides the n-th DATA (1-based); nil accepts all.
	dataVerdict func(n int) error
	// stallData makes DATA hang (after reading the message) until the
	// test ends; each stall is announced on testServer.stalled.
	stallData bool
}

// received is one message the server accepted.
type received struct {
	from string
	to   []string
	data []byte
	tls  bool
	user string
}

// testServer is a real go-smtp server on a loopback port, owned by the
// test: its goroutines stop in t.Cleanup.
type testServer struct {
	host    string
	port    int
	opts    serverOpts
	stalled chan struct{}
	release chan struct{}

	mu           sync.Mutex
	msgs         []received
	dataAttempts int
}

func startServer(t *testing.T, opts serverOpts) *testServer {
	t.Helper()
	host := opts.listenHost
	if host == "" {
		host = "127.0.0.1"
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	if opts.implicitTLS != nil {
		l = tls.NewListener(l, opts.implicitTLS)
	}
	ts := &testServer{
		host:    host,
		port:    l.Addr().(*net.TCPAddr).Port,
		opts:    opts,
		stalled: make(chan struct{}, 16),
		release: make(chan struct{}),
	}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		_, isTLS := c.TLSConnectionState()
		return &session{ts: ts, tls: isTLS}, nil
	}))
	srv.Domain = "test.local"
	srv.TLSConfig = opts.startTLS
	srv.AllowInsecureAuth = true
	srv.ReadTimeout = 30 * time.Second // a client that never closes cannot hold cleanup forever
	srv.ErrorLog = log.New(io.Discard, "", 0)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() {
		close(ts.release) // unblock stalled sessions first
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("smtp server shutdown: %v", err)
			srv.Close()
		}
		if err := <-served; err != nil {
			t.Errorf("smtp server: %v", err)
		}
	})
	return ts
}

func (ts *testServer) messages() []received {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]received(nil), ts.msgs...)
}

func (ts *testServer) attempts() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.dataAttempts
}

// config points a mailer at the server with a fixed clock and the test's
// log.
func (ts *testServer) config(t *testing.T) Config {
	return Config{
		Host:    ts.host,
		Port:    ts.port,
		From:    "Engine <engine@example.org>",
		Now:     func() time.Time { return testNow },
		Logger:  testLogger(t),
		Timeout: 30 * time.Second, // a hung test fails instead of waiting a minute
	}
}

type session struct {
	ts   *testServer
	tls  bool
	user string
	from string
	to   []string
}

func (s *session) AuthMechanisms() []string {
	if s.ts.opts.users == nil {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *session) Auth(mech string) (sasl.Server, error) {
	if s.ts.opts.users == nil || mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if want, ok := s.ts.opts.users[username]; !ok || want != password {
			return smtp.ErrAuthFailed
		}
		s.user = username
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.ts.opts.users != nil && s.user == "" {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	}
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.ts.opts.rcptErr != nil {
		return s.ts.opts.rcptErr
	}
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.ts.mu.Lock()
	s.ts.dataAttempts++
	n := s.ts.dataAttempts
	s.ts.mu.Unlock()
	if s.ts.opts.stallData {
		s.ts.stalled <- struct{}{}
		<-s.ts.release
		return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "test over"}
	}
	if v := s.ts.opts.dataVerdict; v != nil {
		if err := v(n); err != nil {
			return err
		}
	}
	s.ts.mu.Lock()
	defer s.ts.mu.Unlock()
	s.ts.msgs = append(s.ts.msgs, received{from: s.from, to: append([]string(nil), s.to...), data: data, tls: s.tls, user: s.user})
	return nil
}

func (s *session) Reset() { s.from, s.to = "", nil }

func (s *session) Logout() error { return nil }

// stallListener accepts connections and never says a word: a server that
// hangs before its greeting.
func stallListener(t *testing.T) (host string, port int, accepted <-chan struct{}) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	acc := make(chan struct{}, 16)
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return // closed in cleanup
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			acc <- struct{}{}
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "127.0.0.1", l.Addr().(*net.TCPAddr).Port, acc
}

// selfSigned returns a server certificate for 127.0.0.1 and localhost and
// a pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mailer test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool
}

func serverTLS(cert tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}

package main

// End-to-end tests of background steps against a real SMTP server (go-smtp)
// started inside the test: delivery with the right recipient, subject and
// Message-ID, retries recorded as StepAttemptFailed, final failure recorded
// as StepFailed without blocking commands, the total-time budget, and a
// restart in the middle of a retry's back-off that continues the count.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	netmail "net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/b6368a97/engine/mail"
)

// smtpMsg is one message the test server accepted.
type smtpMsg struct {
	from string
	to   []string
	msg  *netmail.Message
	raw  string
}

// smtpServer is a real go-smtp server on a loopback port. refuse decides
// the n-th DATA (1-based): a non-nil error refuses it.
type smtpServer struct {
	addr string

	mu     sync.Mutex
	refuse func(n int) error
	datas  int
	msgs   []smtpMsg
}

func startSMTP(t *testing.T, refuse func(n int) error) *smtpServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{addr: l.Addr().String(), refuse: refuse}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &smtpSession{s: s}, nil
	}))
	srv.Domain = "test.local"
	srv.ReadTimeout = e2eTimeout
	srv.ErrorLog = log.New(io.Discard, "", 0)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("smtp server shutdown: %v", err)
			srv.Close()
		}
		if err := <-served; err != nil && !errors.Is(err, smtp.ErrServerClosed) {
			t.Errorf("smtp server: %v", err)
		}
	})
	return s
}

// url is ENGINE_SMTP_URL for the server: plain text (the server offers no
// STARTTLS), no credentials.
func (s *smtpServer) url() string { return "smtp://" + s.addr + "?from=engine%40example.org" }

func (s *smtpServer) setRefuse(f func(n int) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = f
}

func (s *smtpServer) messages() []smtpMsg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]smtpMsg(nil), s.msgs...)
}

func (s *smtpServer) dataAttempts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.datas
}

// to returns the messages accepted for one recipient.
func (s *smtpServer) to(rcpt string) []smtpMsg {
	var out []smtpMsg
	for _, m := range s.messages() {
		if len(m.to) == 1 && m.to[0] == rcpt {
			out = append(out, m)
		}
	}
	return out
}

var errBusy = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}

func refuseFirst(n int) func(int) error {
	return func(i int) error {
		if i <= n {
			return errBusy
		}
		return nil
	}
}

func refuseAll(int) error { return errBusy }

type smtpSession struct {
	s    *smtpServer
	from string
	to   []string
}

func (x *smtpSession) Mail(from string, _ *smtp.MailOptions) error { x.from = from; return nil }
func (x *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.to = append(x.to, to)
	return nil
}
func (x *smtpSession) Reset()        { x.from, x.to = "", nil }
func (x *smtpSession) Logout() error { return nil }

func (x *smtpSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s := x.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.datas++
	if s.refuse != nil {
		if err := s.refuse(s.datas); err != nil {
			return err
		}
	}
	msg, err := netmail.ReadMessage(strings.NewReader(string(raw)))
	if err != nil {
		return &smtp.SMTPError{Code: 554, Message: "unparsable message: " + err.Error()}
	}
	s.msgs = append(s.msgs, smtpMsg{from: x.from, to: append([]string(nil), x.to...), msg: msg, raw: string(raw)})
	return nil
}

// withSMTP points the engine's mailer at the test server, with retries as
// given.
func withSMTP(s *smtpServer, attempts int, backoff, maxTime time.Duration) engineOption {
	return func(m *Main) {
		m.Config.SMTPURL = s.url()
		m.Config.StepAttempts = attempts
		m.Config.StepBackoff = backoff
		m.Config.StepMaxTime = maxTime
	}
}

// signup posts /signup and returns the user stream.
func (e *engine) signup(email, name string) string {
	e.t.Helper()
	r := e.do("POST", "/signup", mustJSON(e.t, map[string]string{"email": email, "name": name}), nil)
	if r.status != 202 {
		e.t.Fatalf("POST /signup: %s", r)
	}
	var out struct{ User string }
	if err := json.Unmarshal(r.body, &out); err != nil || out.User == "" {
		e.t.Fatalf("POST /signup body %s: %v", r.body, err)
	}
	return out.User
}

// placeOrder posts /orders and returns the order stream.
func (e *engine) placeOrder(email string) string {
	e.t.Helper()
	body := map[string]any{"items": []map[string]any{{"name": "soup", "qty": 2}}}
	if email != "" {
		body["email"] = email
	}
	r := e.do("POST", "/orders", mustJSON(e.t, body), nil)
	if r.status != 202 {
		e.t.Fatalf("POST /orders: %s", r)
	}
	var out struct{ Order string }
	if err := json.Unmarshal(r.body, &out); err != nil || out.Order == "" {
		e.t.Fatalf("POST /orders body %s: %v", r.body, err)
	}
	return out.Order
}

// stepView is the part of a user's or an order's state about steps.
type stepView struct {
	WelcomeEmail string            `json:"welcome_email"`
	Steps        map[string]string `json:"steps"`
	Errors       map[string]string `json:"errors"`
	Attempts     map[string]struct {
		Count     int    `json:"count"`
		LastError string `json:"last_error"`
	} `json:"attempts"`
}

func (e *engine) stepView(stream string) stepView {
	e.t.Helper()
	var v stepView
	if err := json.Unmarshal(e.state(stream), &v); err != nil {
		e.t.Fatal(err)
	}
	return v
}

// eventTypes lists the types of a stream's stored events, with the
// attempt number of each StepAttemptFailed ("StepAttemptFailed#2").
func (e *engine) eventTypes(stream string) []string {
	e.t.Helper()
	var out []string
	for _, ev := range readEvents(e.t, e, stream) {
		typ := ev.Type
		if typ == "StepAttemptFailed" {
			var d struct{ Attempt int }
			if err := json.Unmarshal(ev.Data, &d); err != nil {
				e.t.Fatal(err)
			}
			typ = fmt.Sprintf("%s#%d", typ, d.Attempt)
		}
		out = append(out, typ)
	}
	return out
}

func TestE2ESMTPDeliversWelcomeAndReceipt(t *testing.T) {
	srv := startSMTP(t, nil)
	e := startEngine(t, t.TempDir(), withSMTP(srv, 5, 10*time.Millisecond, time.Minute))
	if !strings.Contains(e.logs.String(), `msg="mailer: smtp"`) {
		t.Fatalf("no start-up line naming the SMTP mailer:\n%s", e.logs.String())
	}
	user := e.signup("ann@example.com", "Ann")
	order := e.placeOrder("kim@example.com")
	eventually(t, "both emails", func() (bool, error) {
		return len(srv.to("ann@example.com")) == 1 && len(srv.to("kim@example.com")) == 1, nil
	})
	orderID := strings.TrimPrefix(order, "order:")
	tests := []struct {
		name, rcpt, subject, key string
	}{
		{"welcome", "ann@example.com", "Welcome, Ann!", user + "/welcome"},
		{"receipt", "kim@example.com", "Your receipt for order " + orderID, order + "/receipt"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := srv.to(tc.rcpt)[0]
			if m.from != "engine@example.org" {
				t.Errorf("MAIL FROM %q", m.from)
			}
			if got := m.msg.Header.Get("To"); !strings.Contains(got, tc.rcpt) {
				t.Errorf("To: %q, want %s", got, tc.rcpt)
			}
			if got := m.msg.Header.Get("Subject"); got != tc.subject {
				t.Errorf("Subject: %q, want %q", got, tc.subject)
			}
			if got, want := m.msg.Header.Get("Message-Id"), mail.MessageID(tc.key); got != want {
				t.Errorf("Message-ID: %q, want %q (derived from %s)", got, want, tc.key)
			}
		})
	}
	eventually(t, "the steps recorded done", func() (bool, error) {
		u, o := e.stepView(user), e.stepView(order)
		return u.WelcomeEmail == "done" && o.Steps["receipt"] == "done", nil
	})
	// A first attempt that succeeds records no attempt.
	if u := e.stepView(user); len(u.Attempts) != 0 {
		t.Fatalf("attempts after a first-time delivery: %+v", u.Attempts)
	}
}

func TestE2ESMTPRetriesThenDelivers(t *testing.T) {
	const refused = 2
	srv := startSMTP(t, refuseFirst(refused))
	e := startEngine(t, t.TempDir(), withSMTP(srv, 5, 10*time.Millisecond, time.Minute))
	user := e.signup("bob@example.com", "Bob")
	eventually(t, "the welcome email recorded done", func() (bool, error) {
		return e.stepView(user).WelcomeEmail == "done", nil
	})
	if got := srv.to("bob@example.com"); len(got) != 1 {
		t.Fatalf("%d messages delivered, want exactly 1", len(got))
	}
	if got := srv.dataAttempts(); got != refused+1 {
		t.Fatalf("%d DATA attempts, want %d", got, refused+1)
	}
	v := e.stepView(user)
	if a := v.Attempts["welcome"]; a.Count != refused || !strings.Contains(a.LastError, "451") {
		t.Fatalf("attempts in the state: %+v, want count %d with the 451", v.Attempts, refused)
	}
	want := []string{"UserSignedUp", "StepAttemptFailed#1", "StepAttemptFailed#2", "WelcomeEmailSent"}
	if got := e.eventTypes(user); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("events %v, want %v", got, want)
	}
	metric := `engine_step_attempts_total{kind="user",outcome="retry",step="welcome"} 2`
	if r := e.do("GET", "/metrics", nil, nil); !strings.Contains(string(r.body), metric) {
		t.Fatalf("/metrics lacks %s", metric)
	}
}

func TestE2ESMTPNeverAccepts(t *testing.T) {
	t.Run("StepFailed after the configured attempts", func(t *testing.T) {
		srv := startSMTP(t, refuseAll)
		e := startEngine(t, t.TempDir(), withSMTP(srv, 3, 10*time.Millisecond, time.Minute))
		user := e.signup("cy@example.com", "Cy")
		eventually(t, "the welcome email recorded failed", func() (bool, error) {
			return e.stepView(user).WelcomeEmail == "failed", nil
		})
		v := e.stepView(user)
		if !strings.Contains(v.Errors["welcome"], "451") || v.Attempts["welcome"].Count != 2 {
			t.Fatalf("state after the failure: %+v", v)
		}
		evs := readEvents(t, e, user)
		last := evs[len(evs)-1]
		var d struct {
			Step     string
			Error    string
			Attempts int
		}
		if err := json.Unmarshal(last.Data, &d); err != nil || last.Type != "StepFailed" || d.Step != "welcome" || d.Attempts != 3 || !strings.Contains(d.Error, "451") {
			t.Fatalf("last event %s %s (%v), want StepFailed of welcome after 3 attempts", last.Type, last.Data, err)
		}
		if n := srv.dataAttempts(); n != 3 || len(srv.messages()) != 0 {
			t.Fatalf("%d DATA attempts and %d messages, want 3 and 0", n, len(srv.messages()))
		}
	})
	t.Run("commands are answered during the back-off", func(t *testing.T) {
		srv := startSMTP(t, refuseAll)
		// Back-offs of 30-60 s (the cap) within a two-hour budget and five
		// attempts: the step cannot give up for minutes. The state checked
		// after the commands still shows it pending with one failed
		// attempt, so every answer came while it was being retried.
		e := startEngine(t, t.TempDir(), withSMTP(srv, 5, time.Hour, 2*time.Hour))
		user := e.signup("dee@example.com", "Dee")
		eventually(t, "the first failed attempt recorded", func() (bool, error) {
			return e.stepView(user).Attempts["welcome"].Count == 1, nil
		})
		r := e.do("POST", "/signup", mustJSON(t, map[string]string{"email": "dee@example.com", "name": "Dee"}), nil)
		expectProblem(t, r, 409, "conflict")
		order := e.placeOrder("")
		e.command(order, "CancelOrder", map[string]any{})
		v := e.stepView(user)
		if v.WelcomeEmail != "pending" || v.Attempts["welcome"].Count != 1 || !strings.Contains(v.Attempts["welcome"].LastError, "451") {
			t.Fatalf("state while retrying: %+v", v)
		}
	})
	t.Run("StepFailed when the time budget runs out", func(t *testing.T) {
		srv := startSMTP(t, refuseAll)
		// The first back-off (capped at a minute, with jitter: at least
		// 30 s) would end after the 10 s budget: the step gives up after
		// one attempt of 100 allowed.
		e := startEngine(t, t.TempDir(), withSMTP(srv, 100, time.Hour, 10*time.Second))
		user := e.signup("eve@example.com", "Eve")
		eventually(t, "the welcome email recorded failed", func() (bool, error) {
			return e.stepView(user).WelcomeEmail == "failed", nil
		})
		want := []string{"UserSignedUp", "StepFailed"}
		if got := e.eventTypes(user); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("events %v, want %v", got, want)
		}
	})
}

// The engine stops while the welcome step waits in its back-off after a
// recorded failed attempt; a new engine on the same data continues the
// count (attempt 2 is recorded as such) and delivers once.
func TestE2ESMTPResumeContinuesAttempts(t *testing.T) {
	srv := startSMTP(t, refuseAll)
	dir := t.TempDir()
	e1 := startEngine(t, dir, withSMTP(srv, 5, time.Hour, 3*time.Hour))
	user := e1.signup("fay@example.com", "Fay")
	eventually(t, "the first failed attempt recorded", func() (bool, error) {
		return e1.stepView(user).Attempts["welcome"].Count == 1, nil
	})
	if err := e1.close(); err != nil {
		t.Fatal(err)
	}
	srv.setRefuse(refuseFirst(2)) // DATA 2 (the first after the restart) is refused too
	e2 := startEngine(t, dir, withSMTP(srv, 5, 10*time.Millisecond, 3*time.Hour))
	eventually(t, "the welcome email recorded done", func() (bool, error) {
		return e2.stepView(user).WelcomeEmail == "done", nil
	})
	if got := srv.to("fay@example.com"); len(got) != 1 {
		t.Fatalf("%d messages delivered, want exactly 1", len(got))
	}
	want := []string{"UserSignedUp", "StepAttemptFailed#1", "StepAttemptFailed#2", "WelcomeEmailSent"}
	if got := e2.eventTypes(user); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("events %v, want %v", got, want)
	}
	if c := e2.stepView(user).Attempts["welcome"].Count; c != 2 {
		t.Fatalf("attempt count %d, want 2", c)
	}
}

// The kitchen shows an order's open ticket while it cooks, and OrderReady
// (after a restart that resumes the cook step) clears it.
func TestE2EKitchenTickets(t *testing.T) {
	dir := t.TempDir()
	e1 := startEngine(t, dir, func(m *Main) { m.Config.CookTime = time.Hour })
	order := e1.placeOrder("")
	eventually(t, "the open ticket", func() (bool, error) {
		s, err := e1.stateField("kitchen:main", "tickets")
		return strings.Contains(s, `"order":"`+order+`"`), err
	})
	if err := e1.close(); err != nil {
		t.Fatal(err)
	}
	e2 := startEngine(t, dir)
	eventually(t, "the order ready and its ticket cleared", func() (bool, error) {
		st, err := e2.stateField(order, "status")
		if err != nil || st != "ready" {
			return false, err
		}
		s, err := e2.stateField("kitchen:main", "tickets")
		return s == "[]", err
	})
}

func TestE2ESMTPConfig(t *testing.T) {
	tests := []struct {
		name, url, wantErr string
	}{
		{"bad scheme", "ftp://mail.example.com", "ENGINE_SMTP_URL"},
		{"unknown option", "smtp://mail.example.com?tsl=none", "unknown option"},
		{"no host", "smtp://", "missing host"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logs := &syncBuffer{}
			m := newMain(t.TempDir(), logs, func(m *Main) { m.Config.SMTPURL = tc.url })
			ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
			defer cancel()
			err := m.Open(ctx)
			if err == nil {
				_ = m.Close(ctx)
				t.Fatal("Open succeeded with an invalid SMTP URL")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %q, want it to mention %q", err, tc.wantErr)
			}
		})
	}
	t.Run("the password is never logged", func(t *testing.T) {
		e := startEngine(t, t.TempDir(), func(m *Main) { m.Config.SMTPURL = "smtp://ann:s3cr3t@127.0.0.1:2525" })
		logs := e.logs.String()
		if !strings.Contains(logs, "smtp://ann@127.0.0.1:2525") || strings.Contains(logs, "s3cr3t") {
			t.Fatalf("start-up log:\n%s", logs)
		}
	})
}

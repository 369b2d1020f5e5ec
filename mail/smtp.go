package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/smtp"
	"strconv"

	"github.com/b6368a97/engine/actors/decider"
)

// SMTP sends each message over its own SMTP connection. It implements
// Sender and is safe for concurrent use: it holds only its
// configuration.
type SMTP struct {
	cfg  Config
	from *mail.Address
	// err is the configuration's validation error, returned (permanent) by
	// every Send: NewSMTP has no error so that it can sit in a Config
	// literal, and a broken mailer must fail its steps, not the engine.
	err error
	log *slog.Logger
}

// NewSMTP returns a mailer for cfg. An invalid cfg (see Config.Validate)
// makes every Send fail permanently; check Validate first to fail early.
func NewSMTP(cfg Config) *SMTP {
	cfg = cfg.withDefaults()
	m := &SMTP{cfg: cfg, log: cfg.Logger}
	if err := cfg.Validate(); err != nil {
		m.err = err
		return m
	}
	m.from, m.err = mail.ParseAddress(cfg.From) // cannot fail after Validate
	return m
}

// Send delivers msg to msg.To with Message-ID MessageID(key). It
// returns nil once the server has accepted the message (250 after DATA);
// a failure after that point (QUIT) is only logged, because sending again
// would deliver a second copy. Errors that a retry will not fix satisfy
// IsPermanent; cancelling ctx closes the connection and returns an error
// that matches ctx's error.
func (m *SMTP) Send(ctx context.Context, key string, msg decider.Email) error {
	if m.err != nil {
		return decider.Permanent(m.err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	mm, err := render(m.from, m.cfg.Now(), key, msg)
	if err != nil {
		return err
	}
	if m.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, m.cfg.Timeout)
		defer cancel()
	}
	if err := m.deliver(ctx, mm); err != nil {
		return err
	}
	m.log.Debug("email sent", "key", key, "to", mm.rcpt, "message_id", mm.id, "server", m.cfg.Host)
	return nil
}

// deliver runs one SMTP session. The connection is closed when ctx ends,
// which unblocks whatever read or write is in progress; that is how a
// stalled server is abandoned (net/smtp itself knows no contexts).
func (m *SMTP) deliver(ctx context.Context, mm message) (err error) {
	addr := net.JoinHostPort(m.cfg.Host, strconv.Itoa(m.cfg.Port))
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return m.fail(ctx, "dial "+addr, err)
	}
	// The AfterFunc goroutine is owned by this call: stop() below either
	// prevents it or it only closes the connection.
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	defer func() {
		if err != nil {
			raw.Close()
		}
	}()

	conn := raw
	if m.cfg.TLS == TLSImplicit {
		tc := tls.Client(raw, m.tlsConfig())
		if err := tc.HandshakeContext(ctx); err != nil {
			return m.fail(ctx, "tls handshake", err)
		}
		conn = tc // NewClient sees a *tls.Conn and reports TLS to auth
	}
	c, err := smtp.NewClient(conn, m.cfg.Host)
	if err != nil {
		return m.fail(ctx, "greeting", err)
	}
	defer c.Close()
	if err := c.Hello(m.cfg.LocalName); err != nil {
		return m.fail(ctx, "ehlo", err)
	}
	if m.cfg.TLS == TLSStartTLS || m.cfg.TLS == TLSRequired {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(m.tlsConfig()); err != nil {
				return m.fail(ctx, "starttls", err)
			}
		} else if m.cfg.TLS == TLSRequired {
			return decider.Permanent(fmt.Errorf("smtp: %s does not offer STARTTLS and tls=required", addr))
		}
	}
	if m.cfg.Username != "" {
		if err := m.auth(c); err != nil {
			return m.fail(ctx, "auth", err)
		}
	}
	if err := c.Mail(m.from.Address); err != nil {
		return m.fail(ctx, "mail from", err)
	}
	if err := c.Rcpt(mm.rcpt); err != nil {
		return m.fail(ctx, "rcpt to", err)
	}
	w, err := c.Data()
	if err != nil {
		return m.fail(ctx, "data", err)
	}
	// net/smtp's DATA writer dot-stuffs lines that start with '.'.
	if _, err := w.Write(mm.data); err != nil {
		return m.fail(ctx, "data", err)
	}
	if err := w.Close(); err != nil { // sends "." and reads the verdict
		return m.fail(ctx, "data", err)
	}
	// Accepted: from here on the message counts as sent.
	if qerr := c.Quit(); qerr != nil && ctx.Err() == nil {
		m.log.Warn("smtp quit failed after the message was accepted", "server", addr, "message_id", mm.id, "err", qerr)
	}
	return nil
}

// auth authenticates with AUTH PLAIN, but never sends the password in
// clear text to anything but localhost (net/smtp checks this too; the
// early check makes the failure permanent and says why).
func (m *SMTP) auth(c *smtp.Client) error {
	if ok, _ := c.Extension("AUTH"); !ok {
		return decider.Permanent(errors.New("server offers no AUTH but credentials are configured"))
	}
	if _, isTLS := c.TLSConnectionState(); !isTLS && !isLocalhost(m.cfg.Host) {
		return decider.Permanent(errors.New("refusing to send credentials over an unencrypted connection (use STARTTLS or smtps://)"))
	}
	return c.Auth(smtp.PlainAuth("", m.cfg.Username, m.cfg.Password, m.cfg.Host))
}

// isLocalhost matches net/smtp's notion of a host where plain-text
// credentials are acceptable.
func isLocalhost(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

func (m *SMTP) tlsConfig() *tls.Config {
	var tc *tls.Config
	if m.cfg.TLSConfig != nil {
		tc = m.cfg.TLSConfig.Clone()
	} else {
		tc = &tls.Config{}
	}
	if tc.ServerName == "" {
		tc.ServerName = m.cfg.Host
	}
	if m.cfg.InsecureSkipVerify {
		tc.InsecureSkipVerify = true
	}
	return tc
}

// fail wraps err with the stage it happened in. When ctx has ended, the
// error is the consequence of closing the connection, so ctx's error is
// put in the chain (errors.Is(err, context.Canceled) holds) and the
// failure stays transient.
func (m *SMTP) fail(ctx context.Context, stage string, err error) error {
	if decider.IsPermanent(err) {
		return fmt.Errorf("smtp: %s: %w", stage, err)
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("smtp: %s: %w: %w", stage, cerr, err)
	}
	return classify(fmt.Errorf("smtp: %s %s: %w", stage, m.cfg.Host, err))
}

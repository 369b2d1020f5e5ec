package mail

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// TLSMode says how a connection is encrypted.
type TLSMode string

const (
	// TLSStartTLS upgrades with STARTTLS when the server offers it and
	// carries on in plain text when it does not (opportunistic). Default
	// for smtp://.
	TLSStartTLS TLSMode = "starttls"
	// TLSRequired upgrades with STARTTLS and fails (permanently) when the
	// server does not offer it.
	TLSRequired TLSMode = "required"
	// TLSNone never encrypts (a local relay or a test catcher).
	TLSNone TLSMode = "none"
	// TLSImplicit speaks TLS from the first byte (smtps://, port 465).
	TLSImplicit TLSMode = "implicit"
)

// Default values of Config's zero fields.
const (
	DefaultPort         = 587
	DefaultImplicitPort = 465
	DefaultLocalName    = "localhost"
	DefaultTimeout      = time.Minute
)

// Config configures an SMTP mailer. Zero values take the documented
// defaults.
type Config struct {
	// Host is the server's host name or IP address. Required. It is also
	// the TLS server name unless TLSConfig sets one.
	Host string
	// Port defaults to 587, or 465 when TLS is TLSImplicit.
	Port int
	// Username and Password, when Username is set, authenticate with AUTH
	// PLAIN. Credentials are only ever sent over TLS or to localhost.
	Username string
	Password string
	// From is the sender, used for MAIL FROM and the From header; any
	// RFC 5322 address ("Engine <noreply@example.com>"). Default
	// "engine@<Host>" ("engine@[192.0.2.1]" for an IPv4 host,
	// "engine@localhost" for an IPv6 one).
	From string
	// TLS is the encryption mode. Default TLSStartTLS.
	TLS TLSMode
	// TLSConfig is cloned for every connection; ServerName defaults to
	// Host. Default: the system roots.
	TLSConfig *tls.Config
	// InsecureSkipVerify accepts any server certificate. For tests and
	// local relays with self-signed certificates only.
	InsecureSkipVerify bool
	// LocalName is the name sent with EHLO. Default "localhost".
	LocalName string
	// Timeout bounds one Send, from dial to QUIT, on top of the caller's
	// context. Default 1 minute; negative means no bound beyond the
	// context.
	Timeout time.Duration
	// Logger receives a debug line per message sent. Default
	// slog.Default().
	Logger *slog.Logger
	// Now stamps the Date header. Default time.Now.
	Now func() time.Time
}

// addressDefaults fills in the port that follows from the TLS mode and
// the sender that follows from the host.
func (c *Config) addressDefaults() {
	if c.Port == 0 {
		c.Port = DefaultPort
		if c.TLS == TLSImplicit {
			c.Port = DefaultImplicitPort
		}
	}
	if c.From == "" {
		c.From = defaultFrom(c.Host)
	}
}

// withDefaults returns c with its zero fields filled in.
func (c Config) withDefaults() Config {
	if c.TLS == "" {
		c.TLS = TLSStartTLS
	}
	c.addressDefaults()
	if c.LocalName == "" {
		c.LocalName = DefaultLocalName
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

func defaultFrom(host string) string {
	ip := net.ParseIP(host)
	switch {
	case ip == nil:
		return "engine@" + host
	case ip.To4() != nil:
		return "engine@[" + ip.String() + "]"
	default:
		// net/mail does not parse "[IPv6:…]" domain literals.
		return "engine@localhost"
	}
}

// Validate reports whether c (with its defaults) can be used.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Host == "" {
		errs = append(errs, errors.New("host is required"))
	} else if strings.ContainsAny(c.Host, " \t\r\n/@") {
		errs = append(errs, fmt.Errorf("host %q is not a host name", c.Host))
	}
	if c.Port < 1 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d out of range", c.Port))
	}
	if c.Username == "" && c.Password != "" {
		errs = append(errs, errors.New("password without username"))
	}
	if strings.ContainsAny(c.Username+c.Password, "\r\n") {
		errs = append(errs, errors.New("credentials contain a line break"))
	}
	// The sender goes into the From header: the header policy applies.
	if _, err := parseAddress("from", c.From); err != nil {
		errs = append(errs, err)
	}
	switch c.TLS {
	case TLSStartTLS, TLSRequired, TLSNone, TLSImplicit:
	default:
		errs = append(errs, fmt.Errorf("tls mode %q (want none, starttls, required or implicit)", c.TLS))
	}
	if c.LocalName == "" || strings.ContainsAny(c.LocalName, " \t\r\n") {
		errs = append(errs, fmt.Errorf("local name %q", c.LocalName))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("smtp config: %w", err)
	}
	return nil
}

// String is c as a URL without the password, for logs.
func (c Config) String() string {
	c = c.withDefaults()
	u := url.URL{Scheme: "smtp", Host: net.JoinHostPort(c.Host, strconv.Itoa(c.Port))}
	q := url.Values{}
	if c.TLS == TLSImplicit {
		u.Scheme = "smtps"
	} else {
		q.Set("tls", string(c.TLS))
	}
	if c.Username != "" {
		u.User = url.User(c.Username)
	}
	q.Set("from", c.From)
	u.RawQuery = q.Encode()
	return u.String()
}

// ParseURL parses ENGINE_SMTP_URL:
//
//	smtp://[user[:password]@]host[:port][?option=value&…]   (STARTTLS, port 587)
//	smtps://[user[:password]@]host[:port][?option=value&…]  (implicit TLS, port 465)
//
// User and password are percent-decoded. Options: from (the sender
// address, percent-encoded, default "engine@<host>"), tls (none, starttls
// or required; smtp:// only), helo (the EHLO name), timeout (a Go
// duration bounding one Send). Unknown options are rejected so that a typo
// does not silently weaken the configuration. The result is validated.
func ParseURL(raw string) (Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the raw URL, password included.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return Config{}, fmt.Errorf("smtp url: %w", err)
	}
	var c Config
	switch u.Scheme {
	case "smtp":
		c.TLS = TLSStartTLS
	case "smtps":
		c.TLS = TLSImplicit
	case "":
		return Config{}, errors.New("smtp url: missing scheme (want smtp:// or smtps://)")
	default:
		return Config{}, fmt.Errorf("smtp url: unsupported scheme %q (want smtp or smtps)", u.Scheme)
	}
	if u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.Fragment != "" {
		return Config{}, errors.New("smtp url: want scheme://[user[:password]@]host[:port][?options], nothing else")
	}
	c.Host = u.Hostname()
	if c.Host == "" {
		return Config{}, errors.New("smtp url: missing host")
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return Config{}, fmt.Errorf("smtp url: port %q out of range", p)
		}
		c.Port = n
	}
	if u.User != nil {
		c.Username = u.User.Username()
		c.Password, _ = u.User.Password()
	}
	if err := c.setOptions(u.RawQuery); err != nil {
		return Config{}, err
	}
	// Spell out the defaults that follow from the URL, so that the result
	// says which port and sender will be used.
	c.addressDefaults()
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// setOptions applies the query options of an SMTP URL (see ParseURL).
func (c *Config) setOptions(rawQuery string) error {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return fmt.Errorf("smtp url: query: %w", err)
	}
	for key, vals := range q {
		if len(vals) != 1 {
			return fmt.Errorf("smtp url: option %q given %d times", key, len(vals))
		}
		v := vals[0]
		switch key {
		case "from":
			c.From = v
		case "helo":
			c.LocalName = v
		case "timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return fmt.Errorf("smtp url: timeout %q: want a positive duration such as 30s", v)
			}
			c.Timeout = d
		case "tls":
			mode := TLSMode(v)
			switch {
			case c.TLS == TLSImplicit:
				return errors.New("smtp url: smtps:// is always TLS; the tls option is for smtp://")
			case mode == TLSNone, mode == TLSStartTLS, mode == TLSRequired:
				c.TLS = mode
			default:
				return fmt.Errorf("smtp url: tls=%q (want none, starttls or required; smtps:// for implicit TLS)", v)
			}
		default:
			return fmt.Errorf("smtp url: unknown option %q (want from, tls, helo or timeout)", key)
		}
	}
	return nil
}

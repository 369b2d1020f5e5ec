package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/b6368a97/engine/actors"
	"github.com/b6368a97/engine/actors/order"
	"github.com/b6368a97/engine/cluster"
	"github.com/b6368a97/engine/transport"
)

// Config is every setting of the engine. Each one is a flag with an
// environment fallback; ParseFlags documents them for `engine -h`.
type Config struct {
	Addr            string
	DataDir         string
	Store           string
	CookTime        time.Duration
	BodyLimit       int
	ReadLimit       int
	SendQueue       int
	SnapshotEvery   int
	IdleTimeout     time.Duration
	MaxActors       int
	AllowedOrigins  []string
	JWTSecret       string
	JWKSFile        string
	JWTLeeway       time.Duration
	RateLimit       float64
	RateBurst       int
	CommandTimeout  time.Duration
	StepAttempts    int
	StepBackoff     time.Duration
	StepMaxTime     time.Duration
	SMTPURL         string
	ShutdownGrace   time.Duration
	LogFormat       string
	CPUProfile      string
	RequestLogEvery int

	// Cluster mode (package cluster): set ClusterBind to run as one node.
	ClusterName  string
	ClusterBind  string
	ClusterPeers []string

	// Limits of clients (transport.Config).
	MaxSubscriptions    int
	MaxConnections      int
	MaxConnectionsPerIP int
	HTTPReadTimeout     time.Duration
	CloseLinger         time.Duration
	CloseLingerBytes    int
}

// errZero refuses 0 for a setting whose 0 is not meaningful.
var errZero = errors.New("must be positive (0 does not mean off or the default)")

// setting binds one flag to its environment variable.
type setting struct {
	flag, env, usage string
	set              func(string) error
	def              string
}

// Parsers of setting values. Durations and the numbers read by pos must
// be positive: the packages that own them read 0 as "the default", so a 0
// given here would silently be the default, not off or none. A setting
// whose 0 means something says so in its usage and reads with num.

func dur(p *time.Duration) func(string) error {
	return func(s string) error {
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		if d < 0 {
			return fmt.Errorf("negative duration %s", s)
		}
		if d == 0 {
			return errZero
		}
		*p = d
		return nil
	}
}

// durOrZero is dur for a duration whose 0 means none.
func durOrZero(p *time.Duration) func(string) error {
	return func(s string) error {
		var d time.Duration
		if err := dur(&d)(s); err != nil && !errors.Is(err, errZero) {
			return err
		}
		*p = d
		return nil
	}
}

func num(p *int) func(string) error {
	return func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil {
			return err
		}
		if n < 0 {
			return fmt.Errorf("negative number %d", n)
		}
		*p = n
		return nil
	}
}

func pos(p *int) func(string) error {
	return func(s string) error {
		var n int
		if err := num(&n)(s); err != nil {
			return err
		}
		if n == 0 {
			return errZero
		}
		*p = n
		return nil
	}
}

func str(p *string) func(string) error { return func(s string) error { *p = s; return nil } }

func rate(p *float64) func(string) error {
	return func(s string) error {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return err
		}
		if f < 0 {
			return fmt.Errorf("negative rate %s", s)
		}
		*p = f
		return nil
	}
}

func list(p *[]string) func(string) error {
	return func(s string) error {
		*p = nil
		for _, o := range strings.Split(s, ",") {
			if o = strings.TrimSpace(o); o != "" {
				*p = append(*p, o)
			}
		}
		return nil
	}
}

func (c *Config) settings() []setting {
	return []setting{
		{"addr", "ENGINE_ADDR", "address to listen on", str(&c.Addr), ":8080"},
		{"data", "ENGINE_DATA", "directory of the embedded store and the outbox", str(&c.DataDir), "./data"},
		{"store", "ENGINE_STORE", "event store: empty for the embedded store in -data, or postgres://…", str(&c.Store), ""},
		{"cook-time", "ENGINE_COOK_TIME", "how long an order cooks", dur(&c.CookTime), order.DefaultCookTime.String()},
		{"body-limit", "ENGINE_BODY_LIMIT", "largest HTTP request body in bytes", pos(&c.BodyLimit), strconv.Itoa(transport.DefaultBodyLimit)},
		{"read-limit", "ENGINE_READ_LIMIT", "largest WebSocket frame in bytes (larger closes with 1009)", pos(&c.ReadLimit), strconv.Itoa(transport.DefaultReadLimit)},
		{"send-queue", "ENGINE_SEND_QUEUE", "frames queued for one WebSocket before it is closed as a slow consumer (1008)", pos(&c.SendQueue), strconv.Itoa(transport.DefaultSendQueueFrames)},
		{"snapshot-every", "ENGINE_SNAPSHOT_EVERY", "events between snapshots of a stream", pos(&c.SnapshotEvery), strconv.Itoa(actors.DefaultSnapshotEvery)},
		{"idle-timeout", "ENGINE_IDLE_TIMEOUT", "idle time after which a stream's actor is passivated", dur(&c.IdleTimeout), actors.DefaultIdleTimeout.String()},
		{"max-actors", "ENGINE_MAX_ACTORS", "active stream actors above which the least recently used idle one is passivated (those with subscribers or running steps are kept)", pos(&c.MaxActors), strconv.Itoa(actors.DefaultMaxActors)},
		{"allowed-origins", "ENGINE_ALLOWED_ORIGINS", "comma-separated WebSocket origins allowed (empty: all)", list(&c.AllowedOrigins), ""},
		{"jwt-secret", "ENGINE_JWT_SECRET", "HS256 secret; when set, auth is on and every request needs a token", str(&c.JWTSecret), ""},
		{"jwt-jwks-file", "ENGINE_JWT_JWKS_FILE", "JSON Web Key Set file of RS256/ES256 public keys, read once at start-up; when set, auth is on", str(&c.JWKSFile), ""},
		{"jwt-leeway", "ENGINE_JWT_LEEWAY", "clock skew tolerated on token exp, nbf and iat; a WebSocket closes at exp plus this (0: none)", durOrZero(&c.JWTLeeway), transport.DefaultJWTLeeway.String()},
		{"rate-limit", "ENGINE_RATE_LIMIT", "requests per second per client address (0: off)", rate(&c.RateLimit), "0"},
		{"rate-burst", "ENGINE_RATE_BURST", "requests allowed at once above the rate limit (0: the rate, rounded up)", num(&c.RateBurst), "20"},
		{"command-timeout", "ENGINE_COMMAND_TIMEOUT", "how long a request waits for its actor before 503", dur(&c.CommandTimeout), transport.DefaultCommandTimeout.String()},
		{"max-subscriptions", "ENGINE_MAX_SUBSCRIPTIONS", "streams one /ws connection may subscribe to (more: limit_exceeded)", pos(&c.MaxSubscriptions), strconv.Itoa(transport.DefaultMaxSubscriptions)},
		{"max-connections", "ENGINE_MAX_CONNECTIONS", "WebSocket connections of the server (more: 503 before the upgrade)", pos(&c.MaxConnections), strconv.Itoa(transport.DefaultMaxConnections)},
		{"max-connections-per-ip", "ENGINE_MAX_CONNECTIONS_PER_IP", "WebSocket connections from one client address (more: 429 limit_exceeded)", pos(&c.MaxConnectionsPerIP), strconv.Itoa(transport.DefaultMaxConnectionsPerIP)},
		{"http-read-timeout", "ENGINE_HTTP_READ_TIMEOUT", "time to receive one HTTP request, headers and body (idle keep-alive is not bound by it)", dur(&c.HTTPReadTimeout), transport.DefaultHTTPReadTimeout.String()},
		{"close-linger", "ENGINE_CLOSE_LINGER", "how long a closing WebSocket keeps reading (and discarding) after its close frame, so that the peer reads the close code", dur(&c.CloseLinger), transport.DefaultCloseLinger.String()},
		{"close-linger-bytes", "ENGINE_CLOSE_LINGER_BYTES", "bytes a closing WebSocket reads and discards at most", pos(&c.CloseLingerBytes), strconv.Itoa(transport.DefaultCloseLingerBytes)},
		{"step-attempts", "ENGINE_STEP_ATTEMPTS", "tries of a failing background step before StepFailed", pos(&c.StepAttempts), strconv.Itoa(actors.DefaultStepAttempts)},
		{"step-backoff", "ENGINE_STEP_BACKOFF", "first wait between tries of a failing step (doubles, with jitter)", dur(&c.StepBackoff), actors.DefaultStepBackoff.String()},
		{"step-max-time", "ENGINE_STEP_MAX_TIME", "longest a failing step is retried, from its first attempt (across restarts)", dur(&c.StepMaxTime), actors.DefaultStepMaxTime.String()},
		{"smtp-url", "ENGINE_SMTP_URL", "send emails over SMTP: smtp://user:pass@host:port (STARTTLS when offered) or smtps://; empty: write .eml files to the outbox in -data", str(&c.SMTPURL), ""},
		{"shutdown-grace", "ENGINE_SHUTDOWN_GRACE", "how long shutdown waits for in-flight work", dur(&c.ShutdownGrace), "10s"},
		{"log-format", "ENGINE_LOG_FORMAT", "text or json", str(&c.LogFormat), "text"},
		{"request-log-every", "ENGINE_REQUEST_LOG_EVERY", "log one in this many quick successful HTTP requests (errors and requests over 1 s always; 1: every request)", pos(&c.RequestLogEvery), strconv.Itoa(transport.DefaultRequestLogEvery)},
		{"cpuprofile", "ENGINE_CPUPROFILE", "write a CPU profile (go tool pprof) of the whole run to this file, from start-up to shutdown", str(&c.CPUProfile), ""},
		{"cluster-bind", "ENGINE_CLUSTER_BIND", "this node's cluster address host:port, reachable by the other nodes; set to run as a cluster node on the PostgreSQL store (membership listens on port+1; see docs/deployment.md)", str(&c.ClusterBind), ""},
		{"cluster-peers", "ENGINE_CLUSTER_PEERS", "comma-separated cluster addresses of every node, this one included", list(&c.ClusterPeers), ""},
		{"cluster-name", "ENGINE_CLUSTER_NAME", "cluster name; nodes of other names are not members", str(&c.ClusterName), cluster.DefaultName},
	}
}

// ParseFlags fills c from defaults, then the environment, then flags.
// -h prints the usage (to stderr, where flag errors go) and returns
// flag.ErrHelp, even when the environment holds a bad value.
func (c *Config) ParseFlags(name string, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var envErr error
	for _, s := range c.settings() {
		v := s.def
		if e := getenv(s.env); e != "" {
			v = e
		}
		if err := s.set(v); err != nil && envErr == nil {
			envErr = fmt.Errorf("%s=%q: %w", s.env, v, err)
		}
		fs.Func(s.flag, fmt.Sprintf("%s (env %s, default %q)", s.usage, s.env, s.def), s.set)
	}
	fs.Usage = func() { printUsage(stderr, name, fs) }
	if err := fs.Parse(args); err != nil {
		return err
	}
	if envErr != nil {
		return envErr
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see -h)", fs.Arg(0))
	}
	return nil
}

// printUsage is `engine -h` and `engine help`.
func printUsage(w io.Writer, name string, fs *flag.FlagSet) {
	fmt.Fprintf(w, `Usage:
  %[1]s [flags]                           serve HTTP and WebSocket
  %[1]s replay FILE.jsonl…                print every stream's final state as one JSON array
  %[1]s export [-stream S] [-from N]      print stored events as JSON Lines
  %[1]s import [-create] FILE.jsonl       append a log to the store, checking versions
  %[1]s help [COMMAND]                    print this, or a command's usage, on stdout

export and import need a store in -data and create none; import -create
starts a new store there. "%[1]s help COMMAND" lists a command's flags.

Every flag also reads its environment variable; a flag wins. Numbers and
durations must be positive unless the flag says what 0 means.

Flags:
`, name)
	fs.PrintDefaults()
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
)

// Centrifugo (github.com/centrifugal/centrifugo/v6) is driven with its
// client protocol v2 in JSON over /connection/websocket, spoken here by
// hand: the tool imports none of its packages.
//
// Subscribers connect with an HMAC (HS256) token and subscribe to a
// channel of a namespace with history and forced recovery, so that every
// publication carries an offset (the engine's version) and the subscribe
// reply the channel's offset then. The publisher posts through the server
// HTTP API (POST /api/publish, X-API-Key): the server answers once the
// publication has an offset in the channel's history and has been handed
// to the subscribers, the nearest Centrifugo has to the engine's ack of a
// durable command. The history is in Centrifugo's memory (its default
// memory engine): nothing is written to disk.

const (
	defaultCentrifugoSecret    = "enginebench-hmac-secret"
	defaultCentrifugoAPIKey    = "enginebench-api-key"
	defaultCentrifugoNamespace = "bench"
)

// centrifugoAuth is what the tool and the server's config share.
type centrifugoAuth struct {
	secret, apiKey, namespace string
}

func defaultCentrifugoAuth() centrifugoAuth {
	return centrifugoAuth{secret: defaultCentrifugoSecret, apiKey: defaultCentrifugoAPIKey, namespace: defaultCentrifugoNamespace}
}

type centrifugoWire struct {
	auth    centrifugoAuth
	connect []byte // the connect command, token included
}

func newCentrifugoWire(a centrifugoAuth) (*centrifugoWire, error) {
	tok, err := centrifugoToken(a.secret, "bench", 24*time.Hour)
	if err != nil {
		return nil, err
	}
	connect, _ := json.Marshal(map[string]any{"id": 1, "connect": map[string]any{"token": tok, "name": "enginebench"}})
	return &centrifugoWire{auth: a, connect: connect}, nil
}

// centrifugoToken is a connection token for user sub: HS256, sub and exp.
func centrifugoToken(secret, sub string, ttl time.Duration) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": sub, "exp": time.Now().Add(ttl).Unix()})
	return t.SignedString([]byte(secret))
}

func (w *centrifugoWire) channel(name string) string { return w.auth.namespace + ":" + name }

// cfReply is a reply to one of the tool's commands.
type cfReply struct {
	ID    uint32 `json:"id"`
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Connect   json.RawMessage `json:"connect"`
	Subscribe *struct {
		Recoverable bool   `json:"recoverable"`
		Epoch       string `json:"epoch"`
		Offset      uint64 `json:"offset"`
	} `json:"subscribe"`
}

func (w *centrifugoWire) open(ctx context.Context, d *dialer, i int, base, channel string) (*websocket.Conn, uint64, error) {
	ws, err := d.dialPath(ctx, i, base, "/connection/websocket")
	if err != nil {
		return nil, 0, err
	}
	fail := func(err error) (*websocket.Conn, uint64, error) {
		ws.CloseNow()
		return nil, 0, err
	}
	// connect, then subscribe: each waits for its reply.
	reply := func(id uint32) (*cfReply, error) {
		var r *cfReply
		err := readUntil(ctx, ws, w, func(m wireMsg) (bool, error) {
			if m.kind == msgError {
				return false, fmt.Errorf("error reply %s: %s", m.code, m.text)
			}
			if m.kind != msgOther || !bytes.HasPrefix(m.raw, []byte(`{"id":`)) {
				return false, nil
			}
			var x cfReply
			if err := json.Unmarshal(m.raw, &x); err != nil || x.ID != id {
				return false, nil
			}
			r = &x
			return true, nil
		})
		return r, err
	}
	if err := ws.Write(ctx, websocket.MessageText, w.connect); err != nil {
		return fail(fmt.Errorf("connect: %w", err))
	}
	r, err := reply(1)
	if err != nil {
		return fail(fmt.Errorf("connect: %w", err))
	}
	if r.Connect == nil {
		return fail(fmt.Errorf("connect: no connect result"))
	}
	sub := []byte(`{"id":2,"subscribe":{"channel":` + strconv.Quote(channel) + `}}`)
	if err := ws.Write(ctx, websocket.MessageText, sub); err != nil {
		return fail(fmt.Errorf("subscribe: %w", err))
	}
	if r, err = reply(2); err != nil {
		return fail(fmt.Errorf("subscribe: %w", err))
	}
	if r.Subscribe == nil {
		return fail(fmt.Errorf("subscribe: no subscribe result"))
	}
	if !r.Subscribe.Recoverable {
		return fail(fmt.Errorf("subscribe: channel %s is not recoverable: give its namespace history and force_recovery (enginebench centrifugo-config)", channel))
	}
	return ws, r.Subscribe.Offset, nil
}

var (
	cfPushPrefix = []byte(`{"push":`)
	cfPub        = []byte(`"pub":`)
	cfOffset     = []byte(`"offset":`)
	cfText       = []byte(`"text":"`)
)

// decode splits a frame into its newline-separated messages (Centrifugo
// batches several into one frame). A publication's offset and data.text
// are read without a full JSON decode (the data is the tool's own,
// {"text":"RUN.UNIXNANOS"}); an empty object is the server's ping.
func (w *centrifugoWire) decode(b []byte, out []wireMsg) []wireMsg {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		line = bytes.TrimSpace(line)
		switch {
		case len(line) == 0:
			continue
		case string(line) == "{}":
			out = append(out, wireMsg{kind: msgPing, raw: line})
		case bytes.HasPrefix(line, cfPushPrefix):
			out = append(out, decodeCFPush(line))
		case bytes.HasPrefix(line, []byte(`{"id":`)) && bytes.Contains(line, []byte(`"error":`)):
			var r cfReply
			if err := json.Unmarshal(line, &r); err == nil && r.Error != nil {
				out = append(out, wireMsg{kind: msgError, code: strconv.Itoa(r.Error.Code), text: []byte(r.Error.Message), raw: line})
				continue
			}
			out = append(out, wireMsg{kind: msgOther, raw: line})
		default:
			out = append(out, wireMsg{kind: msgOther, raw: line})
		}
	}
	return out
}

func decodeCFPush(line []byte) wireMsg {
	i := bytes.Index(line, cfPub)
	if i < 0 {
		return wireMsg{kind: msgOther, raw: line} // join, leave, unsubscribe…
	}
	pub := line[i+len(cfPub):]
	m := wireMsg{kind: msgEvent, raw: line}
	// The offset follows the data in the publication.
	if j := bytes.LastIndex(pub, cfOffset); j >= 0 {
		rest := pub[j+len(cfOffset):]
		n := 0
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		m.seq, _ = strconv.ParseUint(string(rest[:n]), 10, 64)
	}
	if j := bytes.Index(pub, cfText); j >= 0 {
		t := pub[j+len(cfText):]
		if k := bytes.IndexByte(t, '"'); k >= 0 && bytes.IndexByte(t[:k], '\\') < 0 {
			m.text = t[:k]
		}
	}
	return m
}

// centrifugoPublisher posts each message with POST /api/publish, one
// request per message, each in its own goroutine (so that a slow answer
// does not hold back the next message, as on the engine's /ws).
type centrifugoPublisher struct {
	client *http.Client
	url    string
	apiKey string
	prefix []byte // {"channel":"…","data":{"user":"bench","text":"
	t      *pubTally
	wg     sync.WaitGroup
	ctx    context.Context
}

func (w *centrifugoWire) publisher(ctx context.Context, d *dialer, i int, base, channel string, t *pubTally) (publisher, error) {
	p := &centrifugoPublisher{client: d.clients[i%len(d.clients)], url: base + "/api/publish", apiKey: w.auth.apiKey, t: t, ctx: ctx}
	p.prefix = []byte(`{"channel":` + strconv.Quote(channel) + `,"data":{"user":"bench","text":"`)
	return p, nil
}

func (p *centrifugoPublisher) publish(_ context.Context, _ int, text []byte) error {
	body := make([]byte, 0, len(p.prefix)+len(text)+3)
	body = append(append(append(body, p.prefix...), text...), `"}}`...)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		code, off, err := p.post(body)
		switch {
		case err != nil:
			if p.ctx.Err() != nil {
				return // the run is over
			}
			p.t.connErr(err)
			p.t.fail("transport")
		case code != "":
			p.t.fail(code)
		default:
			p.t.ack(off)
		}
	}()
	return nil
}

// post sends one publish; code is "" on success, else the HTTP status or
// Centrifugo's error code.
func (p *centrifugoPublisher) post(body []byte) (code string, offset uint64, err error) {
	req, err := http.NewRequestWithContext(p.ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", p.apiKey)
	resp, err := p.client.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return strconv.Itoa(resp.StatusCode), 0, nil
	}
	var r struct {
		Error *struct {
			Code int `json:"code"`
		} `json:"error"`
		Result *struct {
			Offset uint64 `json:"offset"`
		} `json:"result"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return "bad_reply", 0, nil
	}
	if r.Error != nil {
		return "centrifugo_" + strconv.Itoa(r.Error.Code), 0, nil
	}
	if r.Result == nil || r.Result.Offset == 0 {
		return "no_offset", 0, nil // the channel keeps no history
	}
	return "", r.Result.Offset, nil
}

func (p *centrifugoPublisher) close() { p.wg.Wait() }

// centrifugoConfig is a Centrifugo v6 configuration for the tool: HMAC
// connection tokens, the HTTP API key, and one namespace with history and
// forced recovery; Prometheus /metrics and /health on the same port.
type centrifugoConfigOpts struct {
	Port        int
	Auth        centrifugoAuth
	HistorySize int
	HistoryTTL  time.Duration
	LogLevel    string
	// PingInterval is client.ping_interval (0: Centrifugo's 25 s); the
	// pong timeout is then three quarters of it.
	PingInterval time.Duration
}

func centrifugoConfig(o centrifugoConfigOpts) ([]byte, error) {
	cfg := map[string]any{
		"log": map[string]any{"level": o.LogLevel},
		"http_server": map[string]any{
			"address": "127.0.0.1",
			"port":    o.Port,
		},
		"client": map[string]any{
			// No allowed_origins: the tool sends no Origin header, which
			// Centrifugo lets through.
			"token": map[string]any{"hmac_secret_key": o.Auth.secret},
		},
		"http_api": map[string]any{"key": o.Auth.apiKey},
		"channel": map[string]any{
			"namespaces": []any{map[string]any{
				"name":           o.Auth.namespace,
				"history_size":   o.HistorySize,
				"history_ttl":    o.HistoryTTL.String(),
				"force_recovery": true,
				// Without it a subscription needs a subscription token.
				"allow_subscribe_for_client": true,
			}},
		},
		"prometheus": map[string]any{"enabled": true},
		"health":     map[string]any{"enabled": true},
	}
	if o.PingInterval > 0 {
		c := cfg["client"].(map[string]any)
		c["ping_interval"] = o.PingInterval.String()
		c["pong_timeout"] = (o.PingInterval * 3 / 4).String()
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	return append(b, '\n'), err
}

func runCentrifugoConfigCLI(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("centrifugo-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := centrifugoConfigOpts{}
	fs.IntVar(&o.Port, "port", 8000, "the port Centrifugo listens on, at 127.0.0.1 (WebSocket, HTTP API, /metrics, /health)")
	fs.StringVar(&o.Auth.secret, "centrifugo-secret", defaultCentrifugoSecret, "client.token.hmac_secret_key")
	fs.StringVar(&o.Auth.apiKey, "centrifugo-api-key", defaultCentrifugoAPIKey, "http_api.key")
	fs.StringVar(&o.Auth.namespace, "centrifugo-namespace", defaultCentrifugoNamespace, "the namespace of the bench channels")
	fs.IntVar(&o.HistorySize, "history-size", 1000, "the namespace's history_size (publications kept per channel)")
	fs.DurationVar(&o.HistoryTTL, "history-ttl", 10*time.Minute, "the namespace's history_ttl")
	fs.StringVar(&o.LogLevel, "log-level", "info", "log.level")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: enginebench centrifugo-config [flags] > config.json

Writes a Centrifugo v6 configuration (JSON) to stdout for -server
centrifugo: HMAC connection tokens (client.token.hmac_secret_key), the HTTP
API key (http_api.key), one namespace (channel.namespaces) with
history_size, history_ttl, force_recovery and allow_subscribe_for_client
(subscribe with the connection token alone), Prometheus /metrics and
/health, listening on 127.0.0.1:-port. Then:

  centrifugo -c config.json
  enginebench fanout -server centrifugo -targets http://127.0.0.1:8000 -cpu-pid $(pgrep -n centrifugo)

The secret, key and namespace defaults are fanout's and idle's.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	b, err := centrifugoConfig(o)
	if err != nil {
		return err
	}
	_, err = stdout.Write(b)
	return err
}

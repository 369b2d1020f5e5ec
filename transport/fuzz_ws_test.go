package transport_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/b6368a97/engine/transport"
	"github.com/b6368a97/engine/transport/transporttest"
)

// FuzzWSDispatch sends each input as one frame over a WebSocket to a real
// server (transporttest: the real runtime, every kind, an in-memory store;
// one server per fuzzing process, one connection reused while it stays
// healthy), followed by a ping of its own. It checks what the protocol
// promises whatever the frame:
//
//   - the connection stays open and the ping gets its pong;
//   - the frame gets exactly one reply (error, pong, ack, subscribed or
//     unsubscribed; commands are answered asynchronously, so the reply may
//     follow the pong), and every other frame is an event or presence;
//   - the reply carries the frame's ref, or none when the frame has no
//     valid ref (parseFrame's, through transport.FrameRef);
//   - an error reply has a protocol code and is never internal (a 500).
//
// The pure decoding is FuzzParseFrame's; this one covers the dispatch
// (ops, stream checks, commands through the deciders, subscriptions).
func FuzzWSDispatch(f *testing.F) {
	for _, s := range []string{
		`{"op":"ping","ref":"p"}`,
		`{"op":"command","stream":"room:fz","type":"PostMessage","data":{"user":"ann","text":"hi"},"ref":"c"}`,
		`{"op":"command","stream":"game:fz","type":"UpdateScore","data":{"team":"home","score":3},"id":"k1"}`,
		`{"op":"command","stream":"game:fz","type":"EndGame","data":null,"ref":""}`,
		`{"op":"command","stream":"order:fz","type":"PlaceOrder","data":{"items":[{"name":"bagel","qty":1}],"email":"ann@example.com"},"ref":"o"}`,
		`{"op":"command","stream":"order:fz","type":"CancelOrder","ref":"x"}`,
		`{"op":"command","stream":"user:fz","type":"SignUp","data":{"email":"ann@example.com","name":"Ann"}}`,
		`{"op":"command","stream":"kitchen:fz","type":"AddTicket","data":{"order":"order:fz","items":[{"name":"soup","qty":2}]}}`,
		`{"op":"command","stream":"kitchen:fz","type":"CloseTicket","data":{"order":"order:fz"}}`,
		`{"op":"command","stream":"room:fz","type":"Nope","data":[1],"ref":"bad data"}`,
		`{"op":"command","stream":"nokind:fz","type":"T","id":"tab\tkey"}`,
		`{"op":"subscribe","stream":"room:fz","from":0,"user":"ann","ref":"s"}`,
		`{"op":"subscribe","stream":"game:fz","from":1,"epoch":"another","ref":"e"}`,
		`{"op":"unsubscribe","stream":"room:fz","ref":"u"}`,
		`{"op":"unsubscribe","stream":"Room:fz"}`,
		`{"op":"dance","ref":"d"}`,
		`{"ref":"no op"}`,
		`{"op":"ping","ref":"a","extra":1}`,
		`{"op":"ping","ref":1}`,
		`not json`,
		`null`,
	} {
		f.Add([]byte(s), false)
	}
	f.Add([]byte(`{"op":"ping","ref":"binary"}`), true)

	h := transporttest.New(f)
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	var (
		conn   *websocket.Conn
		probes int
	)
	f.Cleanup(func() {
		if conn != nil {
			_ = conn.CloseNow()
		}
	})
	f.Fuzz(func(t *testing.T, frame []byte, binary bool) {
		if len(frame) > 60<<10 {
			t.Skip("over the read limit, which closes the connection by design")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// A connection that failed a check is not reused: the next input
		// starts on a fresh one, so a failure reproduces from its input.
		healthy := false
		defer func() {
			if !healthy && conn != nil {
				_ = conn.CloseNow()
				conn = nil
			}
		}()
		if conn == nil {
			c, _, err := websocket.Dial(ctx, h.WSBase+"/ws", nil)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			c.SetReadLimit(1 << 22)
			conn = c
		}

		typ, wantRef := websocket.MessageText, transport.FrameRef(frame)
		if binary {
			typ, wantRef = websocket.MessageBinary, nil
		}
		if err := conn.Write(ctx, typ, frame); err != nil {
			t.Fatalf("write the frame: %v", err)
		}
		probes++
		probe := fmt.Sprintf("probe-%s-%d", hex.EncodeToString(nonce[:]), probes)
		if err := conn.Write(ctx, websocket.MessageText, []byte(`{"op":"ping","ref":"`+probe+`"}`)); err != nil {
			t.Fatalf("write the ping after %q: %v", frame, err)
		}

		var (
			ponged  bool
			replies []map[string]any
		)
		for !ponged || len(replies) == 0 {
			mt, b, err := conn.Read(ctx)
			if err != nil {
				t.Fatalf("after frame %q (binary %v): the connection failed: %v (replies so far %v, pong %v)", frame, binary, err, replies, ponged)
			}
			var m map[string]any
			if mt != websocket.MessageText || json.Unmarshal(b, &m) != nil {
				t.Fatalf("after frame %q: the server sent %v %q, not a JSON object", frame, mt, b)
			}
			op, _ := m["op"].(string)
			switch op {
			case "event", "presence":
				continue
			case "pong":
				if m["ref"] == probe {
					ponged = true
					continue
				}
			case "error":
				code, _ := m["code"].(string)
				if _, msgOK := m["message"].(string); !protocolCodes[code] || !msgOK {
					t.Fatalf("frame %q got %s: not a protocol error", frame, b)
				}
			case "ack", "subscribed", "unsubscribed":
			default:
				t.Fatalf("frame %q got %s: unknown op", frame, b)
			}
			replies = append(replies, m)
		}
		if len(replies) != 1 {
			t.Fatalf("frame %q got %d replies, want 1: %v", frame, len(replies), replies)
		}
		got, hasRef := replies[0]["ref"]
		switch {
		case wantRef == nil && hasRef:
			t.Fatalf("frame %q: reply %v carries a ref, the frame has no valid one", frame, replies[0])
		case wantRef != nil && got != *wantRef:
			t.Fatalf("frame %q: reply %v, want ref %q", frame, replies[0], *wantRef)
		}
		healthy = true
	})
}

// protocolCodes are the error codes of docs/protocol.md, except a 500's.
var protocolCodes = map[string]bool{
	"bad_request": true, "unauthorized": true, "forbidden": true, "not_found": true,
	"conflict": true, "wrong_expected_version": true, "too_large": true,
	"unsupported_media_type": true, "rate_limited": true, "unavailable": true,
	"epoch_changed": true, "limit_exceeded": true,
}

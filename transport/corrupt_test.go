package transport_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/b6368a97/engine/events"
	"github.com/b6368a97/engine/transport/transporttest"
)

// A stream whose stored events its kind cannot fold is a server fault: a
// state read, a command over HTTP and a command over /ws all answer 500 /
// internal with the fixed detail, and the log has the stream, the version
// and the kind's error, under the request's id.
func TestCorruptStreamIsInternal(t *testing.T) {
	h := transporttest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), transporttest.Timeout)
	defer cancel()
	for _, c := range []struct {
		name, stream string
		stored       []events.Event
		version      int    // of the event that cannot be folded
		cause        string // in the kind's error
	}{
		{"unknown event type", "room:unknown", []events.Event{
			{ID: "e-1", Type: "MessagePosted", Data: json.RawMessage(`{"user":"ann","text":"hi"}`)},
			{ID: "e-2", Type: "Exploded", Data: json.RawMessage(`{}`)},
		}, 2, `unknown event type "Exploded"`},
		{"event the kind refuses", "room:invalid", []events.Event{
			{ID: "e-3", Type: "MessagePosted", Data: json.RawMessage(`{"user":"","text":""}`)},
		}, 1, "invalid event: user and text are required"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := h.Store.Append(ctx, c.stream, events.NoStream, c.stored); err != nil {
				t.Fatal(err)
			}
			logged := func(t *testing.T, msg, rid string) {
				t.Helper()
				rec := h.Logs.Find(func(m map[string]any) bool { return m["msg"] == msg && m["request_id"] == rid })
				if rec == nil {
					t.Fatalf("no %q log line for request %s", msg, rid)
				}
				got := fmt.Sprint(rec["err"])
				for _, want := range []string{c.stream, fmt.Sprintf("version %d", c.version), c.cause} {
					if !strings.Contains(got, want) {
						t.Fatalf("logged err %q, want it to name %q", got, want)
					}
				}
			}
			for _, req := range []struct{ method, path, body string }{
				{"GET", "/streams/" + c.stream, ""},
				{"POST", "/streams/" + c.stream + "/commands", transporttest.PostMessage("ann", "hello")},
			} {
				r := h.Do(req.method, req.path, req.body)
				p := transporttest.WantProblem(t, r, 500, "internal")
				if p["detail"] != "internal server error" {
					t.Fatalf("%s %s: detail %q, want the fixed one", req.method, req.path, p["detail"])
				}
				rid := r.Header.Get("X-Request-Id")
				if rid == "" {
					t.Fatalf("%s %s: no X-Request-Id", req.method, req.path)
				}
				logged(t, "request failed", rid)
			}

			ws := h.Dial(t, "/ws", nil)
			ws.Send(fmt.Sprintf(`{"op":"command","stream":%q,"type":"PostMessage","data":{"user":"ann","text":"hello"},"ref":"c"}`, c.stream))
			f := ws.Frame()
			if f["op"] != "error" || f["code"] != "internal" || f["message"] != "internal server error" || f["ref"] != "c" {
				t.Fatalf("/ws command: %v", f)
			}
			transporttest.Eventually(t, "the /ws failure logged", func() bool {
				return h.Logs.Find(func(m map[string]any) bool {
					return m["msg"] == "websocket request failed" && strings.Contains(fmt.Sprint(m["err"]), c.stream)
				}) != nil
			})
		})
	}
}

package transport_test

import (
	"testing"

	"github.com/b6368a97/engine/transport/transporttest"
)

// An Idempotency-Key (or a /ws command id) names one command: the same key
// with another body is 422 idempotency_mismatch, not the first reply; a
// key with a space in it is not visible ASCII.
func TestIdempotencyKeys(t *testing.T) {
	h := transporttest.New(t)
	post := func(key, body string) transporttest.Reply {
		return h.Do("POST", "/streams/room:idem/commands", body, "Idempotency-Key", key)
	}
	first := post("k-1", transporttest.PostMessage("ann", "hi"))
	if first.Status != 200 {
		t.Fatalf("first: %d %s", first.Status, first.Body)
	}
	if again := post("k-1", transporttest.PostMessage("ann", "hi")); again.Status != 200 || string(again.Body) != string(first.Body) {
		t.Fatalf("repeat: %d %s, want the first reply %s", again.Status, again.Body, first.Body)
	}
	transporttest.WantProblem(t, post("k-1", transporttest.PostMessage("ann", "something else")), 422, "idempotency_mismatch")
	transporttest.WantProblem(t, post("k 2", transporttest.PostMessage("ann", "hi")), 400, "bad_request")

	ws := h.Dial(t, "/ws")
	ws.Send(map[string]any{"op": "command", "stream": "room:idem", "type": "PostMessage", "id": "k-1", "ref": "r1",
		"data": map[string]any{"user": "ann", "text": "another"}})
	if f := ws.FrameOp("error"); f["code"] != "idempotency_mismatch" || f["ref"] != "r1" {
		t.Fatalf("reused id over /ws: %v", f)
	}
}

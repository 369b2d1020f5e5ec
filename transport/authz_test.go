package transport_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/b6368a97/engine/actors/user"
	"github.com/b6368a97/engine/events"
	"github.com/b6368a97/engine/transport"
	"github.com/b6368a97/engine/transport/transporttest"
)

// The reproductions of docs/security.md: a token holder forging kitchen
// tickets, reading and cancelling another user's order, and signing
// somebody else up. Each is refused with auth on and, where it applies,
// off.

var authzSecret = []byte("authz-test-secret")

func withAuthzSecret(c *transport.Config) { c.Auth.JWTSecret = authzSecret }

// mint signs an HS256 token for sub, valid for an hour, with extra claims.
func mintFor(t *testing.T, sub string, extra map[string]any) string {
	t.Helper()
	claims := map[string]any{"sub": sub, "exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range extra {
		claims[k] = v
	}
	return transporttest.Sign(t, authzSecret, claims)
}

func bearerOf(token string) []string {
	if token == "" {
		return nil
	}
	return []string{"Authorization", "Bearer " + token}
}

// wsAs dials /ws with token (none with auth off).
func wsAs(t *testing.T, h *transporttest.Harness, token string) *transporttest.WSClient {
	t.Helper()
	if token == "" {
		return h.Dial(t, "/ws")
	}
	return h.Dial(t, "/ws", &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
}

// wantFrame sends frame and checks the reply's op and, for an error, code.
func wantFrame(t *testing.T, w *transporttest.WSClient, frame, op, code string) map[string]any {
	t.Helper()
	w.Send(frame)
	f := w.NonPresence()
	if f["op"] != op || (code != "" && f["code"] != code) {
		t.Fatalf("%s: got %v, want op %s code %s", frame, f, op, code)
	}
	return f
}

// wantDecided checks that a CancelOrder reached the order's Decide: 200,
// or 409 when the order (cooked in milliseconds here) is ready already.
func wantDecided(t *testing.T, what string, r transporttest.Reply) {
	t.Helper()
	if r.Status != 200 && (r.Status != 409 || r.JSON(t)["code"] != "conflict") {
		t.Fatalf("%s: %d %s", what, r.Status, r.Body)
	}
}

func streamEvents(t *testing.T, h *transporttest.Harness, stream string) []events.Event {
	t.Helper()
	evs, err := h.Store.ReadStream(context.Background(), stream, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// Reproduction 1: AddTicket and CloseTicket are the engine's own commands
// (order steps send them): a client's are refused, HTTP and /ws, whether
// auth is on or off; orders still get their tickets.
func TestKitchenCommandsAreInternal(t *testing.T) {
	for _, auth := range []bool{true, false} {
		name := map[bool]string{true: "auth on", false: "auth off"}[auth]
		t.Run(name, func(t *testing.T) {
			var opts []transporttest.Option
			bob, admin := "", ""
			if auth {
				opts = append(opts, withAuthzSecret)
				bob, admin = mintFor(t, "bob", nil), mintFor(t, "root", map[string]any{"admin": true})
			}
			h := transporttest.New(t, opts...)
			for _, tok := range []string{bob, admin} {
				for _, body := range []string{
					`{"type":"AddTicket","data":{"order":"order:forged","items":[{"name":"caviar","qty":99}]}}`,
					`{"type":"CloseTicket","data":{"order":"order:forged"}}`,
				} {
					r := h.Do("POST", "/streams/kitchen:main/commands", body, bearerOf(tok)...)
					transporttest.WantProblem(t, r, 403, "forbidden")
				}
			}
			w := wsAs(t, h, bob)
			wantFrame(t, w, `{"op":"command","stream":"kitchen:main","type":"AddTicket","data":{"order":"order:forged","items":[{"name":"x","qty":1}]},"ref":"a"}`, "error", "forbidden")
			wantFrame(t, w, `{"op":"command","stream":"kitchen:main","type":"CloseTicket","data":{"order":"order:forged"},"ref":"c"}`, "error", "forbidden")
			if evs := streamEvents(t, h, "kitchen:main"); len(evs) != 0 {
				t.Fatalf("the kitchen holds client events: %+v", evs)
			}
			// The order's own steps still reach the kitchen.
			if r := h.Do("POST", "/order/soup", "", bearerOf(bob)...); r.Status != 200 {
				t.Fatalf("POST /order/soup: %d %s", r.Status, r.Body)
			}
			transporttest.Eventually(t, "the order's ticket added and closed", func() bool {
				evs := streamEvents(t, h, "kitchen:main")
				return len(evs) == 2 && evs[0].Type == "TicketAdded" && evs[1].Type == "TicketClosed"
			})
		})
	}
}

// Reproduction 2: an order is its owner's. Another token holder can
// neither cancel nor read it (state, events, subscribe), nor reach it
// through a shared Idempotency-Key; an admin can.
func TestOrdersArePrivate(t *testing.T) {
	h := transporttest.New(t, withAuthzSecret)
	ann, bob := mintFor(t, "ann", nil), mintFor(t, "bob", nil)
	admin := mintFor(t, "root", map[string]any{"admin": true})
	notAdmin := mintFor(t, "eve", map[string]any{"admin": "true"}) // only the JSON true counts

	r := h.Do("POST", "/orders", `{"items":[{"name":"tea","qty":1}],"email":"ann@example.com"}`, append(bearerOf(ann), "Idempotency-Key", "order-1")...)
	if r.Status != 202 {
		t.Fatalf("POST /orders: %d %s", r.Status, r.Body)
	}
	stream := r.JSON(t)["order"].(string)
	cancel := `{"type":"CancelOrder","data":{}}`

	for _, tok := range []string{bob, notAdmin} {
		transporttest.WantProblem(t, h.Do("POST", "/streams/"+stream+"/commands", cancel, bearerOf(tok)...), 403, "forbidden")
		transporttest.WantProblem(t, h.Do("GET", "/streams/"+stream, "", bearerOf(tok)...), 403, "forbidden")
		transporttest.WantProblem(t, h.Do("GET", "/streams/"+stream+"/events", "", bearerOf(tok)...), 403, "forbidden")
		w := wsAs(t, h, tok)
		wantFrame(t, w, `{"op":"subscribe","stream":"`+stream+`","from":0,"ref":"s"}`, "error", "forbidden")
		wantFrame(t, w, `{"op":"command","stream":"`+stream+`","type":"CancelOrder","ref":"c"}`, "error", "forbidden")
	}
	// Bob's retry key is his own: the same key places his own order.
	r = h.Do("POST", "/orders", `{"items":[{"name":"tea","qty":1}],"email":"ann@example.com"}`, append(bearerOf(bob), "Idempotency-Key", "order-1")...)
	if r.Status != 202 || r.JSON(t)["order"] == stream {
		t.Fatalf("bob's POST /orders with ann's key: %d %s (ann's order is %s)", r.Status, r.Body, stream)
	}

	// The owner reads it all, subscribes, and its state names her.
	st := h.Do("GET", "/streams/"+stream, "", bearerOf(ann)...)
	if st.Status != 200 || st.JSON(t)["user"] != "ann" || st.JSON(t)["email"] != "ann@example.com" {
		t.Fatalf("ann's state of her order: %d %s", st.Status, st.Body)
	}
	if r := h.Do("GET", "/streams/"+stream+"/events", "", bearerOf(ann)...); r.Status != 200 {
		t.Fatalf("ann's events: %d %s", r.Status, r.Body)
	}
	w := wsAs(t, h, ann)
	wantFrame(t, w, `{"op":"subscribe","stream":"`+stream+`","from":0,"ref":"s"}`, "subscribed", "")
	if f := w.FrameOp("event"); f["type"] != "OrderPlaced" {
		t.Fatalf("first event %v", f)
	}
	// An admin reads and commands it.
	if r := h.Do("GET", "/streams/"+stream, "", bearerOf(admin)...); r.Status != 200 {
		t.Fatalf("admin's state: %d %s", r.Status, r.Body)
	}
	wantDecided(t, "admin's CancelOrder", h.Do("POST", "/streams/"+stream+"/commands", cancel, bearerOf(admin)...))

	// Nobody but an admin reads an order before it is placed (a subscriber
	// there would see the order someone else places).
	transporttest.WantProblem(t, h.Do("GET", "/streams/order:unplaced", "", bearerOf(ann)...), 403, "forbidden")
	wantFrame(t, wsAs(t, h, ann), `{"op":"subscribe","stream":"order:unplaced","ref":"u"}`, "error", "forbidden")
	transporttest.WantProblem(t, h.Do("GET", "/streams/order:unplaced", "", bearerOf(admin)...), 404, "not_found")

	// An order placed without an owner (auth off then, or an older log) is
	// for admins only.
	placed, _ := json.Marshal(map[string]any{"items": []map[string]any{{"name": "tea", "qty": 1}}})
	if _, err := h.Store.Append(context.Background(), "order:old", events.Exactly(0), []events.Event{{
		ID: "00000000-0000-4000-8000-000000000001", Type: "OrderPlaced", Time: time.Now().UTC(), Data: placed,
	}}); err != nil {
		t.Fatal(err)
	}
	transporttest.WantProblem(t, h.Do("GET", "/streams/order:old", "", bearerOf(ann)...), 403, "forbidden")
	transporttest.WantProblem(t, h.Do("POST", "/streams/order:old/commands", cancel, bearerOf(ann)...), 403, "forbidden")
	if r := h.Do("GET", "/streams/order:old/events", "", bearerOf(admin)...); r.Status != 200 {
		t.Fatalf("admin's events of an order without owner: %d %s", r.Status, r.Body)
	}
}

// With auth off there is nobody to tell apart: orders are readable and
// commandable by every client (the kitchen's commands stay refused, see
// TestKitchenCommandsAreInternal).
func TestOrdersWithAuthOff(t *testing.T) {
	h := transporttest.New(t)
	r := h.Do("POST", "/orders", `{"items":[{"name":"tea","qty":1}]}`)
	if r.Status != 202 {
		t.Fatalf("POST /orders: %d %s", r.Status, r.Body)
	}
	stream := r.JSON(t)["order"].(string)
	if r := h.Do("GET", "/streams/"+stream, ""); r.Status != 200 {
		t.Fatalf("state: %d %s", r.Status, r.Body)
	}
	wantDecided(t, "CancelOrder", h.Do("POST", "/streams/"+stream+"/commands", `{"type":"CancelOrder"}`))
	wantFrame(t, wsAs(t, h, ""), `{"op":"subscribe","stream":"`+stream+`","from":0}`, "subscribed", "")
}

// Reproduction 3: SignUp is valid only on the stream of its own address
// (one user per email, on every route), and with auth on a user stream is
// the holder's of a verified email mapping to it: Bob cannot sign a victim
// up, on her stream, his own or another's.
func TestSignUpOfSomebodyElse(t *testing.T) {
	idOf := func(email string) string {
		id, err := user.IDForEmail(email)
		if err != nil {
			t.Fatal(err)
		}
		return "user:" + id
	}
	victim := `{"type":"SignUp","data":{"email":"victim@example.com","name":"Victim"}}`

	t.Run("auth off", func(t *testing.T) {
		h := transporttest.New(t)
		for _, s := range []string{"user:ann", idOf("bob@example.com")} {
			transporttest.WantProblem(t, h.Do("POST", "/streams/"+s+"/commands", victim), 400, "bad_request")
			if evs := streamEvents(t, h, s); len(evs) != 0 {
				t.Fatalf("%s: %+v", s, evs)
			}
		}
		w := wsAs(t, h, "")
		wantFrame(t, w, `{"op":"command","stream":"user:ann","type":"SignUp","data":{"email":"victim@example.com","name":"V"}}`, "error", "bad_request")
		// On its own stream, by any route, it is a sign-up.
		if r := h.Do("POST", "/streams/"+idOf("victim@example.com")+"/commands", victim); r.Status != 200 {
			t.Fatalf("SignUp on its own stream: %d %s", r.Status, r.Body)
		}
		transporttest.WantProblem(t, h.Do("POST", "/signup", `{"email":"Victim@Example.com","name":"Again"}`), 409, "conflict")
	})

	t.Run("auth on", func(t *testing.T) {
		h := transporttest.New(t, withAuthzSecret)
		bob := mintFor(t, "bob", nil)
		bobMail := mintFor(t, "bob", map[string]any{"email": "bob@example.com", "email_verified": true})
		bobUnverified := mintFor(t, "bob", map[string]any{"email": "victim@example.com", "email_verified": false})
		bobLoose := mintFor(t, "bob", map[string]any{"email": "victim@example.com", "email_verified": "true"})
		vic := mintFor(t, "v", map[string]any{"email": "Victim@example.com", "email_verified": true})
		admin := mintFor(t, "root", map[string]any{"admin": true})

		for _, tok := range []string{bob, bobMail, bobUnverified, bobLoose} {
			transporttest.WantProblem(t, h.Do("POST", "/streams/user:ann/commands", victim, bearerOf(tok)...), 403, "forbidden")
			transporttest.WantProblem(t, h.Do("POST", "/streams/"+idOf("victim@example.com")+"/commands", victim, bearerOf(tok)...), 403, "forbidden")
			transporttest.WantProblem(t, h.Do("POST", "/signup", `{"email":"victim@example.com","name":"V"}`, bearerOf(tok)...), 403, "forbidden")
			wantFrame(t, wsAs(t, h, tok), `{"op":"command","stream":"user:ann","type":"SignUp","data":{"email":"victim@example.com","name":"V"}}`, "error", "forbidden")
		}
		// Bob's own stream takes only his own address.
		transporttest.WantProblem(t, h.Do("POST", "/streams/"+idOf("bob@example.com")+"/commands", victim, bearerOf(bobMail)...), 400, "bad_request")
		for _, s := range []string{"user:ann", idOf("bob@example.com"), idOf("victim@example.com")} {
			if evs := streamEvents(t, h, s); len(evs) != 0 {
				t.Fatalf("%s: %+v", s, evs)
			}
		}
		// The holder of the address signs up, and only she (and admins)
		// reads her stream.
		if r := h.Do("POST", "/signup", `{"email":"victim@example.com","name":"Victim"}`, bearerOf(vic)...); r.Status != 202 {
			t.Fatalf("her own /signup: %d %s", r.Status, r.Body)
		}
		vs := idOf("victim@example.com")
		transporttest.WantProblem(t, h.Do("GET", "/streams/"+vs, "", bearerOf(bobMail)...), 403, "forbidden")
		transporttest.WantProblem(t, h.Do("GET", "/streams/"+vs+"/events", "", bearerOf(bob)...), 403, "forbidden")
		wantFrame(t, wsAs(t, h, bob), `{"op":"subscribe","stream":"`+vs+`"}`, "error", "forbidden")
		for _, tok := range []string{vic, admin} {
			if r := h.Do("GET", "/streams/"+vs, "", bearerOf(tok)...); r.Status != 200 {
				t.Fatalf("GET her stream: %d %s", r.Status, r.Body)
			}
		}
		wantFrame(t, wsAs(t, h, vic), `{"op":"subscribe","stream":"`+vs+`","from":0}`, "subscribed", "")
	})
}

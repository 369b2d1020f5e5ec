package kinds_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/actors/order"
	"github.com/b6368a97/engine/actors/room"
	"github.com/b6368a97/engine/actors/user"
)

// The scenarios that testdata/*.jsonl record. Each runs with its own clock
// and random source, both fixed, so the logs are the same on every run.
var scenarios = map[string]func(t *testing.T) *recorder{
	"room":   roomScenario,
	"game":   gameScenario,
	"orders": ordersScenario,
	"users":  usersScenario,
}

// roomScenario: a busy lobby (hundreds of messages, so the state keeps only
// the last 100) and a small dev room with edge-sized values.
func roomScenario(t *testing.T) *recorder {
	r := newRecorder(t, "room", time.Date(2026, 11, 25, 8, 59, 30, 0, time.UTC), 1)
	users := []string{"ann", "bob", "carol", "dmitri", "émilie", "李雷"}
	phrases := []string{
		"good morning", "morning ☀️", "anyone up for lunch?", "the build is green again",
		"I'll review it after standup", "who broke main?", "not me", "coffee?", "brb", "lgtm", "+1",
		"ça marche", "日本語も大丈夫です", "🎉🎉🎉", `she said "ship it"`, "<b>tags</b> & ampersands stay verbatim",
		"first line\nsecond line", "tabs\tand  double  spaces", "deploying to staging now", "rolling back, sorry",
		"can someone look at the flaky test?", "meeting moved to 3pm", "👍", "ok", "see you tomorrow",
	}
	lobby, dev := "room:lobby", "room:dev"
	devLeft := 14
	for i := 1; i <= 260; i++ {
		r.wait(300*time.Millisecond, 25*time.Second)
		u := users[r.rng.IntN(len(users))]
		text := phrases[r.rng.IntN(len(phrases))]
		if r.rng.IntN(4) == 0 {
			text = fmt.Sprintf("%s (#%d)", text, i)
		}
		r.do(lobby, "PostMessage", map[string]string{"user": u, "text": text})
		if devLeft > 0 && r.rng.IntN(18) == 0 {
			r.wait(100*time.Millisecond, 2*time.Second)
			r.do(dev, "PostMessage", map[string]string{"user": users[r.rng.IntN(3)], "text": fmt.Sprintf("PR #%d is up for review", 400+i)})
			devLeft--
		}
	}
	// Edge values: a 64-character user name, a 4096-character message and a
	// 1-character one.
	r.wait(time.Second, 3*time.Second)
	r.do(dev, "PostMessage", map[string]string{"user": strings.Repeat("x", 64), "text": "the longest name there can be"})
	r.wait(time.Second, 3*time.Second)
	long := strings.Repeat("log line ", 455) + "!"
	if utf8.RuneCountInString(long) != room.MaxText {
		t.Fatalf("the long message has %d runes", utf8.RuneCountInString(long))
	}
	r.do(dev, "PostMessage", map[string]string{"user": "bob", "text": long})
	r.wait(time.Second, 3*time.Second)
	r.do(dev, "PostMessage", map[string]string{"user": "ann", "text": "?"})
	r.reject(dev, "PostMessage", `{"user":"bob","text":"`+strings.Repeat("y", 4097)+`"}`, decider.ErrInvalid)
	return r
}

// gameScenario: a game played to the end, with a score correction, and a
// friendly still in progress.
func gameScenario(t *testing.T) *recorder {
	r := newRecorder(t, "game", time.Date(2026, 11, 25, 19, 0, 0, 0, time.UTC), 2)
	final, friendly := "game:final", "game:friendly"
	scores := map[string]int{"home": 0, "away": 0}
	r.do(final, "UpdateScore", map[string]any{"team": "home", "score": 0})
	r.do(final, "UpdateScore", map[string]any{"team": "away", "score": 0})
	for i := 0; i < 48; i++ {
		r.wait(10*time.Second, 90*time.Second)
		team := []string{"home", "away"}[r.rng.IntN(2)]
		scores[team] += 1 + r.rng.IntN(3)
		r.do(final, "UpdateScore", map[string]any{"team": team, "score": scores[team]})
		if i == 20 { // the referee takes a basket back
			r.wait(5*time.Second, 20*time.Second)
			scores[team] -= 2
			r.do(final, "UpdateScore", map[string]any{"team": team, "score": scores[team]})
		}
		if i%9 == 4 {
			r.wait(time.Second, 5*time.Second)
			r.do(friendly, "UpdateScore", map[string]any{"team": []string{"Société Générale", "Les Bleus"}[i%2], "score": i / 9})
		}
	}
	r.wait(30*time.Second, 60*time.Second)
	r.do(final, "EndGame", map[string]any{})
	r.reject(final, "UpdateScore", `{"team":"home","score":200}`, decider.ErrConflict)
	r.reject(final, "EndGame", `{}`, decider.ErrConflict)
	r.reject(friendly, "UpdateScore", `{"team":"Les Bleus","score":1.5}`, decider.ErrInvalid)
	r.reject(friendly, "UpdateScore", `{"team":"Les Bleus","score":-1}`, decider.ErrInvalid)
	return r
}

// ordersScenario: orders through every path, interleaved as a busy counter
// would interleave them, and the kitchen:main stream they write.
func ordersScenario(t *testing.T) *recorder {
	r := newRecorder(t, "orders", time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), 3)
	place := func(stream, email string, items ...order.Item) {
		r.wait(2*time.Second, 30*time.Second)
		r.do(stream, "PlaceOrder", order.PlaceOrder{Items: items, Email: email})
	}
	cancel := func(stream string) {
		r.wait(time.Second, 10*time.Second)
		r.do(stream, "CancelOrder", map[string]any{})
	}
	const (
		happy     = "order:1001" // kitchen, cook, ticket, receipt
		noEmail   = "order:1002" // the receipt is skipped
		early     = "order:1003" // cancelled before the kitchen step ran
		inKitchen = "order:1004" // cancelled in the kitchen: the ticket closes
		badMail   = "order:1005" // the receipt fails
		noKitchen = "order:1006" // the kitchen step fails
		cooking   = "order:1007" // still cooking when the log ends
		race      = "order:1008" // cancelled while the kitchen step was in flight
		big       = "order:1009" // 50 items, just placed when the log ends
	)
	place(happy, "ann@example.com", order.Item{Name: "flat white", Qty: 2}, order.Item{Name: "bagel", Qty: 1})
	place(noEmail, "", order.Item{Name: "green tea", Qty: 1})
	r.step(happy) // kitchen
	place(early, "bob@example.com", order.Item{Name: "tomato soup", Qty: 1}, order.Item{Name: "sourdough", Qty: 2})
	cancel(early)
	r.owes(early, "ticket")
	r.step(noEmail) // kitchen
	r.step(early)   // ticket: no ticket was added, CloseTicket is a no-op
	place(inKitchen, "carol@example.com", order.Item{Name: "margherita", Qty: 3})
	r.step(inKitchen) // kitchen
	r.step(happy)     // cook
	r.step(happy)     // ticket
	r.owes(happy, "receipt")
	r.step(happy) // receipt
	r.reject(happy, "CancelOrder", `{}`, decider.ErrConflict)
	cancel(inKitchen)
	r.step(inKitchen) // ticket: closes the open ticket
	r.step(noEmail)   // cook
	r.step(noEmail)   // ticket
	r.owes(noEmail)

	place(badMail, "dave@example.invalid", order.Item{Name: "caesar salad", Qty: 1})
	r.step(badMail) // kitchen
	place(noKitchen, "", order.Item{Name: "cheesecake", Qty: 1})
	r.fail(noKitchen, "kitchen:main: unavailable: actor did not answer in time", 5)
	r.owes(noKitchen, "ticket")
	r.step(badMail) // cook
	r.step(noKitchen)
	r.step(badMail) // ticket
	r.fail(badMail, "mailer: 550 5.1.1 mailbox unavailable", 5)
	r.owes(badMail)

	place(race, "erin@example.com", order.Item{Name: "ramen", Qty: 2}, order.Item{Name: "gyoza", Qty: 6})
	name := r.attempt(race) // AddTicket lands in the kitchen …
	cancel(race)            // … and the cancel arrives before KitchenNotified
	r.complete(race, name, "", 1)
	r.owes(race, "ticket")
	r.step(race) // ticket: closes the ticket the in-flight step added

	place(cooking, "frank@example.com", order.Item{Name: "pad thai", Qty: 1}, order.Item{Name: "spring rolls", Qty: 4})
	r.step(cooking) // kitchen
	r.owes(cooking, "cook", "receipt")

	var items []order.Item
	for i := 1; i <= order.MaxItems; i++ {
		items = append(items, order.Item{Name: fmt.Sprintf("canapé %02d", i), Qty: 1 + (i*7)%order.MaxQty})
	}
	items[0].Qty, items[1].Qty = 1, order.MaxQty
	place(big, "events@example.com", items...)
	r.reject(big, "PlaceOrder", `{"items":[{"name":"tea","qty":1}]}`, decider.ErrConflict)
	r.reject("order:1010", "PlaceOrder", `{"items":[{"name":"tea","qty":100}]}`, decider.ErrInvalid)
	return r
}

// usersScenario: sign-ups on the streams POST /signup derives, with the
// welcome email sent, failed and still pending.
func usersScenario(t *testing.T) *recorder {
	r := newRecorder(t, "users", time.Date(2026, 11, 25, 7, 30, 0, 0, time.UTC), 4)
	stream := func(email string) string {
		id, err := user.IDForEmail(email)
		if err != nil {
			t.Fatal(err)
		}
		return "user:" + id
	}
	signUp := func(email, name string) string {
		s := stream(email)
		r.wait(10*time.Second, 10*time.Minute)
		r.do(s, "SignUp", user.SignUp{Email: email, Name: name})
		return s
	}
	ann := signUp("ann@example.com", "Ann")
	r.step(ann)
	bob := signUp("Bob@Example.com", "Bob the Builder")
	li := signUp("li.lei@example.cn", "李雷")
	r.step(li)
	r.fail(bob, "mailer: dial tcp: connection refused", 5)
	// The same address in another spelling lands on the same stream.
	r.reject(stream(" ANN@example.com "), "SignUp", `{"email":"ANN@example.com","name":"Ann again"}`, decider.ErrConflict)
	names := []string{"Dana Scully", "Émile Zola", "Fox Mulder", "Grace Hopper", "Ada Lovelace", "Kofi Annan"}
	for i, name := range names {
		s := signUp(fmt.Sprintf("%s@example.org", strings.ToLower(strings.Fields(name)[1])), name)
		if i%3 != 2 {
			r.step(s)
		}
	}
	carol := signUp("carol@example.com", strings.Repeat("C", 64))
	r.owes(carol, "welcome")
	return r
}

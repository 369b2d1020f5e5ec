package transport_test

import (
	"bufio"
	"bytes"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/b6368a97/engine/actors/decider"
	"github.com/b6368a97/engine/actors/kinds"
	"github.com/b6368a97/engine/transport"
	"github.com/b6368a97/engine/transport/transporttest"
)

// securityDoc is the page whose tables these tests hold to the code.
const securityDoc = "../docs/security.md"

// markdownTable returns the rows of the first table in doc whose first
// header cell is first, header included, each as its trimmed cells.
func markdownTable(t *testing.T, doc []byte, first string) [][]string {
	t.Helper()
	var rows [][]string
	in := false
	sc := bufio.NewScanner(bytes.NewReader(doc))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "|") {
			if in {
				break
			}
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		switch {
		case !in && cells[0] == first:
			in = true
			rows = append(rows, cells)
		case in && strings.Trim(strings.Join(cells, ""), "-: ") == "":
			// the separator row
		case in:
			rows = append(rows, cells)
		}
	}
	if len(rows) < 2 {
		t.Fatalf("%s: no table whose first column is %q", securityDoc, first)
	}
	return rows
}

var codeSpan = regexp.MustCompile("`([^`]+)`")

// rowKey is a row's first cell, which must be one code span.
func rowKey(t *testing.T, row []string) string {
	t.Helper()
	m := codeSpan.FindStringSubmatch(row[0])
	if m == nil || m[0] != row[0] {
		t.Fatalf("%s: row %q: the first cell must be one `code span`", securityDoc, row)
	}
	return m[1]
}

// docPath writes a registered path the way the page does: /order/:item is
// /order/{item}.
func docPath(path string) string {
	segs := strings.Split(path, "/")
	for i, s := range segs {
		if name, ok := strings.CutPrefix(s, ":"); ok {
			segs[i] = "{" + strings.TrimSuffix(name, "?") + "}"
		}
	}
	return strings.Join(segs, "/")
}

// registeredRoutes lists, as "METHOD /path", every route the server
// registers (the generic ones, the extensions' and the WebSocket
// endpoints), leaving out the HEAD twin Fiber adds to each GET route; a
// prefix middleware (app.Use at a path other than "/") is "USE /path".
func registeredRoutes(app *fiber.App) []string {
	all := app.GetRoutes()
	var out []string
	for _, r := range all {
		key := r.Method + " " + docPath(r.Path)
		switch {
		case isMiddleware(app, r) && r.Path == "/":
			continue
		case isMiddleware(app, r):
			key = "USE " + docPath(r.Path)
		case r.Method == fiber.MethodHead && slices.ContainsFunc(all, func(g fiber.Route) bool {
			return g.Method == fiber.MethodGet && g.Path == r.Path && sameHandlers(g.Handlers, r.Handlers)
		}):
			continue
		}
		if !slices.Contains(out, key) {
			out = append(out, key)
		}
	}
	return out
}

// Every registered route, WebSocket path and /ws op has a row in the
// security table of docs/security.md, and every row names one of them, so
// the page cannot drift from the server.
func TestSecurityTableCoversEveryRoute(t *testing.T) {
	doc, err := os.ReadFile(securityDoc)
	if err != nil {
		t.Fatal(err)
	}
	rows := markdownTable(t, doc, "route or op")
	header := rows[0]
	if want := []string{"route or op", "streams", "public", "anonymous", "token holder", "owner", "admin"}; !slices.Equal(header, want) {
		t.Fatalf("%s: header %q, want %q", securityDoc, header, want)
	}
	documented := map[string]bool{}
	for _, row := range rows[1:] {
		if len(row) != len(header) {
			t.Fatalf("%s: row %q has %d cells, want %d", securityDoc, row, len(row), len(header))
		}
		for i, cell := range row {
			if cell == "" {
				t.Errorf("%s: row %q: empty %s cell", securityDoc, row[0], header[i])
			}
		}
		documented[rowKey(t, row)] = true
	}

	h := transporttest.New(t, withAuth)
	registered := registeredRoutes(transport.App(h.Srv))
	for _, op := range transport.WSOps() {
		registered = append(registered, "/ws op "+op)
	}
	// The enumeration sees every kind of entry: a check of nothing would
	// pass.
	for _, want := range []string{"GET /healthz", "POST /streams/{stream}/commands", "POST /order/{item}", "GET /chat-room", "/ws op subscribe"} {
		if !slices.Contains(registered, want) {
			t.Fatalf("the enumeration misses %s: %q", want, registered)
		}
	}
	for _, p := range transport.WebSocketPaths(h.Srv) {
		if !slices.Contains(registered, "GET "+p) {
			t.Errorf("WebSocket path %s is not among the routes %q", p, registered)
		}
	}
	for _, r := range registered {
		if !documented[r] {
			t.Errorf("%s is registered but has no row in %s", r, securityDoc)
		}
		delete(documented, r)
	}
	for r := range documented {
		t.Errorf("%s has a row in %s but is not registered", r, securityDoc)
	}
}

// The kinds table of docs/security.md says which commands are internal and
// which kinds are private: what the kinds themselves say.
func TestSecurityTableKinds(t *testing.T) {
	doc, err := os.ReadFile(securityDoc)
	if err != nil {
		t.Fatal(err)
	}
	rows := markdownTable(t, doc, "kind")
	if want := []string{"kind", "client commands", "internal commands", "streams"}; !slices.Equal(rows[0], want) {
		t.Fatalf("%s: header %q, want %q", securityDoc, rows[0], want)
	}
	seen := map[string]bool{}
	all := kinds.All(kinds.Config{})
	for _, row := range rows[1:] {
		name := rowKey(t, row)
		i := slices.IndexFunc(all, func(k decider.Kind) bool { return k.Name() == name })
		if i < 0 {
			t.Errorf("%s: kind %q is not served", securityDoc, name)
			continue
		}
		seen[name] = true
		k := all[i]
		var internal []string
		for _, m := range codeSpan.FindAllStringSubmatch(row[2], -1) {
			internal = append(internal, m[1])
		}
		want := k.Internal()
		slices.Sort(internal)
		slices.Sort(want)
		if !slices.Equal(internal, want) {
			t.Errorf("%s: kind %s: internal commands %q, the kind says %q", securityDoc, name, internal, want)
		}
		if private := strings.HasPrefix(row[3], "private"); private != k.IsPrivate() || !private && row[3] != "shared" {
			t.Errorf("%s: kind %s: streams %q, the kind is private: %v", securityDoc, name, row[3], k.IsPrivate())
		}
	}
	for _, k := range all {
		if !seen[k.Name()] {
			t.Errorf("%s: kind %s has no row", securityDoc, k.Name())
		}
	}
}

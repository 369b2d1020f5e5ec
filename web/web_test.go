package web_test

import (
	"io/fs"
	"strings"
	"testing"

	"github.com/b6368a97/engine/web"
)

// Every page, the client and the pages' scripts and styles are in FS.
func TestFS(t *testing.T) {
	for _, name := range []string{
		"index.html", "client.js", "app/style.css", "app/common.js",
		"app/chat.html", "app/chat.js", "app/scores.html", "app/scores.js",
		"app/orders.html", "app/orders.js", "app/inspector.html", "app/inspector.js",
	} {
		b, err := fs.ReadFile(web.FS, name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if len(b) == 0 {
			t.Errorf("%s is empty", name)
		}
	}
	for _, name := range []string{"static/index.html", "../client.js", "app/nope.html", "/index.html"} {
		if _, err := fs.ReadFile(web.FS, name); err == nil {
			t.Errorf("%s: opened", name)
		}
	}
	// Every page shows the connection badge.
	for _, page := range []string{"index.html", "app/chat.html", "app/scores.html", "app/orders.html", "app/inspector.html"} {
		b, _ := fs.ReadFile(web.FS, page)
		if !strings.Contains(string(b), `id="status"`) {
			t.Errorf("%s has no status badge", page)
		}
	}
}

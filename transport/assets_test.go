package transport_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/b6368a97/engine/transport/transporttest"
)

// The pages are served without a token, with their type, a revalidating
// cache and an ETag; nothing else of the file system is.
func TestAssets(t *testing.T) {
	h := transporttest.New(t, withAuth, withPages)
	for _, c := range []struct{ path, typ, body string }{
		{"/", "text/html; charset=utf-8", "<!doctype html>"},
		{"/client.js", "text/javascript; charset=utf-8", "export class Client"},
		{"/app/page.css", "text/css; charset=utf-8", "body{}"},
	} {
		r := h.Do("GET", c.path, "")
		if r.Status != http.StatusOK || r.Header.Get("Content-Type") != c.typ || !strings.HasPrefix(string(r.Body), c.body) {
			t.Errorf("GET %s: %d %q %q", c.path, r.Status, r.Header.Get("Content-Type"), r.Body)
			continue
		}
		if got := r.Header.Get("Cache-Control"); got != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q", c.path, got)
		}
		if r.Header.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(r.Header.Get("Content-Security-Policy"), "default-src 'self'") {
			t.Errorf("GET %s: headers %v", c.path, r.Header)
		}
		etag := r.Header.Get("ETag")
		if etag == "" {
			t.Errorf("GET %s: no ETag", c.path)
			continue
		}
		if r := h.Do("GET", c.path, "", "If-None-Match", etag); r.Status != http.StatusNotModified || len(r.Body) != 0 {
			t.Errorf("GET %s If-None-Match: %d %q", c.path, r.Status, r.Body)
		}
	}
	for _, path := range []string{"/app/", "/app/nope.css", "/app/../client.js", "/app/%2e%2e/client.js", "/app/.hidden.css", "/index.html", "/app/page.txt"} {
		r := h.Do("GET", path, "")
		if r.Status != http.StatusNotFound || !strings.Contains(string(r.Body), `"not_found"`) {
			t.Errorf("GET %s: %d %s", path, r.Status, r.Body)
		}
	}
	// Without Assets the routes answer 404.
	bare := transporttest.New(t)
	if r := bare.Do("GET", "/", ""); r.Status != http.StatusNotFound {
		t.Errorf("GET / without assets: %d %s", r.Status, r.Body)
	}
}

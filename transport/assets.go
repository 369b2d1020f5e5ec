package transport

import (
	"crypto/sha256"
	"encoding/base64"
	"io/fs"
	"path"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/b6368a97/engine/events"
)

// Static pages (Config.Assets): GET / is index.html, GET /client.js is
// client.js and GET /app/NAME is app/NAME of the file system. They are
// public (publicRoutes): pages and scripts hold no data; the data they
// show comes over /ws and the HTTP reads, which need a token with auth on
// like any other client's.

// assetTypes are the Content-Types of the files served, by extension;
// other files are not served.
var assetTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".mjs":  "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".ico":  "image/x-icon",
	".json": "application/json",
}

// assetPolicy is the pages' Content-Security-Policy: scripts, styles and
// connections from this origin only (WebSocket included), nothing framed.
const assetPolicy = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// asset serves the file name of Config.Assets.
func (s *Server) asset(name string) fiber.Handler {
	return func(c *fiber.Ctx) error { return s.serveAsset(c, name) }
}

// assetDir serves dir/P for GET /dir/*, P being the rest of the path.
func (s *Server) assetDir(dir string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		rest := c.Params("*")
		if rest == "" || strings.ContainsAny(rest, "%\\") || strings.HasPrefix(rest, ".") || strings.Contains(rest, "/.") {
			return errNoAsset
		}
		return s.serveAsset(c, path.Join(dir, rest))
	}
}

var errNoAsset = events.Refuse(events.ErrNotFound, "no such page")

func (s *Server) serveAsset(c *fiber.Ctx, name string) error {
	typ, ok := assetTypes[path.Ext(name)]
	if s.cfg.Assets == nil || !ok || !fs.ValidPath(name) {
		return errNoAsset
	}
	f, err := s.assetFile(name)
	if err != nil {
		return err
	}
	body, etag := f.body, f.etag
	c.Set(fiber.HeaderContentType, typ)
	// The pages change with the binary: a browser keeps them but asks
	// again each time, and gets a 304 while they are the same.
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set(fiber.HeaderETag, etag)
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderContentSecurityPolicy, assetPolicy)
	c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
	if c.Get(fiber.HeaderIfNoneMatch) == etag {
		return c.SendStatus(fiber.StatusNotModified)
	}
	return c.Send(body)
}

// assetFile is a file of Config.Assets with its ETag, read and hashed on
// its first request only: the pages are built into the binary and do not
// change while it runs.
type assetFile struct {
	body []byte
	etag string
}

func (s *Server) assetFile(name string) (*assetFile, error) {
	if f, ok := s.assetCache.Load(name); ok {
		return f.(*assetFile), nil
	}
	if st, err := fs.Stat(s.cfg.Assets, name); err != nil || st.IsDir() {
		return nil, errNoAsset
	}
	body, err := fs.ReadFile(s.cfg.Assets, name)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	f := &assetFile{body: body, etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`}
	s.assetCache.Store(name, f)
	return f, nil
}

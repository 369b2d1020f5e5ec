// Package apidocs holds the engine's API documents, embedded in the
// binary and served as public routes by package transport:
//
//   - openapi.json (GET /openapi.json): OpenAPI 3.1, every HTTP route;
//   - asyncapi.json (GET /asyncapi.json): AsyncAPI 3.0, every WebSocket
//     path, the ops of /ws and every frame the server writes;
//   - api.html (GET /api): a page that lists both, with links.
//
// The documents are written by hand. A test of package transport
// (apidocs_test.go) holds them to the server: it fails when a route, a
// WebSocket path, a /ws op or a server frame is added without being
// documented here, or documented without existing (see Check).
package apidocs

import (
	_ "embed"

	"github.com/gofiber/fiber/v2"
)

// OpenAPI is the OpenAPI 3.1 document of the HTTP API.
//
//go:embed openapi.json
var OpenAPI []byte

// AsyncAPI is the AsyncAPI 3.0 document of the WebSocket paths.
//
//go:embed asyncapi.json
var AsyncAPI []byte

// Page is the HTML page of GET /api.
//
//go:embed api.html
var Page []byte

// Handler serves body as contentType.
func Handler(body []byte, contentType string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, contentType)
		c.Set(fiber.HeaderCacheControl, "no-cache")
		return c.Send(body)
	}
}

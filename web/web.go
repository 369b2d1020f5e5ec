// Package web holds the engine's browser pages and its JavaScript client,
// embedded in the binary. transport serves FS without a token
// (transport.Config.Assets): GET / is static/index.html, GET /client.js
// is client.js and GET /app/NAME is static/app/NAME.
//
// The pages are plain HTML, CSS and JavaScript modules, with no build
// step; they talk to the engine only through client.js (the Client of
// the JavaScript API) and the HTTP reads.
package web

import (
	"embed"
	"io/fs"
)

//go:embed client.js static
var files embed.FS

// FS is the pages' file system: index.html, client.js and app/….
var FS fs.FS = pages{}

// pages puts client.js beside the contents of static/.
type pages struct{}

func (pages) Open(name string) (fs.File, error) {
	if name == "client.js" {
		return files.Open("client.js")
	}
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		return files.Open("static")
	}
	return files.Open("static/" + name)
}

package apidocs

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Inventory is what a server serves, as a test enumerates it.
type Inventory struct {
	// Routes are "METHOD /path" with parameters written {name}, as
	// registered ("USE /path" for a prefix middleware), Fiber's HEAD twins
	// of GET routes left out.
	Routes []string
	// WebSocketPaths are the paths registered as WebSocket endpoints.
	WebSocketPaths []string
	// ClientOps are the /ws ops the server dispatches on.
	ClientOps []string
	// ServerOps are the ops of the frames the server writes on /ws.
	ServerOps []string
	// ClientFields are the fields a /ws client frame may carry.
	ClientFields []string
}

// Report is what Check found.
type Report struct {
	// Problems are differences that fail the check: something served but
	// not documented, or documented but not served (outside ahead).
	Problems []string
	// AheadServed are entries of ahead that are served now: the list can
	// shrink.
	AheadServed []string
}

// methods are the operation keys of an OpenAPI path item.
var methods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// Documented returns the routes of an OpenAPI document as "METHOD /path".
func Documented(openapi []byte) ([]string, error) {
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openapi, &doc); err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	var out []string
	for path, item := range doc.Paths {
		for _, m := range methods {
			if _, ok := item[m]; ok {
				out = append(out, strings.ToUpper(m)+" "+path)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// asyncDoc is the part of an AsyncAPI 3 document the check reads.
type asyncDoc struct {
	Channels map[string]struct {
		Address  string                     `json:"address"`
		Messages map[string]json.RawMessage `json:"messages"`
	} `json:"channels"`
	Operations map[string]struct {
		Action  string `json:"action"`
		Channel struct {
			Ref string `json:"$ref"`
		} `json:"channel"`
		Messages []struct {
			Ref string `json:"$ref"`
		} `json:"messages"`
		Reply *struct {
			Messages []struct {
				Ref string `json:"$ref"`
			} `json:"messages"`
		} `json:"reply"`
	} `json:"operations"`
}

// Frames is what an AsyncAPI document says of one channel: the ops a
// client sends (messages of receive operations), the ops the server
// writes (messages of send operations and of replies) and the fields of
// the client's frames.
type Frames struct {
	ClientOps, ServerOps, ClientFields []string
}

// WebSocket reads the channel addresses of an AsyncAPI document and the
// frames of the channel at address.
func WebSocket(asyncapi []byte, address string) (addresses []string, f Frames, err error) {
	var doc asyncDoc
	if err := json.Unmarshal(asyncapi, &doc); err != nil {
		return nil, f, fmt.Errorf("asyncapi: %w", err)
	}
	var raw map[string]any
	if err := json.Unmarshal(asyncapi, &raw); err != nil {
		return nil, f, fmt.Errorf("asyncapi: %w", err)
	}
	channel := ""
	for name, ch := range doc.Channels {
		addresses = append(addresses, ch.Address)
		if ch.Address == address {
			channel = "#/channels/" + name
		}
	}
	slices.Sort(addresses)
	if channel == "" {
		return addresses, f, nil
	}
	// op and fields of the payload of a message reference.
	payload := func(ref string) (op string, fields []string, err error) {
		m, err := resolve(raw, ref)
		if err != nil {
			return "", nil, err
		}
		mm, err := deref(raw, m)
		if err != nil {
			return "", nil, err
		}
		p, err := deref(raw, mm["payload"])
		if err != nil {
			return "", nil, err
		}
		props, _ := p["properties"].(map[string]any)
		for k := range props {
			fields = append(fields, k)
		}
		opSchema, _ := props["op"].(map[string]any)
		op, _ = opSchema["const"].(string)
		if op == "" {
			return "", nil, fmt.Errorf("asyncapi: message %s: its payload has no op const", ref)
		}
		return op, fields, nil
	}
	add := func(list *[]string, v string) {
		if !slices.Contains(*list, v) {
			*list = append(*list, v)
		}
	}
	for name, o := range doc.Operations {
		if o.Channel.Ref != channel {
			continue
		}
		for _, m := range o.Messages {
			op, fields, err := payload(m.Ref)
			if err != nil {
				return nil, f, fmt.Errorf("operation %s: %w", name, err)
			}
			switch o.Action {
			case "receive": // the server receives: a client op
				add(&f.ClientOps, op)
				for _, fl := range fields {
					add(&f.ClientFields, fl)
				}
			case "send":
				add(&f.ServerOps, op)
			default:
				return nil, f, fmt.Errorf("operation %s: action %q", name, o.Action)
			}
		}
		if o.Reply != nil {
			for _, m := range o.Reply.Messages {
				op, _, err := payload(m.Ref)
				if err != nil {
					return nil, f, fmt.Errorf("operation %s reply: %w", name, err)
				}
				add(&f.ServerOps, op)
			}
		}
	}
	slices.Sort(f.ClientOps)
	slices.Sort(f.ServerOps)
	slices.Sort(f.ClientFields)
	return addresses, f, nil
}

// deref follows v's "$ref"s (a chain of them, at most a few) to an
// object.
func deref(doc map[string]any, v any) (map[string]any, error) {
	for range 8 {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("not an object: %v", v)
		}
		r, ok := m["$ref"].(string)
		if !ok {
			return m, nil
		}
		var err error
		if v, err = resolve(doc, r); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("too many $refs")
}

// resolve follows a local JSON pointer ("#/a/b") in doc.
func resolve(doc map[string]any, ref string) (any, error) {
	rest, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, fmt.Errorf("reference %q is not local", ref)
	}
	var v any = doc
	for _, tok := range strings.Split(rest, "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("reference %q does not resolve", ref)
		}
		if v, ok = m[tok]; !ok {
			return nil, fmt.Errorf("reference %q does not resolve", ref)
		}
	}
	return v, nil
}

// Template writes a route so that a registered path and a documented one
// compare equal: every parameter segment (Fiber's ":name", ":name?", "*",
// "+", OpenAPI's "{name}") is "{}", and a prefix middleware ("USE /p") is
// its GET.
func Template(route string) string {
	method, path, _ := strings.Cut(route, " ")
	if method == "USE" {
		method = "GET"
	}
	segs := strings.Split(path, "/")
	for i, s := range segs {
		if strings.HasPrefix(s, ":") || strings.HasPrefix(s, "*") || strings.HasPrefix(s, "+") ||
			strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
			segs[i] = "{}"
		}
	}
	return method + " " + strings.Join(segs, "/")
}

// Check compares what a server serves with the documents. ahead lists
// routes ("METHOD /path") documented before they are served: they may be
// missing from inv.Routes.
func Check(inv Inventory, openapi, asyncapi []byte, ahead []string) (Report, error) {
	var r Report
	documented, err := Documented(openapi)
	if err != nil {
		return r, err
	}
	docSet := map[string]string{} // template → as documented
	for _, d := range documented {
		docSet[Template(d)] = d
	}
	aheadSet := map[string]bool{}
	for _, a := range ahead {
		aheadSet[Template(a)] = true
	}
	served := map[string]bool{}
	for _, route := range inv.Routes {
		t := Template(route)
		served[t] = true
		if _, ok := docSet[t]; !ok {
			r.Problems = append(r.Problems, fmt.Sprintf("route %s is registered but not documented in openapi.json", route))
		}
		if aheadSet[t] {
			r.AheadServed = append(r.AheadServed, route)
		}
	}
	for t, d := range docSet {
		if !served[t] && !aheadSet[t] {
			r.Problems = append(r.Problems, fmt.Sprintf("route %s is documented in openapi.json but not registered", d))
		}
	}

	addresses, frames, err := WebSocket(asyncapi, "/ws")
	if err != nil {
		return r, err
	}
	diff := func(what string, have, doc []string) {
		for _, h := range have {
			if !slices.Contains(doc, h) {
				r.Problems = append(r.Problems, fmt.Sprintf("%s %s is served but not documented in asyncapi.json", what, h))
			}
		}
		for _, d := range doc {
			if !slices.Contains(have, d) {
				r.Problems = append(r.Problems, fmt.Sprintf("%s %s is documented in asyncapi.json but not served", what, d))
			}
		}
	}
	diff("WebSocket path", inv.WebSocketPaths, addresses)
	diff("/ws client op", inv.ClientOps, frames.ClientOps)
	diff("/ws server frame op", inv.ServerOps, frames.ServerOps)
	for _, f := range inv.ClientFields {
		if !slices.Contains(frames.ClientFields, f) {
			r.Problems = append(r.Problems, fmt.Sprintf("/ws client frame field %q is accepted but no client message of asyncapi.json documents it", f))
		}
	}
	slices.Sort(r.Problems)
	slices.Sort(r.AheadServed)
	return r, nil
}

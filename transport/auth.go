package transport

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/golang-jwt/jwt/v5"

	"github.com/b6368a97/engine/actors/decider"
)

// principal is who a request speaks for. A nil *principal is the anonymous
// caller of a server with auth off, and may do everything.
type principal struct {
	user string
	// streams are the patterns the token allows; nil allows every stream.
	streams []string
}

// claims are the token claims the engine reads.
type claims struct {
	jwt.RegisteredClaims
	Streams []string `json:"streams,omitempty"`
}

// authenticate verifies an HS256 token. It returns nil, nil when auth is
// off.
func (s *Server) authenticate(token string) (*principal, error) {
	if len(s.cfg.Auth.JWTSecret) == 0 {
		return nil, nil
	}
	if token == "" {
		return nil, newClientError(errUnauthorized, "a bearer token is required")
	}
	var c claims
	_, err := jwt.ParseWithClaims(token, &c,
		func(*jwt.Token) (any, error) { return s.cfg.Auth.JWTSecret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithTimeFunc(s.cfg.Now),
	)
	if err != nil {
		// The parser's reasons (expired, bad signature, malformed) are
		// about the client's own token and safe to show.
		return nil, newClientError(errUnauthorized, "invalid token: %s", tokenReason(err))
	}
	if c.Subject == "" {
		return nil, newClientError(errUnauthorized, "invalid token: no sub claim")
	}
	p := &principal{user: c.Subject}
	if c.Streams != nil {
		p.streams = c.Streams
	}
	return p, nil
}

func tokenReason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "not valid yet"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "bad signature"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed"
	}
	return "rejected"
}

// bearer extracts the token of an "Authorization: Bearer …" header.
func bearer(header string) string {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// allow reports whether p may touch stream, as an error for the table.
func (p *principal) allow(stream string) error {
	if p == nil || p.streams == nil {
		return nil
	}
	for _, pat := range p.streams {
		if ok, err := path.Match(pat, stream); err == nil && ok {
			return nil
		}
	}
	return fmt.Errorf("%w: the token does not allow stream %s", decider.ErrForbidden, stream)
}

// userName is the user commands run as: the token's subject, or "" when
// auth is off.
func (p *principal) userName() string {
	if p == nil {
		return ""
	}
	return p.user
}

package transport

import (
	"errors"
	"path"
	"strings"

	"github.com/golang-jwt/jwt/v5"

	"github.com/b6368a97/engine/actors/decider"
)

// principal is who a request speaks for: a token's subject, or the
// anonymous caller of a server with auth off. Only authenticate makes one.
//
// A nil *principal is a request that was never authenticated (a route
// registered around authHTTP or upgrade, a Locals value that is missing):
// it fails closed, allowed no stream and speaking for no user.
type principal struct {
	// anonymous is the caller of a server with auth off: every stream is
	// allowed and commands run as no user ("").
	anonymous bool
	// user is the token's subject; "" only when anonymous.
	user string
	// streams are the patterns the token allows; nil allows every stream.
	streams []string
	// email is the token's address if it says it is verified, else "";
	// admin: the token's "admin" claim is true (see caller).
	email string
	admin bool
}

// anonymousPrincipal is who every request speaks for when auth is off.
var anonymousPrincipal = &principal{anonymous: true}

// errNotAuthenticated refuses a request that has no principal at all.
var errNotAuthenticated = newClientError(errUnauthorized, "the request is not authenticated")

// claims are the token claims the engine reads.
type claims struct {
	jwt.RegisteredClaims
	Streams []string `json:"streams,omitempty"`
	// Email counts only with EmailVerified, as in OIDC.
	Email         string   `json:"email,omitempty"`
	EmailVerified trueFlag `json:"email_verified,omitempty"`
	Admin         trueFlag `json:"admin,omitempty"`
}

// authenticate verifies an HS256 token and returns who it speaks for. With
// auth off it returns the anonymous principal, whatever the token. It
// never returns a nil principal without an error.
func (s *Server) authenticate(token string) (*principal, error) {
	if len(s.cfg.Auth.JWTSecret) == 0 {
		return anonymousPrincipal, nil
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
	p := &principal{user: c.Subject, admin: bool(c.Admin)}
	if c.EmailVerified {
		p.email = c.Email
	}
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

// allow reports whether p may touch stream, as an error for the table: a
// nil p (never authenticated) is unauthorized, the anonymous principal of
// auth-off mode may touch every stream, a token the streams its claim
// allows.
func (p *principal) allow(stream string) error {
	switch {
	case p == nil:
		return errNotAuthenticated
	case p.anonymous, p.streams == nil:
		return nil
	}
	for _, pat := range p.streams {
		if ok, err := path.Match(pat, stream); err == nil && ok {
			return nil
		}
	}
	return newClientError(decider.ErrForbidden, "the token does not allow stream %s", stream)
}

// userName is the user commands run as: the token's subject, or "" for
// the anonymous principal and for nil (which allow refuses anyway).
func (p *principal) userName() string {
	if p == nil || p.anonymous {
		return ""
	}
	return p.user
}

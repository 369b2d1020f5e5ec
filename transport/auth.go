package transport

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

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
	// expires is the token's exp; zero only when anonymous. Past it (plus
	// Auth.Leeway) a WebSocket that has not refreshed its token closes.
	expires time.Time
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
	// Streams stays raw so that a claim that is present but not a list
	// of strings (null included) is told apart from an absent one.
	Streams json.RawMessage `json:"streams,omitempty"`
	// Email counts only with EmailVerified, as in OIDC.
	Email         string   `json:"email,omitempty"`
	EmailVerified trueFlag `json:"email_verified,omitempty"`
	Admin         trueFlag `json:"admin,omitempty"`
}

// authOn reports whether tokens are required: a secret or a key set.
func (a *Auth) authOn() bool { return len(a.JWTSecret) > 0 || a.JWKS.Len() > 0 }

// algs are the token algorithms the configuration accepts.
func (a *Auth) algs() []string {
	var algs []string
	if len(a.JWTSecret) > 0 {
		algs = append(algs, algHS256)
	}
	for _, alg := range []string{algRS256, algES256} {
		if a.JWKS.has(alg) {
			algs = append(algs, alg)
		}
	}
	return algs
}

// authenticate verifies a token (HS256 with the secret, RS256 or ES256
// with a key of the JWKS) and returns who it speaks for. With auth off it
// returns the anonymous principal, whatever the token. It never returns a
// nil principal without an error.
func (s *Server) authenticate(token string) (*principal, error) {
	if !s.cfg.Auth.authOn() {
		return anonymousPrincipal, nil
	}
	if token == "" {
		return nil, newClientError(errUnauthorized, "a bearer token is required")
	}
	algs := s.cfg.Auth.algs()
	var c claims
	t, err := jwt.NewParser(
		jwt.WithValidMethods(algs),
		jwt.WithTimeFunc(s.cfg.Now),
		jwt.WithLeeway(s.cfg.Auth.Leeway),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
	).ParseWithClaims(token, &c, s.tokenKey)
	if err != nil {
		// The reasons (expired, bad signature, malformed) are about the
		// client's own token and safe to show.
		return nil, newClientError(errUnauthorized, "invalid token: %s", tokenReason(t, algs, err))
	}
	if c.Subject == "" {
		return nil, newClientError(errUnauthorized, "invalid token: no sub claim")
	}
	streams, err := streamsClaim(c.Streams)
	if err != nil {
		return nil, newClientError(errUnauthorized, "invalid token: %s", err)
	}
	p := &principal{user: c.Subject, streams: streams, expires: c.ExpiresAt.Time, admin: bool(c.Admin)}
	if c.EmailVerified {
		p.email = c.Email
	}
	return p, nil
}

// streamsClaim reads the streams claim: absent (nil) allows every stream;
// otherwise it must be a list of strings ([] allows none).
func streamsClaim(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var items []any
	if err := json.Unmarshal(raw, &items); err != nil || items == nil {
		return nil, errors.New("the streams claim must be a list of strings")
	}
	streams := make([]string, 0, len(items))
	for _, it := range items {
		s, ok := it.(string)
		if !ok {
			return nil, errors.New("the streams claim must be a list of strings")
		}
		streams = append(streams, s)
	}
	return streams, nil
}

// keyError is why no key verifies a token, for the client.
type keyError struct{ reason string }

func (e *keyError) Error() string { return e.reason }

// tokenKey is the parser's Keyfunc: the key for the token's alg, which
// the parser has checked is one the configuration accepts. HS256 is
// verified with the secret only, RS256 and ES256 with the JWKS keys of
// that alg only, so that no key ever serves another algorithm. A token
// with a kid uses that key; one without tries every key of its alg.
func (s *Server) tokenKey(t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	switch alg {
	case algHS256:
		if len(s.cfg.Auth.JWTSecret) == 0 {
			return nil, &keyError{"alg HS256 is not accepted"}
		}
		return s.cfg.Auth.JWTSecret, nil
	case algRS256, algES256:
	default:
		return nil, &keyError{fmt.Sprintf("alg %q is not accepted", clip(alg))}
	}
	ks := s.cfg.Auth.JWKS
	if rawKid, ok := t.Header["kid"]; ok {
		kid, ok := rawKid.(string)
		if !ok {
			return nil, &keyError{"kid must be a string"}
		}
		if kid != "" {
			k := ks.byKid(kid)
			if k == nil {
				return nil, &keyError{fmt.Sprintf("no key with kid %q", clip(kid))}
			}
			if k.alg != alg {
				return nil, &keyError{fmt.Sprintf("key %q is not an %s key", clip(kid), alg)}
			}
			return k.key, nil
		}
	}
	keys := ks.forAlg(alg)
	if len(keys) == 0 {
		return nil, &keyError{fmt.Sprintf("alg %s is not accepted", alg)}
	}
	set := jwt.VerificationKeySet{Keys: make([]jwt.VerificationKey, len(keys))}
	for i, k := range keys {
		set.Keys[i] = k
	}
	return set, nil
}

// tokenReason says, for the client, why the parser refused a token.
func tokenReason(t *jwt.Token, algs []string, err error) string {
	var ke *keyError
	switch {
	case errors.As(err, &ke):
		return ke.reason
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed"
	case t != nil && t.Header["alg"] == nil:
		return "no alg"
	case t != nil && !slices.Contains(algs, fmt.Sprint(t.Header["alg"])):
		// The parser checks the alg before the signature.
		return fmt.Sprintf("alg %q is not accepted", clip(fmt.Sprint(t.Header["alg"])))
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "bad signature"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "no exp claim"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "not valid yet (nbf)"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "issued in the future (iat)"
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

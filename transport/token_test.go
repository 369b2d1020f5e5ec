package transport

import (
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/b6368a97/engine/events/memstore"
)

// signToken signs claims with method and key, with a kid header unless
// kid is nil.
func signToken(t testing.TB, method jwt.SigningMethod, key any, kid any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != nil {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rawToken is a token with any header, unsigned.
func rawToken(header, claims string) string {
	return b64([]byte(header)) + "." + b64([]byte(claims)) + ".c2ln"
}

func authServer(t testing.TB, auth Auth, now time.Time) *Server {
	t.Helper()
	s, err := New(Config{
		API: stubAPI{}, Log: memstore.New(),
		Registerer: prometheus.NewRegistry(), Gatherer: prometheus.NewRegistry(),
		Auth: auth,
		Now:  func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestTokenRules: what makes a token valid, for each way auth can be
// configured, and what the 401's detail says when it is not.
func TestTokenRules(t *testing.T) {
	keys := testKeys()
	now := time.Date(2026, 11, 25, 16, 0, 0, 0, time.UTC)
	secret := []byte("token-test-secret")
	set, err := ParseJWKS(jwks(t, rsaJWK("r1", &keys.rsa.PublicKey), ecJWK("e1", &keys.ec.PublicKey)))
	if err != nil {
		t.Fatal(err)
	}
	rsaDER, err := x509.MarshalPKIXPublicKey(&keys.rsa.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	servers := map[string]*Server{
		"secret":        authServer(t, Auth{JWTSecret: secret}, now),
		"secret+leeway": authServer(t, Auth{JWTSecret: secret, Leeway: 30 * time.Second}, now),
		"jwks":          authServer(t, Auth{JWKS: set}, now),
		"both":          authServer(t, Auth{JWTSecret: secret, JWKS: set}, now),
	}
	at := func(d time.Duration) int64 { return now.Add(d).Unix() }
	claims := func(extra ...any) jwt.MapClaims {
		c := jwt.MapClaims{"sub": "ann", "exp": at(time.Hour)}
		for i := 0; i+1 < len(extra); i += 2 {
			if extra[i+1] == "DELETE" {
				delete(c, extra[i].(string))
				continue
			}
			c[extra[i].(string)] = extra[i+1]
		}
		return c
	}
	hs := func(extra ...any) string { return signToken(t, jwt.SigningMethodHS256, secret, nil, claims(extra...)) }

	for _, c := range []struct {
		name, server, token string
		reason              string   // "" means valid
		streams             []string // when valid
	}{
		// The streams claim.
		{"streams absent: every stream", "secret", hs(), "", nil},
		{"streams []: none", "secret", hs("streams", []string{}), "", []string{}},
		{"streams listed", "secret", hs("streams", []string{"room:*", "game:main"}), "", []string{"room:*", "game:main"}},
		{"streams null", "secret", signRaw(t, secret, fmt.Sprintf(`{"sub":"ann","exp":%d,"streams":null}`, at(time.Hour))), "the streams claim must be a list of strings", nil},
		{"streams a string", "secret", hs("streams", "room:*"), "the streams claim must be a list of strings", nil},
		{"streams an object", "secret", hs("streams", map[string]any{}), "the streams claim must be a list of strings", nil},
		{"streams with a number", "secret", hs("streams", []any{"room:*", 1}), "the streams claim must be a list of strings", nil},
		{"streams with null", "secret", hs("streams", []any{"room:*", nil}), "the streams claim must be a list of strings", nil},
		{"no sub", "secret", hs("sub", "DELETE"), "no sub claim", nil},

		// exp, nbf, iat and the leeway.
		{"no exp", "secret", hs("exp", "DELETE"), "no exp claim", nil},
		{"exp not a number", "secret", hs("exp", "tomorrow"), "malformed", nil},
		{"expired", "secret", hs("exp", at(-10*time.Second)), "expired", nil},
		{"expiring now", "secret", hs("exp", at(0)), "expired", nil},
		{"expired within the leeway", "secret+leeway", hs("exp", at(-10*time.Second)), "", nil},
		{"expired beyond the leeway", "secret+leeway", hs("exp", at(-31*time.Second)), "expired", nil},
		{"nbf in the future", "secret", hs("nbf", at(10*time.Second)), "not valid yet (nbf)", nil},
		{"nbf within the leeway", "secret+leeway", hs("nbf", at(10*time.Second)), "", nil},
		{"nbf beyond the leeway", "secret+leeway", hs("nbf", at(time.Minute)), "not valid yet (nbf)", nil},
		{"nbf passed", "secret", hs("nbf", at(-time.Minute)), "", nil},
		{"iat in the future", "secret", hs("iat", at(10*time.Second)), "issued in the future (iat)", nil},
		{"iat within the leeway", "secret+leeway", hs("iat", at(10*time.Second)), "", nil},
		{"iat passed", "secret", hs("iat", at(-time.Minute)), "", nil},

		// Algorithms.
		{"alg none", "both", signToken(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, nil, claims()), `alg "none" is not accepted`, nil},
		{"HS512 with the secret", "both", signToken(t, jwt.SigningMethodHS512, secret, nil, claims()), `alg "HS512" is not accepted`, nil},
		{"HS256 with another secret", "secret", signToken(t, jwt.SigningMethodHS256, []byte("other"), nil, claims()), "bad signature", nil},
		{"unknown alg", "both", rawToken(`{"alg":"XX256","typ":"JWT"}`, `{"sub":"ann"}`), `alg "XX256" is not accepted`, nil},
		{"no alg", "both", rawToken(`{"typ":"JWT"}`, `{"sub":"ann"}`), "no alg", nil},
		{"garbage", "both", "garbage", "malformed", nil},
		{"RS256 with a JWKS key", "jwks", signToken(t, jwt.SigningMethodRS256, keys.rsa, "r1", claims()), "", nil},
		{"RS256 without kid", "jwks", signToken(t, jwt.SigningMethodRS256, keys.rsa, nil, claims()), "", nil},
		{"RS256 next to a secret", "both", signToken(t, jwt.SigningMethodRS256, keys.rsa, "r1", claims()), "", nil},
		{"RS256 signed by another key", "jwks", signToken(t, jwt.SigningMethodRS256, keys.rsaOther, "r1", claims()), "bad signature", nil},
		{"RS256 by another key, no kid", "jwks", signToken(t, jwt.SigningMethodRS256, keys.rsaOther, nil, claims()), "bad signature", nil},
		{"RS384 with a JWKS key", "jwks", signToken(t, jwt.SigningMethodRS384, keys.rsa, "r1", claims()), `alg "RS384" is not accepted`, nil},
		{"PS256 with a JWKS key", "jwks", signToken(t, jwt.SigningMethodPS256, keys.rsa, "r1", claims()), `alg "PS256" is not accepted`, nil},
		{"ES256 with a JWKS key", "jwks", signToken(t, jwt.SigningMethodES256, keys.ec, "e1", claims()), "", nil},
		{"ES256 without kid", "both", signToken(t, jwt.SigningMethodES256, keys.ec, nil, claims()), "", nil},
		{"ES256 signed by another key", "jwks", signToken(t, jwt.SigningMethodES256, keys.ecOther, "e1", claims()), "bad signature", nil},
		{"kid not in the set", "jwks", signToken(t, jwt.SigningMethodRS256, keys.rsa, "r2", claims()), `no key with kid "r2"`, nil},
		{"kid not a string", "jwks", signToken(t, jwt.SigningMethodRS256, keys.rsa, 7, claims()), "kid must be a string", nil},
		{"ES256 naming an RSA kid", "jwks", signToken(t, jwt.SigningMethodES256, keys.ec, "r1", claims()), `key "r1" is not an ES256 key`, nil},
		{"RS256 naming an EC kid", "jwks", signToken(t, jwt.SigningMethodRS256, keys.rsa, "e1", claims()), `key "e1" is not an RS256 key`, nil},
		{"RS256 without a JWKS", "secret", signToken(t, jwt.SigningMethodRS256, keys.rsa, "r1", claims()), `alg "RS256" is not accepted`, nil},
		{"ES256 without a JWKS", "secret", signToken(t, jwt.SigningMethodES256, keys.ec, nil, claims()), `alg "ES256" is not accepted`, nil},
		{"HS256 without a secret", "jwks", hs(), `alg "HS256" is not accepted`, nil},
		// Alg confusion: an HS256 token keyed with the RSA public key that
		// the server has is verified with the secret (so fails), never
		// with that key; with no secret HS256 is not accepted at all.
		{"HS256 keyed with the public key (DER)", "both", signToken(t, jwt.SigningMethodHS256, rsaDER, "r1", claims()), "bad signature", nil},
		{"HS256 keyed with the public key, no secret", "jwks", signToken(t, jwt.SigningMethodHS256, rsaDER, "r1", claims()), `alg "HS256" is not accepted`, nil},
		{"HS256 keyed with the JWK's n", "both", signToken(t, jwt.SigningMethodHS256, keys.rsa.N.Bytes(), "r1", claims()), "bad signature", nil},
		{"HS256 keyed with the secret, naming a JWKS kid", "both", signToken(t, jwt.SigningMethodHS256, secret, "r1", claims()), "", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := servers[c.server].authenticate(c.token)
			if c.reason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				var mc jwt.MapClaims
				if _, _, err := jwt.NewParser().ParseUnverified(c.token, &mc); err != nil {
					t.Fatal(err)
				}
				exp, _ := mc.GetExpirationTime()
				if p.user != "ann" || p.anonymous || !p.expires.Equal(exp.Time) {
					t.Fatalf("principal %+v", p)
				}
				if (p.streams == nil) != (c.streams == nil) || !slices.Equal(p.streams, c.streams) {
					t.Fatalf("streams %#v, want %#v", p.streams, c.streams)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted (%+v), want %q", p, c.reason)
			}
			if !errors.Is(err, errUnauthorized) {
				t.Fatalf("%v is not unauthorized", err)
			}
			pr, _ := classify(err)
			if pr.Status != 401 || pr.Code != codeUnauthorized || pr.Detail != "invalid token: "+c.reason {
				t.Fatalf("problem %+v, want detail %q", pr, "invalid token: "+c.reason)
			}
		})
	}
}

// signRaw signs a claims JSON given verbatim (a null claim, which
// MapClaims cannot tell from an absent one once decoded).
func signRaw(t testing.TB, secret []byte, claimsJSON string) string {
	t.Helper()
	signing := b64([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + b64([]byte(claimsJSON))
	sig, err := jwt.SigningMethodHS256.Sign(signing, secret)
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + b64(sig)
}

func TestAuthOn(t *testing.T) {
	set, err := ParseJWKS(jwks(t, ecJWK("e1", &testKeys().ec.PublicKey)))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		auth Auth
		on   bool
		algs []string
	}{
		{Auth{}, false, nil},
		{Auth{Leeway: time.Minute}, false, nil},
		{Auth{JWTSecret: []byte("s")}, true, []string{"HS256"}},
		{Auth{JWKS: set}, true, []string{"ES256"}},
		{Auth{JWTSecret: []byte("s"), JWKS: set}, true, []string{"HS256", "ES256"}},
	} {
		if c.auth.authOn() != c.on || !slices.Equal(c.auth.algs(), c.algs) {
			t.Errorf("%+v: on %v algs %v, want %v %v", c.auth, c.auth.authOn(), c.auth.algs(), c.on, c.algs)
		}
	}
	if err := (Config{API: stubAPI{}, Log: memstore.New(), Auth: Auth{Leeway: -time.Second}}).Validate(); err == nil || !strings.Contains(err.Error(), "Auth.Leeway") {
		t.Errorf("a negative leeway: %v", err)
	}
}

package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// writeJWKS writes the public halves of an RSA and an EC key as a JWKS
// file (kids "r1" and "e1") and returns its path.
func writeJWKS(t *testing.T, rk *rsa.PrivateKey, ek *ecdsa.PrivateKey) string {
	t.Helper()
	b64 := base64.RawURLEncoding.EncodeToString
	xy, err := ek.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := json.Marshal(map[string]any{"keys": []map[string]any{
		{"kty": "RSA", "kid": "r1", "use": "sig", "alg": "RS256", "n": b64(rk.N.Bytes()), "e": b64(big.NewInt(int64(rk.E)).Bytes())},
		{"kty": "EC", "kid": "e1", "crv": "P-256", "x": b64(xy[1:33]), "y": b64(xy[33:])},
		{"kty": "oct", "kid": "skipped", "k": b64([]byte("not for us"))},
	}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestE2EJWKS: -jwt-jwks-file alone turns auth on for RS256 and ES256
// tokens of its keys, with the default 30 s leeway; HS256 is then refused.
func TestE2EJWKS(t *testing.T) {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	path := writeJWKS(t, rk, ek)
	e := startEngine(t, t.TempDir(), func(m *Main) { m.Config.JWKSFile = path })
	if !strings.Contains(e.logs.String(), "jwks: key skipped") {
		t.Errorf("the skipped key is not logged:\n%s", e.logs.String())
	}

	sign := func(method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
		tok := jwt.NewWithClaims(method, claims)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	at := func(d time.Duration) int64 { return time.Now().Add(d).Unix() }
	body := []byte(`{"type":"UpdateScore","data":{"team":"a","score":1}}`)
	for _, tc := range []struct {
		name   string
		token  string
		status int
		detail string
	}{
		{"RS256", sign(jwt.SigningMethodRS256, rk, "r1", jwt.MapClaims{"sub": "ann", "exp": at(time.Hour)}), 200, ""},
		{"ES256 without kid", sign(jwt.SigningMethodES256, ek, "", jwt.MapClaims{"sub": "ann", "exp": at(time.Hour)}), 200, ""},
		{"expired within the default leeway", sign(jwt.SigningMethodES256, ek, "e1", jwt.MapClaims{"sub": "ann", "exp": at(-5 * time.Second)}), 200, ""},
		{"expired beyond the leeway", sign(jwt.SigningMethodES256, ek, "e1", jwt.MapClaims{"sub": "ann", "exp": at(-time.Minute)}), 401, "invalid token: expired"},
		{"no exp", sign(jwt.SigningMethodRS256, rk, "r1", jwt.MapClaims{"sub": "ann"}), 401, "invalid token: no exp claim"},
		{"streams null", sign(jwt.SigningMethodRS256, rk, "r1", jwt.MapClaims{"sub": "ann", "exp": at(time.Hour), "streams": nil}), 401, "invalid token: the streams claim must be a list of strings"},
		{"HS256", sign(jwt.SigningMethodHS256, []byte("any"), "", jwt.MapClaims{"sub": "ann", "exp": at(time.Hour)}), 401, `invalid token: alg "HS256" is not accepted`},
		{"unknown kid", sign(jwt.SigningMethodRS256, rk, "r9", jwt.MapClaims{"sub": "ann", "exp": at(time.Hour)}), 401, `invalid token: no key with kid "r9"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("POST", "/streams/game:jwks/commands", body, map[string]string{"Authorization": "Bearer " + tc.token})
			if tc.status == 200 {
				if r.status != 200 {
					t.Fatalf("got %s", r)
				}
				return
			}
			if p := expectProblem(t, r, tc.status, "unauthorized"); p.Detail != tc.detail {
				t.Fatalf("detail %q, want %q", p.Detail, tc.detail)
			}
		})
	}

	t.Run("a bad file stops start-up", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.json")
		if err := os.WriteFile(bad, []byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, file := range []string{bad, filepath.Join(t.TempDir(), "missing.json")} {
			m := newMain(t.TempDir(), &syncBuffer{}, func(m *Main) { m.Config.JWKSFile = file })
			ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
			err := m.Open(ctx)
			cancel()
			if err == nil {
				_ = m.Close(context.Background())
				t.Fatalf("%s: Open succeeded", file)
			}
			if !strings.Contains(err.Error(), "ENGINE_JWT_JWKS_FILE") || !strings.Contains(err.Error(), filepath.Base(file)) {
				t.Errorf("%s: error %q does not name the setting and the file", file, err)
			}
		}
	})
}

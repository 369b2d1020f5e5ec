package transport

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"sync"
	"testing"
)

// testKeys are the keys of the token tests, made once per test binary.
var testKeys = sync.OnceValue(func() (k struct {
	rsa, rsaOther *rsa.PrivateKey
	ec, ecOther   *ecdsa.PrivateKey
},
) {
	var err error
	for _, p := range []**rsa.PrivateKey{&k.rsa, &k.rsaOther} {
		if *p, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	}
	for _, p := range []**ecdsa.PrivateKey{&k.ec, &k.ecOther} {
		if *p, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
	}
	return k
})

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// rsaJWK and ecJWK are the public JWKs of test keys.
func rsaJWK(kid string, k *rsa.PublicKey) map[string]any {
	return map[string]any{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}
}

func ecJWK(kid string, k *ecdsa.PublicKey) map[string]any {
	b, err := k.Bytes() // 0x04 || x || y
	if err != nil {
		panic(err)
	}
	return map[string]any{"kty": "EC", "kid": kid, "crv": "P-256", "x": b64(b[1:33]), "y": b64(b[33:])}
}

func jwks(t testing.TB, keys ...map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseJWKS(t *testing.T) {
	keys := testKeys()
	r1 := rsaJWK("r1", &keys.rsa.PublicKey)
	e1 := ecJWK("e1", &keys.ec.PublicKey)
	with := func(base map[string]any, kv ...any) map[string]any {
		m := make(map[string]any, len(base))
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
				continue
			}
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	small := make([]byte, 128) // a 1024-bit modulus
	small[0] = 0x80
	small[127] = 1

	for _, c := range []struct {
		name    string
		doc     string
		keys    int
		skipped int
		err     string // a substring of the error; "" for none
	}{
		{"an RSA and an EC key", string(jwks(t, r1, e1)), 2, 0, ""},
		{"keys without kid, use or alg", string(jwks(t, with(r1, "kid", nil, "use", nil, "alg", nil), with(e1, "kid", nil))), 2, 0, ""},
		{"key_ops with verify", string(jwks(t, with(r1, "key_ops", []string{"verify"}))), 1, 0, ""},
		{"encryption keys are skipped", string(jwks(t, r1, with(e1, "kid", "enc", "use", "enc"))), 1, 1, ""},
		{"key_ops without verify is skipped", string(jwks(t, r1, with(e1, "key_ops", []string{"sign"}))), 1, 1, ""},
		{"other algs are skipped", string(jwks(t, r1, with(r1, "kid", "r512", "alg", "RS512"), with(e1, "alg", "ES384"))), 1, 2, ""},
		{"other key types are skipped", string(jwks(t, r1, map[string]any{"kty": "oct", "k": "c2VjcmV0"}, map[string]any{"kty": "OKP", "crv": "Ed25519", "x": "AA"})), 1, 2, ""},
		{"other curves are skipped", string(jwks(t, r1, with(e1, "crv", "P-384"))), 1, 1, ""},
		{"not JSON", "{", 0, 0, "not a JSON Web Key Set"},
		{"no keys member", `{"key":[]}`, 0, 0, `no "keys" member`},
		{"no usable key", string(jwks(t, with(e1, "use", "enc"))), 0, 0, "no RS256 or ES256 signature key"},
		{"an empty set", `{"keys":[]}`, 0, 0, "no RS256 or ES256 signature key"},
		{"no kty", string(jwks(t, with(r1, "kty", nil))), 0, 0, "no kty"},
		{"n missing", string(jwks(t, with(r1, "n", nil))), 0, 0, "no n"},
		{"n padded", string(jwks(t, with(r1, "n", r1["n"].(string)+"="))), 0, 0, "n is not base64url"},
		{"n in std base64", string(jwks(t, with(r1, "n", strings.NewReplacer("-", "+", "_", "/").Replace(r1["n"].(string))+"+/"))), 0, 0, "n is not base64url"},
		{"a small modulus", string(jwks(t, with(r1, "n", b64(small)))), 0, 0, "RSA modulus of 1024 bits"},
		{"an even exponent", string(jwks(t, with(r1, "e", b64([]byte{1, 0, 0})))), 0, 0, "RSA exponent"},
		{"exponent 1", string(jwks(t, with(r1, "e", b64([]byte{1})))), 0, 0, "RSA exponent"},
		{"a huge exponent", string(jwks(t, with(r1, "e", b64([]byte{1, 0, 0, 0, 0, 1})))), 0, 0, "RSA exponent"},
		{"a point off the curve", string(jwks(t, with(e1, "y", e1["x"]))), 0, 0, "EC key"},
		{"a short coordinate", string(jwks(t, with(e1, "x", b64([]byte{1, 2, 3})))), 0, 0, "32 bytes"},
		{"private key material", string(jwks(t, with(e1, "d", "AAAA"))), 0, 0, "private key material"},
		{"a kid twice", string(jwks(t, r1, with(e1, "kid", "r1"))), 0, 0, "kid used by another key"},
		{"a member of the wrong type", string(jwks(t, with(r1, "kid", 7))), 0, 0, "key 0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ks, err := ParseJWKS([]byte(c.doc))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ks.Len() != c.keys || len(ks.Skipped()) != c.skipped {
				t.Fatalf("%d keys, skipped %q; want %d and %d", ks.Len(), ks.Skipped(), c.keys, c.skipped)
			}
		})
	}
	t.Run("file", func(t *testing.T) {
		if _, err := ReadJWKSFile(t.TempDir() + "/none.json"); err == nil {
			t.Fatal("a missing file was read")
		}
	})
}

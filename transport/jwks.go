package transport

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"slices"
)

// The token algorithms the engine accepts: HS256 with Auth.JWTSecret,
// RS256 and ES256 (P-256) with the public keys of Auth.JWKS. No other,
// and never a key of one kind with an algorithm of another.
const (
	algHS256 = "HS256"
	algRS256 = "RS256"
	algES256 = "ES256"
)

// minRSABits is the smallest RSA modulus a JWKS may hold.
const minRSABits = 2048

// KeySet is the public keys of a JSON Web Key Set (RFC 7517) that can
// verify tokens: RSA keys for RS256 and EC P-256 keys for ES256. Build it
// with ParseJWKS or ReadJWKSFile; it is immutable.
type KeySet struct {
	keys    []verifyKey
	skipped []string
}

// verifyKey is one usable key of a set.
type verifyKey struct {
	kid string // "" when the JWK has none
	alg string // algRS256 or algES256
	key crypto.PublicKey
}

// jwk is the JSON of one key: the members the engine reads (RFC 7517
// section 4, RFC 7518 section 6). Others (x5c, …) are ignored.
type jwk struct {
	Kty    string   `json:"kty"`
	Kid    string   `json:"kid"`
	Use    string   `json:"use"`
	KeyOps []string `json:"key_ops"`
	Alg    string   `json:"alg"`
	N      string   `json:"n"`
	E      string   `json:"e"`
	Crv    string   `json:"crv"`
	X      string   `json:"x"`
	Y      string   `json:"y"`
	D      string   `json:"d"`
}

// ReadJWKSFile reads and parses a JWKS file (see ParseJWKS).
func ReadJWKSFile(path string) (*KeySet, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	ks, err := ParseJWKS(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ks, nil
}

// ParseJWKS parses a JSON Web Key Set: {"keys":[JWK…]}.
//
// Keys that are not for verifying RS256 or ES256 signatures are skipped
// (Skipped says which and why): "use" other than "sig", "key_ops" without
// "verify", an "alg" other than RS256 for an RSA key or ES256 for an EC
// key, another "kty" (oct, OKP, …) or an EC curve other than P-256. A key
// that claims to be usable but is broken is an error: bad base64url,
// missing members, an RSA modulus under 2048 bits or a bad exponent, an EC
// point not on the curve, private key material ("d"), or a "kid" used
// twice. A set with no usable key is an error too.
func ParseJWKS(data []byte) (*KeySet, error) {
	var doc struct {
		Keys *[]json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("jwks: not a JSON Web Key Set: %w", err)
	}
	if doc.Keys == nil {
		return nil, errors.New(`jwks: no "keys" member`)
	}
	ks := &KeySet{}
	kids := make(map[string]bool)
	for i, raw := range *doc.Keys {
		var k jwk
		if err := json.Unmarshal(raw, &k); err != nil {
			return nil, fmt.Errorf("jwks: key %d: %w", i, err)
		}
		name := fmt.Sprintf("key %d", i)
		if k.Kid != "" {
			name = fmt.Sprintf("key %d (kid %q)", i, k.Kid)
		}
		vk, skip, err := k.verifyKey()
		if err != nil {
			return nil, fmt.Errorf("jwks: %s: %w", name, err)
		}
		if skip != "" {
			ks.skipped = append(ks.skipped, name+": "+skip)
			continue
		}
		if k.Kid != "" {
			if kids[k.Kid] {
				return nil, fmt.Errorf("jwks: %s: kid used by another key", name)
			}
			kids[k.Kid] = true
		}
		ks.keys = append(ks.keys, vk)
	}
	if len(ks.keys) == 0 {
		return nil, errors.New("jwks: no RS256 or ES256 signature key")
	}
	return ks, nil
}

// verifyKey checks one JWK: the key, or why it is skipped, or what is
// wrong with it.
func (k *jwk) verifyKey() (_ verifyKey, skip string, _ error) {
	if k.Use != "" && k.Use != "sig" {
		return verifyKey{}, fmt.Sprintf("use %q is not sig", k.Use), nil
	}
	if k.KeyOps != nil && !slices.Contains(k.KeyOps, "verify") {
		return verifyKey{}, "key_ops does not include verify", nil
	}
	vk := verifyKey{kid: k.Kid}
	switch k.Kty {
	case "RSA":
		vk.alg = algRS256
	case "EC":
		if k.Crv != "P-256" {
			return verifyKey{}, fmt.Sprintf("curve %q is not P-256", k.Crv), nil
		}
		vk.alg = algES256
	case "":
		return verifyKey{}, "", errors.New("no kty")
	default:
		return verifyKey{}, fmt.Sprintf("kty %q is not RSA or EC", k.Kty), nil
	}
	if k.Alg != "" && k.Alg != vk.alg {
		return verifyKey{}, fmt.Sprintf("alg %q is not %s", k.Alg, vk.alg), nil
	}
	if k.D != "" {
		return verifyKey{}, "", errors.New(`holds private key material ("d"): give the public keys only`)
	}
	var err error
	switch vk.alg {
	case algRS256:
		vk.key, err = k.rsaKey()
	case algES256:
		vk.key, err = k.ecKey()
	}
	return vk, "", err
}

func (k *jwk) rsaKey() (*rsa.PublicKey, error) {
	n, err := b64Member("n", k.N)
	if err != nil {
		return nil, err
	}
	e, err := b64Member("e", k.E)
	if err != nil {
		return nil, err
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n)}
	if bits := pub.N.BitLen(); bits < minRSABits {
		return nil, fmt.Errorf("RSA modulus of %d bits, at least %d required", bits, minRSABits)
	}
	ev := new(big.Int).SetBytes(e)
	if !ev.IsInt64() || ev.Int64() < 3 || ev.Int64() > 1<<31-1 || ev.Bit(0) == 0 {
		return nil, errors.New("RSA exponent e must be an odd number from 3 to 2^31-1")
	}
	pub.E = int(ev.Int64())
	return pub, nil
}

func (k *jwk) ecKey() (*ecdsa.PublicKey, error) {
	x, err := b64Member("x", k.X)
	if err != nil {
		return nil, err
	}
	y, err := b64Member("y", k.Y)
	if err != nil {
		return nil, err
	}
	if len(x) != 32 || len(y) != 32 {
		return nil, errors.New("P-256 coordinates x and y must be 32 bytes each")
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
	if err != nil {
		return nil, fmt.Errorf("EC key: %w", err)
	}
	return pub, nil
}

// b64Member decodes a required base64url member (RFC 7515 section 2: no
// padding).
func b64Member(name, v string) ([]byte, error) {
	if v == "" {
		return nil, fmt.Errorf("no %s", name)
	}
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return nil, fmt.Errorf("%s is not base64url without padding: %w", name, err)
	}
	return b, nil
}

// Len is the number of usable keys.
func (ks *KeySet) Len() int {
	if ks == nil {
		return 0
	}
	return len(ks.keys)
}

// Skipped says which keys of the file were not taken, and why.
func (ks *KeySet) Skipped() []string {
	if ks == nil {
		return nil
	}
	return slices.Clone(ks.skipped)
}

// has reports whether the set has a key for alg.
func (ks *KeySet) has(alg string) bool {
	if ks == nil {
		return false
	}
	return slices.ContainsFunc(ks.keys, func(k verifyKey) bool { return k.alg == alg })
}

// byKid is the key with that kid, or nil.
func (ks *KeySet) byKid(kid string) *verifyKey {
	if ks == nil {
		return nil
	}
	for i := range ks.keys {
		if ks.keys[i].kid == kid {
			return &ks.keys[i]
		}
	}
	return nil
}

// forAlg is every key for alg, kid or not.
func (ks *KeySet) forAlg(alg string) []crypto.PublicKey {
	if ks == nil {
		return nil
	}
	var keys []crypto.PublicKey
	for _, k := range ks.keys {
		if k.alg == alg {
			keys = append(keys, k.key)
		}
	}
	return keys
}

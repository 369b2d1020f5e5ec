package actors

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestIDs(t *testing.T) {
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	a, b := derivedID("counter:a", "k", 0), derivedID("counter:a", "k", 0)
	if a != b || !uuid.MatchString(a) || a[14] != '8' {
		t.Fatalf("derivedID not a deterministic UUIDv8: %s %s", a, b)
	}
	distinct := map[string]bool{a: true}
	for _, id := range []string{derivedID("counter:a", "k", 1), derivedID("counter:b", "k", 0), derivedID("counter:a", "k2", 0), derivedID("counter:a", "k0", 0)} {
		if distinct[id] {
			t.Fatalf("derivedID collision on %s", id)
		}
		distinct[id] = true
	}
	// Stored ids: the derivation must never change (values from an
	// independent SHA-256 of "stream\x00id\x00i").
	if got := derivedID("room:lobby", "cmd-1", 0); got != "ea319a06-cb99-8105-b544-1880106c00ab" {
		t.Errorf("derivedID changed: %s", got)
	}
	if got := derivedID("room:"+strings.Repeat("x", 200), strings.Repeat("y", 100), 12); got != "43ac45b0-c4bf-8830-89dc-f95cd8982ab1" {
		t.Errorf("derivedID of a long stream and id changed: %s", got)
	}
	now := time.UnixMilli(1_800_000_000_123)
	x, y := newID(now), newID(now)
	if x == y || !uuid.MatchString(x) || x[14] != '7' || x[:13] != "01a3185c-507b" {
		t.Fatalf("newID = %s, %s: want distinct UUIDv7 with the time prefix", x, y)
	}
}

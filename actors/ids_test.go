package actors

import (
	"regexp"
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
	now := time.UnixMilli(1_800_000_000_123)
	x, y := newID(now), newID(now)
	if x == y || !uuid.MatchString(x) || x[14] != '7' || x[:13] != "01a3185c-507b" {
		t.Fatalf("newID = %s, %s: want distinct UUIDv7 with the time prefix", x, y)
	}
}

// Package pgtest gives tests a PostgreSQL database to run against: the
// server named by ENGINE_TEST_POSTGRES (tests skip without it) and a
// fresh schema per test, dropped when the test ends.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the variable with the URL of the PostgreSQL server to test
// against, e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable.
const EnvURL = "ENGINE_TEST_POSTGRES"

// URL returns the server's URL, or skips tb when EnvURL is unset.
func URL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv(EnvURL)
	if u == "" {
		tb.Skipf("%s is not set: skipping a test that needs PostgreSQL (set it to e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable)", EnvURL)
	}
	return u
}

// RandomSchema returns a new schema name.
func RandomSchema() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "engine_test_" + hex.EncodeToString(b[:])
}

// Schema returns a new schema name that is dropped, with everything in
// it, when tb ends (after the stores opened on it in tb were closed, if
// they were opened after this call: cleanups run last-registered first).
func Schema(tb testing.TB, url string) string {
	tb.Helper()
	s := RandomSchema()
	Drop(tb, url, s)
	return s
}

// Drop drops schema at the end of tb.
func Drop(tb testing.TB, url, schema string) {
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})
}

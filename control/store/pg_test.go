package store

import "testing"

// postgresURL is filled in by the PostgreSQL harness (pgtest).
func postgresURL(t *testing.T) string {
	t.Skip("postgres harness not wired yet")
	return ""
}

package store

import (
	"fmt"
	"os"
	"testing"

	"sbc/control/store/pgtest"
)

// One throw-away PostgreSQL server for the package's tests.
var pg pgtest.Shared

func postgresURL(t *testing.T) string { return pg.URL(t) }

func TestMain(m *testing.M) {
	code := m.Run()
	if err := pg.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

package store

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"sbc/control/store/pgtest"
)

// One throw-away PostgreSQL server for the package's tests, started at
// the first test that needs it; each test gets its own database.
var (
	pgOnce sync.Once
	pgSrv  *pgtest.Server
	pgErr  error
	pgSeq  atomic.Int64
)

func postgresURL(t *testing.T) string {
	t.Helper()
	pgOnce.Do(func() { pgSrv, pgErr = pgtest.StartServer(os.TempDir()) })
	if pgErr != nil {
		t.Fatalf("start PostgreSQL: %v", pgErr)
	}
	url, err := pgSrv.NewDatabase(fmt.Sprintf("store_test_%d", pgSeq.Add(1)))
	if err != nil {
		t.Fatal(err)
	}
	return url
}

func TestMain(m *testing.M) {
	code := m.Run()
	if pgSrv != nil {
		if err := pgSrv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

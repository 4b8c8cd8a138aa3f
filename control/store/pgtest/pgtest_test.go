package pgtest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestServer starts a cluster, uses two databases, and checks that a
// cluster whose test process died is swept by the next start.
func TestServer(t *testing.T) {
	// Under /tmp itself: t.TempDir's parent is closed to the cluster's user.
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	s, err := StartServer(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, name := range []string{"one", "two"} {
		url, err := s.NewDatabase(name)
		if err != nil {
			t.Fatal(err)
		}
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if err := c.QueryRow(ctx, "SELECT 40 + 2").Scan(&n); err != nil || n != 42 {
			t.Fatalf("%s: %d %v", name, n, err)
		}
		c.Close(ctx)
	}
	// Pretend its owner died: a finished process's PID.
	dead := exec.Command("true")
	dead.Run()
	os.WriteFile(filepath.Join(s.dir, "owner"), []byte(strconv.Itoa(dead.Process.Pid)), 0o644)
	s2, err := StartServer(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Stop()
	if _, err := os.Stat(s.dir); !os.IsNotExist(err) {
		t.Fatalf("the orphaned cluster %s is still there: %v", s.dir, err)
	}
	if _, err := pgx.Connect(ctx, s.URL("one")); err == nil {
		t.Fatal("the orphaned server still answers")
	}
}

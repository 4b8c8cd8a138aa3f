// Package pgtest runs a throw-away PostgreSQL server, from Debian's
// postgresql package, for tests: initdb into a fresh directory, a server
// on 127.0.0.1 at a free port, databases made on demand, everything
// removed at Stop. PostgreSQL refuses to run as root; as root the cluster
// runs as user postgres (or nobody).
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
)

// Server is a running throw-away PostgreSQL cluster.
type Server struct {
	bin  string // the PostgreSQL bin directory
	dir  string // holds the cluster, its socket and log
	port int
	cred *syscall.Credential // who runs the cluster; nil: this process
}

// BinDir is the bin directory of the newest PostgreSQL Debian installs.
func BinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("no PostgreSQL in /usr/lib/postgresql/*/bin: `make deps` installs Debian's postgresql package")
}

func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// StartServer makes a cluster under dir and starts it.
func StartServer(dir string) (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin}
	sweep(bin, dir)
	if s.dir, err = os.MkdirTemp(dir, "pg-"); err != nil {
		return nil, err
	}
	// Whose cluster it is: a test process that dies without Stop (a
	// panic) leaves its server to the next StartServer's sweep.
	if err := os.WriteFile(filepath.Join(s.dir, "owner"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		if s.cred, err = runAs(); err != nil {
			return nil, err
		}
		// The cluster's owner must reach its directory.
		if err := os.Chmod(s.dir, 0o755); err != nil {
			return nil, err
		}
	}
	data := filepath.Join(s.dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		return nil, err
	}
	if s.cred != nil {
		for _, d := range []string{s.dir, data} {
			if err := os.Chown(d, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
				return nil, err
			}
		}
	}
	if out, err := s.run("initdb", "-D", data, "-A", "trust", "-U", "sbc", "--no-sync", "-E", "UTF8", "--no-instructions"); err != nil {
		s.Stop()
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	for try := 0; ; try++ {
		if s.port, err = freePort(); err != nil {
			s.Stop()
			return nil, err
		}
		opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off -c full_page_writes=off -c synchronous_commit=off", s.port, s.dir)
		out, err := s.run("pg_ctl", "-w", "-t", "60", "-D", data, "-l", filepath.Join(s.dir, "server.log"), "-o", opts, "start")
		if err == nil {
			return s, nil
		}
		if try == 2 {
			log, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
			s.Stop()
			return nil, fmt.Errorf("pg_ctl start: %v: %s\nserver log:\n%s", err, out, tail(string(log), 2000))
		}
	}
}

// sweep stops and removes the clusters under dir whose owner process is
// gone.
func sweep(bin, dir string) {
	owners, _ := filepath.Glob(filepath.Join(dir, "pg-*", "owner"))
	for _, f := range owners {
		b, err := os.ReadFile(f)
		pid, err2 := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || err2 != nil || pid <= 0 || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		stale := &Server{bin: bin, dir: filepath.Dir(f), port: -1}
		if os.Geteuid() == 0 {
			stale.cred, _ = runAs()
		}
		stale.Stop()
	}
}

// runAs is the user a root process runs the cluster as.
func runAs() (*syscall.Credential, error) {
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("running as root and no user postgres or nobody to run PostgreSQL as")
}

func (s *Server) run(prog string, args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(s.bin, prog), args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	return cmd.CombinedOutput()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// URL is the postgres:// URL of database name.
func (s *Server) URL(name string) string {
	return fmt.Sprintf("postgres://sbc@127.0.0.1:%d/%s?sslmode=disable", s.port, name)
}

// NewDatabase creates a fresh database and returns its URL.
func (s *Server) NewDatabase(name string) (string, error) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", err
	}
	return s.URL(name), nil
}

// Stop stops the server at once and removes its directory.
func (s *Server) Stop() error {
	var err error
	if s.port != 0 { // started, or a stale cluster (port -1)
		if out, e := s.run("pg_ctl", "-D", filepath.Join(s.dir, "data"), "-m", "immediate", "-w", "stop"); e != nil {
			err = fmt.Errorf("pg_ctl stop: %v: %s", e, out)
		}
	}
	if e := os.RemoveAll(s.dir); e != nil && err == nil {
		err = e
	}
	return err
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return strings.TrimSpace(s)
}

// Shared is one server for a test binary, started by the first test that
// asks; each asks for a fresh database. Stop it from TestMain.
type Shared struct {
	once sync.Once
	srv  *Server
	err  error
	seq  atomic.Int64
}

// URL is a fresh database of the shared server (started now if needed).
func (s *Shared) URL(t testing.TB) string {
	t.Helper()
	s.once.Do(func() { s.srv, s.err = StartServer(os.TempDir()) })
	if s.err != nil {
		t.Fatalf("start PostgreSQL: %v", s.err)
	}
	url, err := s.srv.NewDatabase(fmt.Sprintf("test_%d", s.seq.Add(1)))
	if err != nil {
		t.Fatal(err)
	}
	return url
}

// Stop stops the server if it was started.
func (s *Shared) Stop() error {
	if s.srv == nil {
		return nil
	}
	return s.srv.Stop()
}

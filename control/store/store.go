// Package store keeps the control plane's data: accounts, SIP users,
// numbers, call and message logs, the audit log. One schema runs on two
// engines: SQLite (modernc.org/sqlite, pure Go, the default, one node) and
// PostgreSQL (pgx, several nodes sharing one control plane). The SQL is
// written once, in the subset both take ($N placeholders, ON CONFLICT
// upserts, BIGINT microsecond times).
//
// A Store is safe for concurrent use. Every write is one transaction; the
// ones made for an actor (API, CLI) carry their audit row in it.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Engine names the database behind a Store.
type Engine string

const (
	SQLite   Engine = "sqlite"
	Postgres Engine = "postgres"
)

// Store is the control plane's database.
type Store struct {
	db     *sql.DB
	engine Engine
	path   string // SQLite file
}

// IsPostgres reports whether dsn names a PostgreSQL server rather than a
// SQLite file.
func IsPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// Open opens (creating if needed) the store at dsn, a postgres:// URL or a
// SQLite file path, and brings its schema up to date.
func Open(ctx context.Context, dsn string) (*Store, error) {
	s, err := open(dsn)
	if err != nil {
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	return s, nil
}

func open(dsn string) (*Store, error) {
	if IsPostgres(dsn) {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			return nil, fmt.Errorf("open postgres store: %w", err)
		}
		db.SetMaxOpenConns(16)
		db.SetMaxIdleConns(16)
		return &Store{db: db, engine: Postgres}, nil
	}
	if err := os.MkdirAll(filepath.Dir(dsn), 0o700); err != nil {
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	// WAL: readers never wait for the writer. synchronous=FULL: a commit
	// is on disk when it returns (kill -9 loses nothing; power loss
	// neither). immediate transactions take the write lock at BEGIN, so
	// two writers queue on busy_timeout instead of failing at upgrade.
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(1)", "busy_timeout(10000)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+dsn+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	// One writer at a time is all SQLite does; more connections only
	// serve reads.
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	db.SetConnMaxIdleTime(0)
	return &Store{db: db, engine: SQLite, path: dsn}, nil
}

// ErrNodeInUse: another running SBC holds the node name.
var ErrNodeInUse = errors.New("in use by another running sbc sharing the store (control.node must be unique per node)")

// ClaimNode holds node's name for this process until release: on
// PostgreSQL, a session advisory lock on a connection of its own (the
// server drops it with the process). A second daemon with the same name
// would end the first one's live calls in the log as lost. It waits up to
// wait for a daemon handing over. On SQLite, a store of one host, it
// holds nothing: the daemon locks its data_dir.
func (s *Store) ClaimNode(ctx context.Context, node string, wait time.Duration) (release func(), err error) {
	if s.engine != Postgres {
		return func() {}, nil
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("claim node %q: %w", node, err)
	}
	deadline := time.Now().Add(wait)
	for {
		var ok bool
		if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock(7256002, hashtext($1))`, node).Scan(&ok); err != nil {
			conn.Close()
			return nil, fmt.Errorf("claim node %q: %w", node, err)
		}
		if ok {
			return func() {
				conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock(7256002, hashtext($1))`, node)
				conn.Close()
			}, nil
		}
		if time.Now().After(deadline) {
			conn.Close()
			return nil, fmt.Errorf("node %q: %w", node, ErrNodeInUse)
		}
		select {
		case <-ctx.Done():
			conn.Close()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Engine tells which database the store runs on.
func (s *Store) Engine() Engine { return s.engine }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// migrate applies the embedded migrations not applied yet, each in its own
// transaction, in order of their number.
func (s *Store) migrate(ctx context.Context) error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		base := filepath.Base(name)
		v, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("migration %s: name must start with its number", base)
		}
		body, _ := migrations.ReadFile(name)
		err = s.tx(ctx, func(tx *sql.Tx) error {
			if s.engine == Postgres {
				// Nodes starting together apply a migration once.
				if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7256001)`); err != nil {
					return err
				}
			}
			// Under the lock: PostgreSQL's IF NOT EXISTS is no guard
			// against a node creating the table at the same moment.
			if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied BIGINT NOT NULL)`); err != nil {
				return err
			}
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = $1`, v).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			for _, stmt := range splitSQL(string(body)) {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("%s: %w", firstLine(stmt), err)
				}
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied) VALUES ($1, $2)`, v, micros(time.Now()))
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate store: %s: %w", base, err)
		}
	}
	return nil
}

// SchemaVersion is the number of the last migration applied.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v)
	return int(v.Int64), err
}

// splitSQL cuts a migration into statements at semicolons ending a line;
// comment lines are dropped.
func splitSQL(body string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(body, "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(t, ";") {
			out = append(out, strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"))
			cur.Reset()
		}
	}
	if strings.TrimSpace(cur.String()) != "" {
		out = append(out, cur.String())
	}
	return out
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

// scanner is a row being read (sql.Row or sql.Rows).
type scanner interface{ Scan(...any) error }

// list runs a query and reads every row with scan.
func list[T any](ctx context.Context, db *sql.DB, scan func(scanner) (T, error), q string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// tx runs f in a transaction, committed when f returns nil.
func (s *Store) tx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// forUpdate locks the rows a transaction reads to change them. SQLite
// needs nothing: its write transactions are serial (BEGIN IMMEDIATE).
// PostgreSQL's read committed would let two of them read the same row and
// lose one's change.
func (s *Store) forUpdate() string {
	if s.engine == Postgres {
		return " FOR UPDATE"
	}
	return ""
}

// Generation is a number every change of accounts, users or numbers
// increases: a cache is current while it has not moved.
func (s *Store) Generation(ctx context.Context) (int64, error) {
	var g int64
	err := s.db.QueryRowContext(ctx, `SELECT value FROM generation WHERE id = 1`).Scan(&g)
	return g, err
}

type genKey struct{}

// WithGeneration returns a context whose write, once committed, leaves in
// *gen the generation it made: a cache that was at *gen-1 is current
// after applying that one change.
func WithGeneration(ctx context.Context) (context.Context, *int64) {
	gen := new(int64)
	return context.WithValue(ctx, genKey{}, gen), gen
}

// changed ends a transaction that changed accounts, users or numbers:
// it moves the generation caches watch and writes the audit row.
func changed(ctx context.Context, tx *sql.Tx, at time.Time, actor, account, action, resource string, before, after any) error {
	if err := bumpGeneration(ctx, tx); err != nil {
		return err
	}
	return audit(ctx, tx, at, actor, account, action, resource, before, after)
}

func bumpGeneration(ctx context.Context, tx *sql.Tx) error {
	var g int64
	if err := tx.QueryRowContext(ctx, `UPDATE generation SET value = value + 1 WHERE id = 1 RETURNING value`).Scan(&g); err != nil {
		return err
	}
	if p, ok := ctx.Value(genKey{}).(*int64); ok {
		*p = g
	}
	return nil
}

// Backup writes a consistent snapshot of a SQLite store to file while it
// is in use (VACUUM INTO: one read transaction, so the copy is one point in
// time). The file must not exist. PostgreSQL stores are backed up with
// pg_dump.
func (s *Store) Backup(ctx context.Context, file string) error {
	if s.engine != SQLite {
		return errors.New("backup: the store is PostgreSQL: use pg_dump")
	}
	// Made empty, new and readable by the owner alone before SQLite fills
	// it: it holds what the store holds (password and token hashes).
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("backup: %s exists; give a new file", file)
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	f.Close()
	if _, err := s.db.ExecContext(ctx, `VACUUM INTO $1`, file); err != nil {
		os.Remove(file)
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

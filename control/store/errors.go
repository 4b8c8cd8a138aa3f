package store

import (
	"errors"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

var (
	// ErrNotFound: no such resource (or not the asking account's).
	ErrNotFound = errors.New("not found")
	// ErrConflict: a unique value (a number, a username) is taken.
	ErrConflict = errors.New("already exists")
)

// uniqueViolation turns either engine's unique-constraint error into
// ErrConflict: the check before an insert can lose a race with another
// writer (PostgreSQL, read committed).
func uniqueViolation(err error) error {
	var pg *pgconn.PgError
	if errors.As(err, &pg) && pg.Code == "23505" || err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed") {
		return ErrConflict
	}
	return err
}

package store

import (
	"context"
	"database/sql"
	"time"
)

// Admin is an operator credential.
type Admin struct {
	SID       string
	TokenHash string
	Created   time.Time
}

// SetAdmin creates an operator credential, or rotates the token of the
// one named sid.
func (s *Store) SetAdmin(ctx context.Context, actor string, a Admin) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		now := time.Now()
		if _, err := tx.ExecContext(ctx, `INSERT INTO admins (sid, token_hash, date_created) VALUES ($1, $2, $3)
			ON CONFLICT (sid) DO UPDATE SET token_hash = excluded.token_hash`, a.SID, a.TokenHash, micros(now)); err != nil {
			return err
		}
		return audit(ctx, tx, now, actor, "", "admin.set_token", "/Admins/"+a.SID, nil, map[string]string{"sid": a.SID})
	})
}

// Admins returns the operator credentials.
func (s *Store) Admins(ctx context.Context) ([]Admin, error) {
	return list(ctx, s.db, func(r scanner) (Admin, error) {
		var a Admin
		var created int64
		err := r.Scan(&a.SID, &a.TokenHash, &created)
		a.Created = fromMicros(created)
		return a, err
	}, `SELECT sid, token_hash, date_created FROM admins ORDER BY sid`)
}

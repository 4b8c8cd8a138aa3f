package store

import (
	"context"
	"database/sql"
	"time"
)

// Cutoffs are the instants before which each kind of record goes; a
// zero time keeps them all.
type Cutoffs struct {
	Calls       time.Time
	Messages    time.Time
	MessageBody time.Time // the body is erased, the row stays
	Audit       time.Time
}

// Purged counts what one purge removed.
type Purged struct {
	Calls, Messages, Bodies, Audit int64
}

// Purge deletes the records older than their cutoffs, and erases the
// bodies of older messages (the row stays). batch bounds the rows one
// statement touches, so a first purge of a big store does not hold the
// write lock for long: Purge loops until nothing is left.
func (s *Store) Purge(ctx context.Context, r Cutoffs, batch int) (Purged, error) {
	var p Purged
	steps := []struct {
		n   *int64
		sql string
		cut time.Time
	}{
		{&p.Calls, `DELETE FROM calls WHERE sid IN (SELECT sid FROM calls WHERE date_created < $1 LIMIT $2)`, r.Calls},
		{&p.Messages, `DELETE FROM messages WHERE sid IN (SELECT sid FROM messages WHERE date_created < $1 LIMIT $2)`, r.Messages},
		{&p.Bodies, `UPDATE messages SET body = '' WHERE sid IN (SELECT sid FROM messages WHERE date_created < $1 AND body <> '' LIMIT $2)`, r.MessageBody},
		{&p.Audit, `DELETE FROM audit WHERE sid IN (SELECT sid FROM audit WHERE at < $1 LIMIT $2)`, r.Audit},
	}
	for _, st := range steps {
		if st.cut.IsZero() {
			continue
		}
		cut := micros(st.cut)
		for {
			var n int64
			err := s.tx(ctx, func(tx *sql.Tx) error {
				res, err := tx.ExecContext(ctx, st.sql, cut, batch)
				if err != nil {
					return err
				}
				n, err = res.RowsAffected()
				return err
			})
			if err != nil {
				return p, err
			}
			*st.n += n
			if n < int64(batch) {
				break
			}
		}
	}
	return p, nil
}

package store

import (
	"context"
	"database/sql"
	"time"
)

// Registration is a registered device's binding (the registrar's, kept
// across restarts of its node).
type Registration struct {
	Username   string    `json:"username"`
	Contact    string    `json:"contact"`
	AccountSID string    `json:"account_sid"`
	Node       string    `json:"node"`
	Transport  string    `json:"transport"`
	Source     string    `json:"source"`
	Expires    time.Time `json:"expires"`
	UserAgent  string    `json:"user_agent"`
	CallID     string    `json:"-"`
	CSeq       uint32    `json:"-"`
	Updated    time.Time `json:"date_updated"`
}

const registrationCols = `username, contact, account_sid, node, transport, source, expires, user_agent, call_id, cseq, date_updated`

func scanRegistration(r scanner) (Registration, error) {
	var g Registration
	var expires, updated, cseq int64
	err := r.Scan(&g.Username, &g.Contact, &g.AccountSID, &g.Node, &g.Transport, &g.Source, &expires, &g.UserAgent, &g.CallID, &cseq, &updated)
	g.Expires, g.Updated, g.CSeq = fromMicros(expires), fromMicros(updated), uint32(cseq)
	return g, err
}

// SaveRegistrations writes bindings added or refreshed and deletes those
// removed, in one transaction (a REGISTER's changes).
func (s *Store) SaveRegistrations(ctx context.Context, saved []Registration, removed []Registration) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, g := range removed {
			if _, err := tx.ExecContext(ctx, `DELETE FROM registrations WHERE username = $1 AND contact = $2`, g.Username, g.Contact); err != nil {
				return err
			}
		}
		for _, g := range saved {
			_, err := tx.ExecContext(ctx, `INSERT INTO registrations (`+registrationCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
				ON CONFLICT (username, contact) DO UPDATE SET account_sid = excluded.account_sid, node = excluded.node,
				transport = excluded.transport, source = excluded.source, expires = excluded.expires, user_agent = excluded.user_agent,
				call_id = excluded.call_id, cseq = excluded.cseq, date_updated = excluded.date_updated`,
				g.Username, g.Contact, g.AccountSID, g.Node, g.Transport, g.Source, micros(g.Expires), g.UserAgent, g.CallID, int64(g.CSeq), micros(g.Updated))
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// RegistrationFilter selects bindings; empty fields select all.
type RegistrationFilter struct {
	AccountSID string
	Node       string
	Username   string
}

// Registrations returns the bindings not expired at now.
func (s *Store) Registrations(ctx context.Context, f RegistrationFilter, now time.Time) ([]Registration, error) {
	w := where{}
	w.add("expires > ?", micros(now))
	if f.AccountSID != "" {
		w.add("account_sid = ?", f.AccountSID)
	}
	if f.Node != "" {
		w.add("node = ?", f.Node)
	}
	if f.Username != "" {
		w.add("username = ?", f.Username)
	}
	return list(ctx, s.db, scanRegistration, `SELECT `+registrationCols+` FROM registrations`+w.String()+` ORDER BY username, date_updated DESC`, w.args...)
}

// PurgeRegistrations deletes the bindings expired at now.
func (s *Store) PurgeRegistrations(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM registrations WHERE expires <= $1`, micros(now))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

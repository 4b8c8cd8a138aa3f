package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// Message is an SMS log row.
type Message struct {
	SID        string
	AccountSID string
	From, To   string
	Direction  string
	Status     string
	Body       string // "" once retention has erased it
	Created    time.Time
}

// WriteMessage inserts or replaces a message row.
func (s *Store) WriteMessage(ctx context.Context, m *Message) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO messages (sid, account_sid, from_number, to_number, direction, status, body, date_created, date_updated)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (sid) DO UPDATE SET status = excluded.status, body = excluded.body, date_updated = excluded.date_updated`,
		m.SID, m.AccountSID, m.From, m.To, m.Direction, m.Status, m.Body, micros(m.Created), micros(time.Now()))
	return err
}

// Message returns one message row.
func (s *Store) Message(ctx context.Context, sid string) (Message, error) {
	var m Message
	var created int64
	err := s.db.QueryRowContext(ctx, `SELECT sid, account_sid, from_number, to_number, direction, status, body, date_created FROM messages WHERE sid = $1`, sid).
		Scan(&m.SID, &m.AccountSID, &m.From, &m.To, &m.Direction, &m.Status, &m.Body, &created)
	m.Created = fromMicros(created)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	return m, err
}

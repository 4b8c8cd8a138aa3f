package store

import (
	"context"
	"database/sql"
	"time"
)

// Balance is an account's balance after a charge.
type Balance struct {
	AccountSID string
	Balance    Money
	// Low: this charge took the balance to the account's low-balance
	// threshold, and no notification has gone out since it was last
	// above: notify, once.
	Low bool
}

// charge debits account by amount for ref (a call's or a message's SID),
// in tx, unless ref was charged already: then nil. Callers charge in the
// transaction that writes ref's row, so the row and its charge are
// committed together or not at all.
func (s *Store) charge(ctx context.Context, tx *sql.Tx, ref, account string, amount Money, now time.Time) (*Balance, error) {
	if amount <= 0 || account == "" {
		return nil, nil
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO charges (ref, account_sid, amount, date_created) VALUES ($1, $2, $3, $4)
		ON CONFLICT (ref) DO NOTHING`, ref, account, amount, micros(now))
	if err != nil {
		return nil, err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return nil, err // charged before
	}
	b := &Balance{AccountSID: account}
	if err := tx.QueryRowContext(ctx, `UPDATE accounts SET balance = balance - $2 WHERE sid = $1 RETURNING balance`,
		account, amount).Scan(&b.Balance); err != nil {
		return nil, err
	}
	res, err = tx.ExecContext(ctx, `UPDATE accounts SET low_balance_notified = 1
		WHERE sid = $1 AND low_balance_notified = 0 AND balance <= low_balance`, account)
	if err != nil {
		return nil, err
	}
	n, err := res.RowsAffected()
	b.Low = n > 0
	return b, err
}

// Charged is what ref (a call's or message's SID) was charged: 0 if
// nothing.
func (s *Store) Charged(ctx context.Context, ref string) (Money, error) {
	var m Money
	err := s.db.QueryRowContext(ctx, `SELECT amount FROM charges WHERE ref = $1`, ref).Scan(&m)
	if err == sql.ErrNoRows {
		return 0, nil
	}
	return m, err
}

// Balances returns every account's balance (the plane's admission reads
// them from memory, refreshed from here).
func (s *Store) Balances(ctx context.Context) (map[string]Money, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT sid, balance FROM accounts`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]Money{}
	for rows.Next() {
		var sid string
		var m Money
		if err := rows.Scan(&sid, &m); err != nil {
			return nil, err
		}
		out[sid] = m
	}
	return out, rows.Err()
}

package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// Account statuses.
const (
	StatusActive    = "active"
	StatusSuspended = "suspended"
	StatusClosed    = "closed"
)

// Account is a customer: its limits, class of restriction and balance.
type Account struct {
	SID         string `json:"sid"`
	Name        string `json:"name"`
	Status      string `json:"status"`
	TokenHash   string `json:"-"`
	TokenSealed string `json:"-"` // the token itself, sealed with the node's token key
	// NotifyURL and Email are where the low-balance notification goes.
	NotifyURL     string    `json:"notify_url"`
	Email         string    `json:"email"`
	CPS           int       `json:"cps"`            // calls per second
	SMSPerSecond  int       `json:"sms_per_second"` // messages per second
	MaxConcurrent int       `json:"max_concurrent"` // calls at once
	Class         string    `json:"class"`          // class of restriction
	Balance       Money     `json:"balance"`
	LowBalance    Money     `json:"low_balance"` // notification threshold
	Created       time.Time `json:"date_created"`
	Updated       time.Time `json:"date_updated"`
}

const accountCols = `sid, name, status, token_hash, cps, sms_per_second, max_concurrent, class, balance, low_balance, date_created, date_updated, token_sealed, notify_url, email`

func scanAccount(r scanner) (Account, error) {
	var a Account
	var created, updated int64
	err := r.Scan(&a.SID, &a.Name, &a.Status, &a.TokenHash, &a.CPS, &a.SMSPerSecond, &a.MaxConcurrent,
		&a.Class, &a.Balance, &a.LowBalance, &created, &updated, &a.TokenSealed, &a.NotifyURL, &a.Email)
	a.Created, a.Updated = fromMicros(created), fromMicros(updated)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	return a, err
}

// CreateAccount stores a new account; the times, and a.SID unless set,
// are set here.
func (s *Store) CreateAccount(ctx context.Context, actor string, a *Account) error {
	now := time.Now().UTC().Truncate(time.Microsecond)
	if a.SID == "" {
		a.SID = NewSID(PrefixAccount)
	}
	a.Created, a.Updated = now, now
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO accounts (`+accountCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
			a.SID, a.Name, a.Status, a.TokenHash, a.CPS, a.SMSPerSecond, a.MaxConcurrent, a.Class, a.Balance, a.LowBalance, micros(now), micros(now), a.TokenSealed,
			a.NotifyURL, a.Email)
		if err != nil {
			return err
		}
		return changed(ctx, tx, now, actor, a.SID, "account.create", "/Accounts/"+a.SID, nil, a)
	})
}

// Account returns one account.
func (s *Store) Account(ctx context.Context, sid string) (Account, error) {
	return scanAccount(s.db.QueryRowContext(ctx, `SELECT `+accountCols+` FROM accounts WHERE sid = $1`, sid))
}

// Accounts returns every account (admission's cache loads them all).
func (s *Store) Accounts(ctx context.Context) ([]Account, error) {
	return list(ctx, s.db, scanAccount, `SELECT `+accountCols+` FROM accounts ORDER BY date_created, sid`)
}

// UpdateAccount changes an account: f edits a copy of the stored one,
// read in the same transaction; the result is written and audited.
func (s *Store) UpdateAccount(ctx context.Context, actor, sid string, f func(*Account) error) (Account, error) {
	var after Account
	err := s.tx(ctx, func(tx *sql.Tx) error {
		before, err := scanAccount(tx.QueryRowContext(ctx, `SELECT `+accountCols+` FROM accounts WHERE sid = $1`+s.forUpdate(), sid))
		if err != nil {
			return err
		}
		after = before
		if err := f(&after); err != nil {
			return err
		}
		now := time.Now().UTC().Truncate(time.Microsecond)
		after.SID, after.Created, after.Updated = before.SID, before.Created, now
		_, err = tx.ExecContext(ctx, `UPDATE accounts SET name = $2, status = $3, token_hash = $4, cps = $5, sms_per_second = $6,
			max_concurrent = $7, class = $8, balance = $9, low_balance = $10, date_updated = $11, token_sealed = $12, notify_url = $13, email = $14,
			low_balance_notified = CASE WHEN CAST($9 AS BIGINT) > CAST($10 AS BIGINT) THEN 0 ELSE low_balance_notified END WHERE sid = $1`,
			sid, after.Name, after.Status, after.TokenHash, after.CPS, after.SMSPerSecond, after.MaxConcurrent,
			after.Class, after.Balance, after.LowBalance, micros(now), after.TokenSealed, after.NotifyURL, after.Email)
		if err != nil {
			return err
		}
		action := "account.update"
		if after.TokenHash != before.TokenHash {
			action = "account.rotate_token"
		}
		return changed(ctx, tx, now, actor, sid, action, "/Accounts/"+sid, before, after)
	})
	return after, err
}

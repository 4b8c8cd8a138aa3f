package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// User is the SIP credential of a customer's device. The password is not
// kept: only the digest hashes (HA1) SIP authentication needs.
type User struct {
	SID        string    `json:"sid"`
	AccountSID string    `json:"account_sid"`
	Username   string    `json:"username"`
	Realm      string    `json:"realm"`
	HA1MD5     string    `json:"-"`
	HA1SHA256  string    `json:"-"`
	Class      string    `json:"class"` // "" = the account's
	Created    time.Time `json:"date_created"`
	Updated    time.Time `json:"date_updated"`
}

const userCols = `sid, account_sid, username, realm, ha1_md5, ha1_sha256, class, date_created, date_updated`

func scanUser(r scanner) (User, error) {
	var u User
	var created, updated int64
	err := r.Scan(&u.SID, &u.AccountSID, &u.Username, &u.Realm, &u.HA1MD5, &u.HA1SHA256, &u.Class, &created, &updated)
	u.Created, u.Updated = fromMicros(created), fromMicros(updated)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	return u, err
}

// CreateUser stores a new SIP user of an existing account.
func (s *Store) CreateUser(ctx context.Context, actor string, u *User) error {
	now := time.Now().UTC().Truncate(time.Microsecond)
	u.SID, u.Created, u.Updated = NewSID(PrefixUser), now, now
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := accountExists(ctx, tx, u.AccountSID); err != nil {
			return err
		}
		if err := taken(ctx, tx, `SELECT COUNT(*) FROM users WHERE username = $1`, u.Username); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO users (`+userCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			u.SID, u.AccountSID, u.Username, u.Realm, u.HA1MD5, u.HA1SHA256, u.Class, micros(now), micros(now))
		if err != nil {
			return uniqueViolation(err)
		}
		return changed(ctx, tx, now, actor, u.AccountSID, "user.create", userPath(u), nil, u)
	})
}

func userPath(u *User) string { return "/Accounts/" + u.AccountSID + "/SIP/Users/" + u.SID }

// Users returns the users of an account, or every user for "".
func (s *Store) Users(ctx context.Context, account string) ([]User, error) {
	q, args := `SELECT `+userCols+` FROM users ORDER BY date_created, sid`, []any{}
	if account != "" {
		q, args = `SELECT `+userCols+` FROM users WHERE account_sid = $1 ORDER BY date_created, sid`, []any{account}
	}
	return list(ctx, s.db, scanUser, q, args...)
}

// User returns one user of an account.
func (s *Store) User(ctx context.Context, account, sid string) (User, error) {
	return scanUser(s.db.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE sid = $1 AND account_sid = $2`, sid, account))
}

// UpdateUser changes a user of an account (password hashes, class).
func (s *Store) UpdateUser(ctx context.Context, actor, account, sid string, f func(*User) error) (User, error) {
	var after User
	err := s.tx(ctx, func(tx *sql.Tx) error {
		before, err := scanUser(tx.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE sid = $1 AND account_sid = $2`+s.forUpdate(), sid, account))
		if err != nil {
			return err
		}
		after = before
		if err := f(&after); err != nil {
			return err
		}
		now := time.Now().UTC().Truncate(time.Microsecond)
		after.SID, after.AccountSID, after.Username, after.Created, after.Updated = before.SID, before.AccountSID, before.Username, before.Created, now
		if _, err := tx.ExecContext(ctx, `UPDATE users SET realm = $2, ha1_md5 = $3, ha1_sha256 = $4, class = $5, date_updated = $6 WHERE sid = $1`,
			sid, after.Realm, after.HA1MD5, after.HA1SHA256, after.Class, micros(now)); err != nil {
			return err
		}
		return changed(ctx, tx, now, actor, account, "user.update", userPath(&after), before, after)
	})
	return after, err
}

// DeleteUser removes a user of an account.
func (s *Store) DeleteUser(ctx context.Context, actor, account, sid string) error {
	return deleteOwned(ctx, s, actor, account, sid, "users", userCols, scanUser, "user.delete", userPath)
}

// deleteOwned deletes row sid of account from table, audited with its
// last content.
func deleteOwned[T any](ctx context.Context, s *Store, actor, account, sid, table, cols string,
	scan func(scanner) (T, error), action string, path func(*T) string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		before, err := scan(tx.QueryRowContext(ctx, `SELECT `+cols+` FROM `+table+` WHERE sid = $1 AND account_sid = $2`+s.forUpdate(), sid, account))
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE sid = $1`, sid); err != nil {
			return err
		}
		return changed(ctx, tx, time.Now(), actor, account, action, path(&before), before, nil)
	})
}

func accountExists(ctx context.Context, tx *sql.Tx, sid string) error {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM accounts WHERE sid = $1`, sid).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// taken checks a unique value before an insert, so the conflict is ours to
// name rather than each engine's constraint error.
func taken(ctx context.Context, tx *sql.Tx, q string, args ...any) error {
	var n int
	if err := tx.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return ErrConflict
	}
	return nil
}

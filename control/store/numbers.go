package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// Number is an E.164 number an account owns, and where its calls go.
type Number struct {
	SID          string `json:"sid"`
	AccountSID   string `json:"account_sid"`
	PhoneNumber  string `json:"phone_number"` // +E.164
	FriendlyName string `json:"friendly_name"`
	Voice        bool   `json:"voice_enabled"`
	SMS          bool   `json:"sms_enabled"`
	// SMSStop: STOP and START written to the number opt the sender out
	// of (back into) the account's messages; off for customers who
	// handle opt-outs themselves.
	SMSStop bool `json:"sms_stop"`
	// VoiceTarget is where inbound calls go: "user:NAME", "trunk:NAME" or
	// a sip: URI.
	VoiceTarget string `json:"voice_target"`
	SMSURL      string `json:"sms_url"`
	// StatusCallback is where the end of each call to or from the number
	// is posted ("" none).
	StatusCallback string    `json:"status_callback"`
	Created        time.Time `json:"date_created"`
	Updated        time.Time `json:"date_updated"`
}

const numberCols = `sid, account_sid, phone_number, friendly_name, voice_enabled, sms_enabled, voice_target, sms_url, date_created, date_updated, sms_stop, status_callback`

func scanNumber(r scanner) (Number, error) {
	var n Number
	var voice, sms, stop int
	var created, updated int64
	err := r.Scan(&n.SID, &n.AccountSID, &n.PhoneNumber, &n.FriendlyName, &voice, &sms, &n.VoiceTarget, &n.SMSURL, &created, &updated, &stop, &n.StatusCallback)
	n.Voice, n.SMS, n.SMSStop = voice != 0, sms != 0, stop != 0
	n.Created, n.Updated = fromMicros(created), fromMicros(updated)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	return n, err
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func numberPath(n *Number) string {
	return "/Accounts/" + n.AccountSID + "/IncomingPhoneNumbers/" + n.SID
}

// CreateNumber stores a number for an existing account.
func (s *Store) CreateNumber(ctx context.Context, actor string, n *Number) error {
	now := time.Now().UTC().Truncate(time.Microsecond)
	n.SID, n.Created, n.Updated = NewSID(PrefixNumber), now, now
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := accountExists(ctx, tx, n.AccountSID); err != nil {
			return err
		}
		if err := taken(ctx, tx, `SELECT COUNT(*) FROM numbers WHERE phone_number = $1`, n.PhoneNumber); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO numbers (`+numberCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			n.SID, n.AccountSID, n.PhoneNumber, n.FriendlyName, b2i(n.Voice), b2i(n.SMS), n.VoiceTarget, n.SMSURL, micros(now), micros(now), b2i(n.SMSStop), n.StatusCallback)
		if err != nil {
			return uniqueViolation(err)
		}
		return changed(ctx, tx, now, actor, n.AccountSID, "number.create", numberPath(n), nil, n)
	})
}

// Number returns one number of an account.
func (s *Store) Number(ctx context.Context, account, sid string) (Number, error) {
	return scanNumber(s.db.QueryRowContext(ctx, `SELECT `+numberCols+` FROM numbers WHERE sid = $1 AND account_sid = $2`, sid, account))
}

// NumberFilter selects numbers; empty fields select all.
type NumberFilter struct {
	AccountSID  string
	PhoneNumber string
}

// ListNumbers returns numbers, newest first.
func (s *Store) ListNumbers(ctx context.Context, f NumberFilter, p Page) ([]Number, error) {
	w := where{}
	if f.AccountSID != "" {
		w.add("account_sid = ?", f.AccountSID)
	}
	if f.PhoneNumber != "" {
		w.add("phone_number = ?", f.PhoneNumber)
	}
	q, args := p.apply(w, "date_created", `SELECT `+numberCols+` FROM numbers`)
	return s.numbers(ctx, q, args...)
}

// Numbers returns every number (admission's cache loads them all).
func (s *Store) Numbers(ctx context.Context) ([]Number, error) {
	return s.numbers(ctx, `SELECT `+numberCols+` FROM numbers ORDER BY date_created, sid`)
}

func (s *Store) numbers(ctx context.Context, q string, args ...any) ([]Number, error) {
	return list(ctx, s.db, scanNumber, q, args...)
}

// UpdateNumber changes a number of an account (not its phone number or
// owner).
func (s *Store) UpdateNumber(ctx context.Context, actor, account, sid string, f func(*Number) error) (Number, error) {
	var after Number
	err := s.tx(ctx, func(tx *sql.Tx) error {
		before, err := scanNumber(tx.QueryRowContext(ctx, `SELECT `+numberCols+` FROM numbers WHERE sid = $1 AND account_sid = $2`+s.forUpdate(), sid, account))
		if err != nil {
			return err
		}
		after = before
		if err := f(&after); err != nil {
			return err
		}
		now := time.Now().UTC().Truncate(time.Microsecond)
		after.SID, after.AccountSID, after.PhoneNumber, after.Created, after.Updated = before.SID, before.AccountSID, before.PhoneNumber, before.Created, now
		if _, err := tx.ExecContext(ctx, `UPDATE numbers SET friendly_name = $2, voice_enabled = $3, sms_enabled = $4, voice_target = $5,
			sms_url = $6, date_updated = $7, sms_stop = $8, status_callback = $9 WHERE sid = $1`,
			sid, after.FriendlyName, b2i(after.Voice), b2i(after.SMS), after.VoiceTarget, after.SMSURL, micros(now), b2i(after.SMSStop), after.StatusCallback); err != nil {
			return err
		}
		return changed(ctx, tx, now, actor, account, "number.update", numberPath(&after), before, after)
	})
	return after, err
}

// DeleteNumber releases a number of an account.
func (s *Store) DeleteNumber(ctx context.Context, actor, account, sid string) error {
	return deleteOwned(ctx, s, actor, account, sid, "numbers", numberCols, scanNumber, "number.delete", numberPath)
}

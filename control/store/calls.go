package store

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"
	"time"
)

// Call statuses, as the CPaaS API names them.
const (
	CallQueued     = "queued"
	CallRinging    = "ringing"
	CallInProgress = "in-progress"
	CallCompleted  = "completed"
	CallFailed     = "failed"
	CallBusy       = "busy"
	CallNoAnswer   = "no-answer"
	CallCanceled   = "canceled"
)

// Call directions: from a carrier to a customer, from a customer out, and
// between trunks that belong to no account.
const (
	DirectionOriginating = "trunking-originating"
	DirectionTerminating = "trunking-terminating"
	DirectionTransit     = "transit"
)

// LegStats is what the media relay measured of the media one leg sent.
type LegStats struct {
	Packets  int64   `json:"packets"`
	Lost     int64   `json:"lost"`
	JitterMs float64 `json:"jitter_ms"`
	MOS      float64 `json:"mos"` // 0: not measured
}

// Call is one call's log row. It is written when the call starts and
// rewritten as its status moves.
type Call struct {
	SID        string
	AccountSID string // "" for transit
	From, To   string
	Direction  string
	Status     string
	SIPCode    int // final response; 0 while in progress
	FromTrunk  string
	ToTrunk    string
	EndedBy    string
	Node       string
	Created    time.Time
	Answered   time.Time // zero: never answered
	Ended      time.Time
	Duration   int   // seconds answered
	Price      Money // what the call cost its account, charged with its final row
	A, B       LegStats
}

// Final reports whether the call has ended.
func (c *Call) Final() bool {
	switch c.Status {
	case CallCompleted, CallFailed, CallBusy, CallNoAnswer, CallCanceled:
		return true
	}
	return false
}

const callCols = `sid, account_sid, from_number, to_number, direction, status, sip_code, from_trunk, to_trunk, ended_by, node,
	date_created, start_time, end_time, duration, a_packets, a_lost, a_jitter, a_mos, b_packets, b_lost, b_jitter, b_mos, date_updated, price`

func scanCall(r scanner) (Call, error) {
	var c Call
	var created, answered, ended, updated int64
	err := r.Scan(&c.SID, &c.AccountSID, &c.From, &c.To, &c.Direction, &c.Status, &c.SIPCode, &c.FromTrunk, &c.ToTrunk,
		&c.EndedBy, &c.Node, &created, &answered, &ended, &c.Duration,
		&c.A.Packets, &c.A.Lost, &c.A.JitterMs, &c.A.MOS, &c.B.Packets, &c.B.Lost, &c.B.JitterMs, &c.B.MOS, &updated, &c.Price)
	c.Created, c.Answered, c.Ended = fromMicros(created), fromMicros(answered), fromMicros(ended)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	return c, err
}

// upsertCall is one row of callCols; a row already there takes the new
// values, but a final status is never overwritten by a non-final one
// (snapshots of one call may meet in one batch out of order only if a
// caller misuses it; this keeps the log right anyway).
var upsertCall = `INSERT INTO calls (` + callCols + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25)
	ON CONFLICT (sid) DO UPDATE SET ` + setExcluded(callCols, "sid", "date_created") + `
	WHERE calls.status NOT IN ('completed', 'failed', 'busy', 'no-answer', 'canceled') OR excluded.status IN ('completed', 'failed', 'busy', 'no-answer', 'canceled')`

func setExcluded(cols string, skip ...string) string {
	var out []string
next:
	for _, c := range strings.Split(cols, ",") {
		c = strings.TrimSpace(c)
		for _, s := range skip {
			if c == s {
				continue next
			}
		}
		out = append(out, c+" = excluded."+c)
	}
	return strings.Join(out, ", ")
}

// WriteCalls writes call rows in one transaction: new ones inserted,
// known ones updated. A final row with a price charges its account in
// the same transaction, once (a row written again is not charged again);
// the balances those charges left are returned.
func (s *Store) WriteCalls(ctx context.Context, calls []Call) ([]Balance, error) {
	var out []Balance
	err := s.tx(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		stmt, err := tx.PrepareContext(ctx, upsertCall)
		if err != nil {
			return err
		}
		defer stmt.Close()
		now := time.Now()
		var priced []*Call
		for i := range calls {
			c := &calls[i]
			if _, err := stmt.ExecContext(ctx, c.SID, c.AccountSID, c.From, c.To, c.Direction, c.Status, c.SIPCode,
				c.FromTrunk, c.ToTrunk, c.EndedBy, c.Node, micros(c.Created), micros(c.Answered), micros(c.Ended), c.Duration,
				c.A.Packets, c.A.Lost, c.A.JitterMs, c.A.MOS, c.B.Packets, c.B.Lost, c.B.JitterMs, c.B.MOS, micros(now), c.Price); err != nil {
				return err
			}
			if c.Final() && c.Price > 0 && c.AccountSID != "" {
				priced = append(priced, c)
			}
		}
		// Accounts in one order: two nodes' batches lock them alike
		// (PostgreSQL), never each waiting for the other.
		slices.SortFunc(priced, func(a, b *Call) int { return strings.Compare(a.AccountSID, b.AccountSID) })
		for _, c := range priced {
			b, err := s.charge(ctx, tx, c.SID, c.AccountSID, c.Price, now)
			if err != nil {
				return err
			}
			if b != nil {
				out = append(out, *b)
			}
		}
		return nil
	})
	return out, err
}

// Call returns one call; account "" matches any (the operator's view).
func (s *Store) Call(ctx context.Context, account, sid string) (Call, error) {
	if account == "" {
		return scanCall(s.db.QueryRowContext(ctx, `SELECT `+callCols+` FROM calls WHERE sid = $1`, sid))
	}
	return scanCall(s.db.QueryRowContext(ctx, `SELECT `+callCols+` FROM calls WHERE sid = $1 AND account_sid = $2`, sid, account))
}

// CallFilter selects calls; zero fields select all.
type CallFilter struct {
	AccountSID  string
	Status      string
	From, To    string
	StartAfter  time.Time // answered at or after
	StartBefore time.Time // answered at or before
}

// ListCalls returns calls, newest first.
func (s *Store) ListCalls(ctx context.Context, f CallFilter, p Page) ([]Call, error) {
	w := where{}
	if f.AccountSID != "" {
		w.add("account_sid = ?", f.AccountSID)
	}
	if f.Status != "" {
		w.add("status = ?", f.Status)
	}
	if f.From != "" {
		w.add("from_number = ?", f.From)
	}
	if f.To != "" {
		w.add("to_number = ?", f.To)
	}
	if !f.StartAfter.IsZero() {
		w.add("start_time >= ?", micros(f.StartAfter))
	}
	if !f.StartBefore.IsZero() {
		w.add("start_time <= ? AND start_time > 0", micros(f.StartBefore))
	}
	q, args := p.apply(w, "date_created", `SELECT `+callCols+` FROM calls`)
	return list(ctx, s.db, scanCall, q, args...)
}

// CountCalls counts the calls of an account ("" = all).
func (s *Store) CountCalls(ctx context.Context, account string) (int, error) {
	var n int
	var err error
	if account == "" {
		err = s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM calls`).Scan(&n)
	} else {
		err = s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM calls WHERE account_sid = $1`, account).Scan(&n)
	}
	return n, err
}

// LiveCalls returns the calls of node not ended in the log: queued,
// ringing or in progress.
func (s *Store) LiveCalls(ctx context.Context, node string) ([]Call, error) {
	return list(ctx, s.db, scanCall, `SELECT `+callCols+` FROM calls WHERE node = $1 AND status IN ($2, $3, $4)`,
		node, CallQueued, CallRinging, CallInProgress)
}

// EndLive writes the given end (status, ended_by, end time) of calls
// whose row is still live; a row that has ended meanwhile (its real end
// written by the SBC) is left alone. It returns how many rows changed.
func (s *Store) EndLive(ctx context.Context, calls []Call) (int, error) {
	n := 0
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for _, c := range calls {
			res, err := tx.ExecContext(ctx, `UPDATE calls SET status = $2, ended_by = $3, end_time = $4, date_updated = $5
				WHERE sid = $1 AND status IN ($6, $7, $8)`,
				c.SID, c.Status, c.EndedBy, micros(c.Ended), micros(time.Now()), CallQueued, CallRinging, CallInProgress)
			if err != nil {
				return err
			}
			k, _ := res.RowsAffected()
			n += int(k)
		}
		return nil
	})
	return n, err
}

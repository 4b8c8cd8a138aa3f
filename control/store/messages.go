package store

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"
	"time"
)

// Message directions.
const (
	DirectionOutboundAPI = "outbound-api" // sent through the API
	DirectionInbound     = "inbound"      // received from a carrier
)

// Message is an SMS log row; its status row too, while it is queued.
type Message struct {
	SID        string
	AccountSID string
	From, To   string
	Direction  string // "outbound-api" or "inbound"
	Status     string // messaging.Status
	Body       string // "" once retention has erased it
	// Reason is the status's translated reason, RawStatus the carrier's
	// own report text as it came, ErrorCode the API's error code (0 none).
	Reason    string
	RawStatus string
	ErrorCode int
	Segments  int
	Price     Money
	// StatusCallback is the URL status changes are posted to ("" none).
	StatusCallback string
	// CarrierID is the Message-ID the SBC gave the message towards the
	// carrier: delivery reports name it.
	CarrierID string
	Created   time.Time
	Updated   time.Time
	Sent      time.Time // when the carrier took it (zero until then)
}

const messageCols = `sid, account_sid, from_number, to_number, direction, status, body, reason, raw_status, error_code, num_segments, price, status_callback, carrier_id, date_created, date_updated, date_sent`

func scanMessage(r scanner) (Message, error) {
	var m Message
	var created, updated, sent int64
	err := r.Scan(&m.SID, &m.AccountSID, &m.From, &m.To, &m.Direction, &m.Status, &m.Body, &m.Reason, &m.RawStatus, &m.ErrorCode,
		&m.Segments, &m.Price, &m.StatusCallback, &m.CarrierID, &created, &updated, &sent)
	m.Created, m.Updated, m.Sent = fromMicros(created), fromMicros(updated), fromMicros(sent)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	return m, err
}

// WriteMessage inserts a message row, or replaces what can change of a
// known one (status and what goes with it, body, sent time).
func (s *Store) WriteMessage(ctx context.Context, m *Message) error {
	return s.tx(ctx, func(tx *sql.Tx) error { return writeMessage(ctx, tx, m) })
}

func writeMessage(ctx context.Context, tx *sql.Tx, m *Message) error {
	if m.Created.IsZero() {
		m.Created = time.Now().UTC().Truncate(time.Microsecond)
	}
	m.Updated = time.Now().UTC().Truncate(time.Microsecond)
	if m.Segments == 0 {
		m.Segments = 1
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO messages (`+messageCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
		ON CONFLICT (sid) DO UPDATE SET status = excluded.status, body = excluded.body, reason = excluded.reason,
			raw_status = excluded.raw_status, error_code = excluded.error_code, price = excluded.price,
			carrier_id = excluded.carrier_id, date_updated = excluded.date_updated, date_sent = excluded.date_sent`,
		m.SID, m.AccountSID, m.From, m.To, m.Direction, m.Status, m.Body, m.Reason, m.RawStatus, m.ErrorCode,
		m.Segments, m.Price, m.StatusCallback, m.CarrierID, micros(m.Created), micros(m.Updated), micros(m.Sent))
	return err
}

// MessageWrite is one write of a batch: a new row (Insert) or a status.
type MessageWrite struct {
	Insert bool
	M      *Message
}

// MessageWritten is what became of one write of a batch.
type MessageWritten struct {
	Moved   bool     // the status moved (always, for an insert)
	Balance *Balance // the balance a charge left, if one was made
}

// WriteMessages makes a batch of writes in one transaction (one commit:
// a sync to disk for many messages), in order; each as WriteMessage or
// SetMessageStatusCharged would. An error fails them all.
func (s *Store) WriteMessages(ctx context.Context, ws []MessageWrite) ([]MessageWritten, error) {
	out := make([]MessageWritten, len(ws))
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var priced []int
		for i, w := range ws {
			var err error
			if w.Insert {
				out[i].Moved, err = true, writeMessage(ctx, tx, w.M)
			} else {
				out[i].Moved, err = s.setStatus(ctx, tx, w.M)
			}
			if err != nil {
				return err
			}
			if out[i].Moved && !w.Insert && w.M.Price > 0 {
				priced = append(priced, i)
			}
		}
		// Accounts in one order (as WriteCalls): two nodes' batches lock
		// them alike.
		slices.SortStableFunc(priced, func(a, b int) int { return strings.Compare(ws[a].M.AccountSID, ws[b].M.AccountSID) })
		for _, i := range priced {
			var err error
			if out[i].Balance, err = s.charge(ctx, tx, ws[i].M.SID, ws[i].M.AccountSID, ws[i].M.Price, ws[i].M.Updated); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// statusRank orders statuses: a row's status only ever moves up (a
// carrier's delivery report may come before the queue has recorded the
// carrier's 200; a late "sent" must not undo "delivered").
const statusRank = `CASE status WHEN 'queued' THEN 0 WHEN 'sending' THEN 1 WHEN 'sent' THEN 2 ELSE 3 END`

func rankOf(status string) int {
	switch status {
	case "queued":
		return 0
	case "sending":
		return 1
	case "sent":
		return 2
	}
	return 3
}

// SetMessageStatus records m's new status and what goes with it (reason,
// carrier's text, error code, carrier ID, sent time), unless the row's
// status is further along, or final already; false then. The body is not
// touched.
func (s *Store) SetMessageStatus(ctx context.Context, m *Message) (bool, error) {
	moved, _, err := s.SetMessageStatusCharged(ctx, m)
	return moved, err
}

// SetMessageStatusCharged is SetMessageStatus; when the status moved and
// m has a price, the account is charged it in the same transaction,
// once, and the balance that left is returned.
func (s *Store) SetMessageStatusCharged(ctx context.Context, m *Message) (bool, *Balance, error) {
	var moved bool
	var bal *Balance
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		if moved, err = s.setStatus(ctx, tx, m); err != nil || !moved {
			return err
		}
		bal, err = s.charge(ctx, tx, m.SID, m.AccountSID, m.Price, m.Updated)
		return err
	})
	return moved, bal, err
}

// setStatus moves m's row to m's status, unless it is further along.
func (s *Store) setStatus(ctx context.Context, tx *sql.Tx, m *Message) (bool, error) {
	m.Updated = time.Now().UTC().Truncate(time.Microsecond)
	res, err := tx.ExecContext(ctx, `UPDATE messages SET status = $2, reason = $3, raw_status = $4, error_code = $5, carrier_id = $6,
		date_sent = $7, price = $8, date_updated = $9 WHERE sid = $1 AND (`+statusRank+` < $10 OR `+statusRank+` = $10 AND $10 < 3)`,
		m.SID, m.Status, m.Reason, m.RawStatus, m.ErrorCode, m.CarrierID, micros(m.Sent), m.Price, micros(m.Updated), rankOf(m.Status))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// Message returns one message row; account "" matches any.
func (s *Store) Message(ctx context.Context, sid string, account ...string) (Message, error) {
	if len(account) > 0 && account[0] != "" {
		return scanMessage(s.db.QueryRowContext(ctx, `SELECT `+messageCols+` FROM messages WHERE sid = $1 AND account_sid = $2`, sid, account[0]))
	}
	return scanMessage(s.db.QueryRowContext(ctx, `SELECT `+messageCols+` FROM messages WHERE sid = $1`, sid))
}

// MessageByCarrierID is the message a carrier's delivery report names.
func (s *Store) MessageByCarrierID(ctx context.Context, id string) (Message, error) {
	return scanMessage(s.db.QueryRowContext(ctx, `SELECT `+messageCols+` FROM messages WHERE carrier_id = $1 AND carrier_id <> ''`, id))
}

// MessageFilter selects messages; zero fields select all.
type MessageFilter struct {
	AccountSID string
	From, To   string
	Status     string
}

// ListMessages returns messages, newest first.
func (s *Store) ListMessages(ctx context.Context, f MessageFilter, p Page) ([]Message, error) {
	w := where{}
	if f.AccountSID != "" {
		w.add("account_sid = ?", f.AccountSID)
	}
	if f.From != "" {
		w.add("from_number = ?", f.From)
	}
	if f.To != "" {
		w.add("to_number = ?", f.To)
	}
	if f.Status != "" {
		w.add("status = ?", f.Status)
	}
	q, args := p.apply(w, "date_created", `SELECT `+messageCols+` FROM messages`)
	return list(ctx, s.db, scanMessage, q, args...)
}

// PendingMessages is the outbound messages not yet taken by a carrier
// (queued, or sending when a daemon stopped), oldest first: the queue a
// starting daemon takes up.
func (s *Store) PendingMessages(ctx context.Context) ([]Message, error) {
	return list(ctx, s.db, scanMessage, `SELECT `+messageCols+` FROM messages WHERE status IN ('queued', 'sending') AND direction = '`+DirectionOutboundAPI+`' ORDER BY date_created, sid`)
}

// OptOut records that number wants no more messages from account; again
// is no error.
func (s *Store) OptOut(ctx context.Context, account, number string, at time.Time) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO opt_outs (account_sid, number, date_created) VALUES ($1, $2, $3) ON CONFLICT (account_sid, number) DO NOTHING`,
		account, number, micros(at))
	return err
}

// OptIn lifts number's opt-out from account, if any.
func (s *Store) OptIn(ctx context.Context, account, number string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM opt_outs WHERE account_sid = $1 AND number = $2`, account, number)
	return err
}

// OptedOut tells whether number wants no messages from account.
func (s *Store) OptedOut(ctx context.Context, account, number string) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM opt_outs WHERE account_sid = $1 AND number = $2`, account, number).Scan(&n)
	return n > 0, err
}

// OptOutEntry is one recipient that opted out of an account's messages.
type OptOutEntry struct {
	AccountSID string
	Number     string
	Created    time.Time
}

// OptOuts lists account's opted-out recipients, newest first.
func (s *Store) OptOuts(ctx context.Context, account string, p Page) ([]OptOutEntry, error) {
	w := where{}
	w.add("account_sid = ?", account)
	size := p.Size
	if size <= 0 {
		size = 50
	}
	args := append(w.args, size, p.Offset)
	return list(ctx, s.db, func(r scanner) (OptOutEntry, error) {
		var e OptOutEntry
		var at int64
		err := r.Scan(&e.AccountSID, &e.Number, &at)
		e.Created = fromMicros(at)
		return e, err
	}, `SELECT account_sid, number, date_created FROM opt_outs`+w.String()+` ORDER BY date_created DESC, number LIMIT $2 OFFSET $3`, args...)
}

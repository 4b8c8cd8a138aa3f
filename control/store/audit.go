package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"time"
)

// Audit is one change made through the API or the CLI.
type Audit struct {
	SID        string    `json:"sid"`
	At         time.Time `json:"at"`
	Actor      string    `json:"actor"` // "admin:AD…", "account:AC…", "cli"
	AccountSID string    `json:"account_sid"`
	Action     string    `json:"action"` // "account.create", "number.update" …
	Resource   string    `json:"resource"`
	Before     string    `json:"before"` // JSON, secrets left out
	After      string    `json:"after"`
}

// audit writes the audit row of a change in the change's transaction.
// before and after are the resource's public form (their types keep
// secrets out of JSON); nil is written as "".
func audit(ctx context.Context, tx *sql.Tx, at time.Time, actor, account, action, resource string, before, after any) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO audit (sid, at, actor, account_sid, action, resource, before_value, after_value)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		NewSID(PrefixAudit), micros(at), actor, account, action, resource, jsonOf(before), jsonOf(after))
	return err
}

func jsonOf(v any) string {
	if v == nil {
		return ""
	}
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}

// AuditFilter selects audit rows; empty fields select all.
type AuditFilter struct {
	AccountSID string
}

// ListAudit returns audit rows, newest first.
func (s *Store) ListAudit(ctx context.Context, f AuditFilter, p Page) ([]Audit, error) {
	w := where{}
	if f.AccountSID != "" {
		w.add("account_sid = ?", f.AccountSID)
	}
	q, args := p.apply(w, "at", `SELECT sid, at, actor, account_sid, action, resource, before_value, after_value FROM audit`)
	return list(ctx, s.db, func(r scanner) (Audit, error) {
		var a Audit
		var at int64
		err := r.Scan(&a.SID, &at, &a.Actor, &a.AccountSID, &a.Action, &a.Resource, &a.Before, &a.After)
		a.At = fromMicros(at)
		return a, err
	}, q, args...)
}

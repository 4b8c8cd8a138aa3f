package api

import (
	"strings"
	"time"

	"sbc/control/store"
)

// The audit log and the classes of restriction.

func (a *API) listAudit(q *request) (any, error) {
	p, err := q.page()
	if err != nil {
		return nil, err
	}
	rows, err := a.p.Store().ListAudit(q.ctx, store.AuditFilter{AccountSID: q.accountSID()}, p.store)
	if err != nil {
		return nil, err
	}
	out := make([]auditJSON, len(rows))
	var lastT time.Time
	var lastSID string
	for i := range rows {
		out[i] = auditOut(&rows[i])
		if !q.who.admin && strings.HasPrefix(out[i].Actor, "admin:") {
			// A customer sees that the operator acted, not which
			// operator credential did.
			out[i].Actor = "admin"
		}
		lastT, lastSID = rows[i].At, rows[i].SID
	}
	return q.keyset("audit_log", out, len(out), p, lastT, lastSID), nil
}

func (a *API) listClasses(q *request) (any, error) {
	cfg := a.p.Config()
	type classJSON struct {
		Name          string   `json:"name"`
		Allow         []string `json:"allow"`
		Deny          []string `json:"deny"`
		International bool     `json:"international"`
		Premium       bool     `json:"premium"`
	}
	out := []classJSON{}
	for _, c := range cfg.Classes {
		out = append(out, classJSON{c.Name, nonNil(c.Allow), nonNil(c.Deny), c.International, c.Premium})
	}
	return map[string]any{"classes_of_restriction": out, "home_country_code": cfg.HomeCountryCode, "premium": nonNil(cfg.Premium)}, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

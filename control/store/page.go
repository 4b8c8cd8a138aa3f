package store

import (
	"fmt"
	"strings"
	"time"
)

// Page selects one page of a list ordered newest first. After (a time and
// a SID, from the last row of the previous page) makes it a keyset page;
// otherwise Offset rows are skipped.
type Page struct {
	Size      int
	Offset    int
	AfterTime time.Time
	AfterSID  string
}

// where builds a WHERE clause with $N placeholders from "?" ones.
type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, args ...any) {
	for _, a := range args {
		w.args = append(w.args, a)
		cond = strings.Replace(cond, "?", fmt.Sprintf("$%d", len(w.args)), 1)
	}
	w.conds = append(w.conds, cond)
}

func (w *where) String() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// apply adds the page's keyset condition, order and limits to a query over
// a table whose time column is timeCol.
func (p Page) apply(w where, timeCol, sel string) (string, []any) {
	if p.AfterSID != "" {
		t := micros(p.AfterTime)
		w.add("("+timeCol+" < ? OR ("+timeCol+" = ? AND sid < ?))", t, t, p.AfterSID)
	}
	size := p.Size
	if size <= 0 {
		size = 50
	}
	q := sel + w.String() + " ORDER BY " + timeCol + " DESC, sid DESC"
	args := w.args
	args = append(args, size)
	q += fmt.Sprintf(" LIMIT $%d", len(args))
	if p.AfterSID == "" && p.Offset > 0 {
		args = append(args, p.Offset)
		q += fmt.Sprintf(" OFFSET $%d", len(args))
	}
	return q, args
}

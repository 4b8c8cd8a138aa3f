// Package dialplan picks the trunk a call goes to: longest prefix match of
// the dialled user part, per originating trunk.
package dialplan

import "strings"

// Route sends calls from trunk From (empty: any trunk) whose number starts
// with Prefix to trunk To.
type Route struct {
	From, Prefix, To string
}

// Table is an immutable dial plan; safe for concurrent use.
type Table struct {
	routes []Route
}

// New builds a table from routes in any order.
func New(routes []Route) *Table {
	return &Table{routes: append([]Route(nil), routes...)}
}

// Lookup returns the destination trunk for a call from trunk `from` to
// `number`. The longest matching prefix wins; at equal length a route naming
// `from` beats a wildcard one.
func (t *Table) Lookup(from, number string) (string, bool) {
	best, bestLen, bestSpecific := "", -1, false
	for _, r := range t.routes {
		if r.From != "" && r.From != from {
			continue
		}
		if !strings.HasPrefix(number, r.Prefix) {
			continue
		}
		specific := r.From != ""
		n := len(r.Prefix)
		if n > bestLen || (n == bestLen && specific && !bestSpecific) {
			best, bestLen, bestSpecific = r.To, n, specific
		}
	}
	return best, bestLen >= 0
}

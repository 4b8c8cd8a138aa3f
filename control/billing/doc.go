// Package billing rates calls and messages: it turns [control.billing]
// into a Table that prices a destination by its longest rated prefix.
// It holds no balances and opens nothing; the control plane charges.
package billing

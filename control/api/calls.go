package api

import (
	"context"
	"net/http"
	"strings"
	"time"

	"sbc/control"
	"sbc/control/store"
)

// Call logs: list with filters and pages, fetch, hang up a live call.

func (q *request) timeParam(k string) (time.Time, bool, error) {
	v, ok := q.get(k)
	if !ok {
		return time.Time{}, false, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, true, nil
		}
	}
	return time.Time{}, false, badParam(k, "%q is not a date (YYYY-MM-DD) or an RFC 3339 time", v)
}

func (a *API) listCalls(q *request) (any, error) {
	p, err := q.page()
	if err != nil {
		return nil, err
	}
	f := store.CallFilter{AccountSID: q.accountSID()}
	f.Status, _ = q.get("Status")
	if v, ok := q.get("From"); ok {
		f.From = normalise(v)
	}
	if v, ok := q.get("To"); ok {
		f.To = normalise(v)
	}
	for _, x := range []struct {
		k           string
		after, day  bool // lower bound; a day means its whole length
		strictAfter bool
	}{{"StartTime>=", true, true, false}, {"StartTime>", true, false, true}, {"StartTime<=", false, true, false}, {"StartTime<", false, false, false}, {"StartTime", true, true, false}} {
		t, ok, err := q.timeParam(x.k)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		isDay := len(q.form.Get(x.k)) == len("2006-01-02")
		switch {
		case x.k == "StartTime":
			f.StartAfter = t
			if isDay {
				f.StartBefore = t.Add(24*time.Hour - time.Microsecond)
			} else {
				f.StartBefore = t
			}
		case x.after:
			if x.strictAfter && isDay {
				t = t.Add(24 * time.Hour)
			} else if x.strictAfter {
				t = t.Add(time.Microsecond)
			}
			f.StartAfter = t
		default:
			if x.day && isDay {
				t = t.Add(24*time.Hour - time.Microsecond)
			} else if !x.day {
				t = t.Add(-time.Microsecond)
			}
			f.StartBefore = t
		}
	}
	calls, err := a.p.Store().ListCalls(q.ctx, f, p.store)
	if err != nil {
		return nil, err
	}
	out := make([]callJSON, len(calls))
	var lastT time.Time
	var lastSID string
	for i := range calls {
		out[i] = callOut(&calls[i])
		lastT, lastSID = calls[i].Created, calls[i].SID
	}
	return q.keyset("calls", out, len(out), p, lastT, lastSID), nil
}

// normalise gives a filter number the form the call log keeps: E.164
// where it is one, else as given.
func normalise(v string) string {
	if n, ok := control.E164(v); ok && strings.HasPrefix(v, "+") {
		return n
	}
	return v
}

func (a *API) fetchCall(q *request) (any, error) {
	sid, err := q.pathSID("call", store.PrefixCall)
	if err != nil {
		return nil, err
	}
	c, err := a.p.Store().Call(q.ctx, q.accountSID(), sid)
	if err != nil {
		return nil, err
	}
	return callOut(&c), nil
}

// updateCall hangs up a live call: Status=completed (or canceled, for a
// call not answered yet), as the CPaaS API does.
func (a *API) updateCall(q *request) (any, error) {
	sid, err := q.pathSID("call", store.PrefixCall)
	if err != nil {
		return nil, err
	}
	status, _ := q.get("Status")
	if status != store.CallCompleted && status != store.CallCanceled {
		return nil, badParam("Status", "%q: only completed or canceled end a call", status)
	}
	c, err := a.p.Store().Call(q.ctx, q.accountSID(), sid)
	if err != nil {
		return nil, err
	}
	if c.Final() {
		return callOut(&c), nil
	}
	if !a.p.Hangup(sid) {
		return nil, &apiError{http.StatusConflict, 21220, "the call is not live on this node (it ended, or another node carries it)"}
	}
	// The call's final row is written as it ends: wait a moment for it.
	ctx, cancel := context.WithTimeout(q.ctx, 3*time.Second)
	defer cancel()
	for {
		if err := a.p.FlushCall(ctx, sid); err == nil {
			if c, err = a.p.Store().Call(q.ctx, q.accountSID(), sid); err == nil && c.Final() {
				break
			}
		}
		select {
		case <-ctx.Done():
			return callOut(&c), nil
		case <-time.After(20 * time.Millisecond):
		}
	}
	return callOut(&c), nil
}

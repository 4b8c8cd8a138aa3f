package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"sbc/control"
	"sbc/control/store"
)

const acctPath = Version + "/Accounts/{acct}"

func (a *API) routes() []route {
	callFilters := []string{"Status", "From", "To", "StartTime", "StartTime>", "StartTime>=", "StartTime<", "StartTime<="}
	accountFields := []string{"FriendlyName", "Status", "CallsPerSecond", "SmsPerSecond", "MaxConcurrentCalls", "ClassOfRestriction", "Balance", "LowBalanceThreshold"}
	numberFields := []string{"FriendlyName", "VoiceUrl", "TrunkSid", "SmsUrl", "VoiceEnabled", "SmsEnabled"}
	return []route{
		{pattern: "GET " + Version + "/Accounts.json", params: append([]string{"FriendlyName", "Status"}, pageParams...), h: a.listAccounts},
		{pattern: "POST " + Version + "/Accounts.json", params: accountFields, admin: true, h: a.createAccount},
		{pattern: "GET " + acctPath, h: a.fetchAccount},
		{pattern: "POST " + acctPath, params: accountFields, h: a.updateAccount},
		{pattern: "POST " + acctPath + "/AuthToken.json", h: a.rotateToken},

		{pattern: "GET " + acctPath + "/Calls.json", params: append(callFilters, pageParams...), h: a.listCalls},
		{pattern: "GET " + acctPath + "/Calls/{call}", h: a.fetchCall},
		{pattern: "POST " + acctPath + "/Calls/{call}", params: []string{"Status"}, h: a.updateCall},

		{pattern: "GET " + acctPath + "/IncomingPhoneNumbers.json", params: append([]string{"PhoneNumber"}, pageParams...), h: a.listNumbers},
		{pattern: "POST " + acctPath + "/IncomingPhoneNumbers.json", params: append([]string{"PhoneNumber"}, numberFields...), admin: true, h: a.createNumber},
		{pattern: "GET " + acctPath + "/IncomingPhoneNumbers/{num}", h: a.fetchNumber},
		{pattern: "POST " + acctPath + "/IncomingPhoneNumbers/{num}", params: numberFields, h: a.updateNumber},
		{pattern: "DELETE " + acctPath + "/IncomingPhoneNumbers/{num}", admin: true, h: a.deleteNumber},

		{pattern: "GET " + acctPath + "/SIP/Users.json", params: pageParams, h: a.listUsers},
		{pattern: "POST " + acctPath + "/SIP/Users.json", params: []string{"Username", "Password", "ClassOfRestriction"}, h: a.createUser},
		{pattern: "GET " + acctPath + "/SIP/Users/{user}", h: a.fetchUser},
		{pattern: "POST " + acctPath + "/SIP/Users/{user}", params: []string{"Password", "ClassOfRestriction"}, h: a.updateUser},
		{pattern: "DELETE " + acctPath + "/SIP/Users/{user}", h: a.deleteUser},

		{pattern: "GET " + acctPath + "/AuditLog.json", params: pageParams, h: a.listAudit},
		{pattern: "GET " + Version + "/AuditLog.json", params: pageParams, admin: true, h: a.listAudit},
		{pattern: "GET " + Version + "/ClassesOfRestriction.json", h: a.listClasses},
	}
}

// Accounts.

func (a *API) listAccounts(q *request) (any, error) {
	p, err := q.page()
	if err != nil {
		return nil, err
	}
	var all []store.Account
	if q.who.admin {
		if all, err = a.p.Store().Accounts(q.ctx); err != nil {
			return nil, err
		}
	} else {
		all = []store.Account{*q.who.account}
	}
	name, _ := q.get("FriendlyName")
	status, _ := q.get("Status")
	var sel []accountJSON
	for i := range all {
		if (name == "" || all[i].Name == name) && (status == "" || all[i].Status == status) {
			sel = append(sel, accountOut(&all[i], ""))
		}
	}
	start := min(p.num*p.size, len(sel))
	page := sel[start:min(start+p.size, len(sel))]
	if page == nil {
		page = []accountJSON{}
	}
	return q.list("accounts", page, len(page), p, start+len(page) < len(sel), ""), nil
}

func (q *request) accountSpec() (control.AccountSpec, error) {
	var s control.AccountSpec
	str := func(k string, dst **string) {
		if v, ok := q.get(k); ok {
			*dst = &v
		}
	}
	str("FriendlyName", &s.Name)
	str("Status", &s.Status)
	str("ClassOfRestriction", &s.Class)
	for _, x := range []struct {
		k   string
		dst **int
	}{{"CallsPerSecond", &s.CPS}, {"SmsPerSecond", &s.SMSPerSecond}, {"MaxConcurrentCalls", &s.MaxConcurrent}} {
		if v, ok := q.get(x.k); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				return s, badParam(x.k, "%q is not a whole number", v)
			}
			*x.dst = &n
		}
	}
	for _, x := range []struct {
		k   string
		dst **store.Money
	}{{"Balance", &s.Balance}, {"LowBalanceThreshold", &s.LowBalance}} {
		if v, ok := q.get(x.k); ok {
			m, err := store.ParseMoney(v)
			if err != nil {
				return s, badParam(x.k, "%v", err)
			}
			*x.dst = &m
		}
	}
	return s, nil
}

func (a *API) createAccount(q *request) (any, error) {
	s, err := q.accountSpec()
	if err != nil {
		return nil, err
	}
	if s.Name == nil {
		return nil, badParam("FriendlyName", "required")
	}
	acct, token, err := a.p.CreateAccount(q.ctx, q.who.actor(), s)
	if err != nil {
		return nil, err
	}
	q.status = http.StatusCreated
	return accountOut(&acct, token), nil
}

func (a *API) fetchAccount(q *request) (any, error) {
	acct, err := a.p.Store().Account(q.ctx, q.accountSID())
	if err != nil {
		return nil, err
	}
	return accountOut(&acct, ""), nil
}

func (a *API) updateAccount(q *request) (any, error) {
	s, err := q.accountSpec()
	if err != nil {
		return nil, err
	}
	if !q.who.admin {
		// An account may rename itself; its status, limits, class and
		// money are the operator's.
		for _, k := range []string{"Status", "CallsPerSecond", "SmsPerSecond", "MaxConcurrentCalls", "ClassOfRestriction", "Balance", "LowBalanceThreshold"} {
			if _, ok := q.get(k); ok {
				return nil, &apiError{http.StatusForbidden, 20403, k + " is set by the operator"}
			}
		}
	}
	acct, err := a.p.UpdateAccount(q.ctx, q.who.actor(), q.accountSID(), s)
	if err != nil {
		return nil, err
	}
	return accountOut(&acct, ""), nil
}

func (a *API) rotateToken(q *request) (any, error) {
	token, err := a.p.RotateToken(q.ctx, q.who.actor(), q.accountSID())
	if err != nil {
		return nil, err
	}
	acct, err := a.p.Store().Account(q.ctx, q.accountSID())
	if err != nil {
		return nil, err
	}
	return accountOut(&acct, token), nil
}

// Calls.

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
		if err := a.p.FlushCalls(ctx); err == nil {
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

// Numbers.

func (q *request) numberSpec() (control.NumberSpec, error) {
	var s control.NumberSpec
	for _, x := range []struct {
		k   string
		dst **string
	}{{"PhoneNumber", &s.PhoneNumber}, {"FriendlyName", &s.FriendlyName}, {"VoiceUrl", &s.VoiceTarget}, {"SmsUrl", &s.SMSURL}} {
		if v, ok := q.get(x.k); ok {
			*x.dst = &v
		}
	}
	if v, ok := q.get("TrunkSid"); ok {
		if s.VoiceTarget != nil {
			return s, badParam("TrunkSid", "give VoiceUrl or TrunkSid, not both")
		}
		t := "trunk:" + v
		if v == "" {
			t = ""
		}
		s.VoiceTarget = &t
	}
	for _, x := range []struct {
		k   string
		dst **bool
	}{{"VoiceEnabled", &s.Voice}, {"SmsEnabled", &s.SMS}} {
		if v, ok := q.get(x.k); ok {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return s, badParam(x.k, "%q is not true or false", v)
			}
			*x.dst = &b
		}
	}
	return s, nil
}

func (a *API) listNumbers(q *request) (any, error) {
	p, err := q.page()
	if err != nil {
		return nil, err
	}
	f := store.NumberFilter{AccountSID: q.accountSID()}
	if v, ok := q.get("PhoneNumber"); ok {
		f.PhoneNumber = normalise(v)
	}
	nums, err := a.p.Store().ListNumbers(q.ctx, f, p.store)
	if err != nil {
		return nil, err
	}
	out := make([]numberJSON, len(nums))
	var lastT time.Time
	var lastSID string
	for i := range nums {
		out[i] = numberOut(&nums[i])
		lastT, lastSID = nums[i].Created, nums[i].SID
	}
	return q.keyset("incoming_phone_numbers", out, len(out), p, lastT, lastSID), nil
}

func (a *API) createNumber(q *request) (any, error) {
	s, err := q.numberSpec()
	if err != nil {
		return nil, err
	}
	n, err := a.p.CreateNumber(q.ctx, q.who.actor(), q.accountSID(), s)
	if err != nil {
		return nil, err
	}
	q.status = http.StatusCreated
	return numberOut(&n), nil
}

func (a *API) fetchNumber(q *request) (any, error) {
	sid, err := q.pathSID("num", store.PrefixNumber)
	if err != nil {
		return nil, err
	}
	n, err := a.p.Store().Number(q.ctx, q.accountSID(), sid)
	if err != nil {
		return nil, err
	}
	return numberOut(&n), nil
}

func (a *API) updateNumber(q *request) (any, error) {
	sid, err := q.pathSID("num", store.PrefixNumber)
	if err != nil {
		return nil, err
	}
	if err := q.operatorOnly("VoiceUrl", "TrunkSid"); err != nil {
		// Where a number's calls go skips the class of restriction: a
		// customer pointing its number at a carrier would re-originate
		// calls to any destination at the operator's cost.
		return nil, err
	}
	s, err := q.numberSpec()
	if err != nil {
		return nil, err
	}
	n, err := a.p.UpdateNumber(q.ctx, q.who.actor(), q.accountSID(), sid, s)
	if err != nil {
		return nil, err
	}
	return numberOut(&n), nil
}

func (a *API) deleteNumber(q *request) (any, error) {
	sid, err := q.pathSID("num", store.PrefixNumber)
	if err != nil {
		return nil, err
	}
	return nil, a.p.DeleteNumber(q.ctx, q.who.actor(), q.accountSID(), sid)
}

// SIP users.

func (a *API) listUsers(q *request) (any, error) {
	p, err := q.page()
	if err != nil {
		return nil, err
	}
	users, err := a.p.Store().Users(q.ctx, q.accountSID())
	if err != nil {
		return nil, err
	}
	start := min(p.num*p.size, len(users))
	page := users[start:min(start+p.size, len(users))]
	out := make([]userJSON, len(page))
	for i := range page {
		out[i] = userOut(&page[i])
	}
	return q.list("sip_users", out, len(out), p, start+len(page) < len(users), ""), nil
}

// operatorOnly refuses the given fields to an account.
func (q *request) operatorOnly(fields ...string) error {
	if q.who.admin {
		return nil
	}
	for _, k := range fields {
		if _, ok := q.get(k); ok {
			return &apiError{http.StatusForbidden, 20403, k + " is set by the operator"}
		}
	}
	return nil
}

func (a *API) createUser(q *request) (any, error) {
	if err := q.operatorOnly("ClassOfRestriction"); err != nil {
		return nil, err // a user's class overrides its account's
	}
	name, _ := q.get("Username")
	pw, _ := q.get("Password")
	class, _ := q.get("ClassOfRestriction")
	u, err := a.p.CreateUser(q.ctx, q.who.actor(), q.accountSID(), name, pw, class)
	if err != nil {
		return nil, err
	}
	q.status = http.StatusCreated
	return userOut(&u), nil
}

func (a *API) fetchUser(q *request) (any, error) {
	sid, err := q.pathSID("user", store.PrefixUser)
	if err != nil {
		return nil, err
	}
	u, err := a.p.Store().User(q.ctx, q.accountSID(), sid)
	if err != nil {
		return nil, err
	}
	return userOut(&u), nil
}

func (a *API) updateUser(q *request) (any, error) {
	sid, err := q.pathSID("user", store.PrefixUser)
	if err != nil {
		return nil, err
	}
	if err := q.operatorOnly("ClassOfRestriction"); err != nil {
		return nil, err
	}
	var pw, class *string
	if v, ok := q.get("Password"); ok {
		pw = &v
	}
	if v, ok := q.get("ClassOfRestriction"); ok {
		class = &v
	}
	u, err := a.p.UpdateUser(q.ctx, q.who.actor(), q.accountSID(), sid, pw, class)
	if err != nil {
		return nil, err
	}
	return userOut(&u), nil
}

func (a *API) deleteUser(q *request) (any, error) {
	sid, err := q.pathSID("user", store.PrefixUser)
	if err != nil {
		return nil, err
	}
	return nil, a.p.DeleteUser(q.ctx, q.who.actor(), q.accountSID(), sid)
}

// Audit log and classes.

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

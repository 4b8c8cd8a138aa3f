package api

import (
	"net/http"
	"strconv"

	"sbc/control"
	"sbc/control/store"
)

const acctPath = Version + "/Accounts/{acct}"

func (a *API) routes() []route {
	callFilters := []string{"Status", "From", "To", "StartTime", "StartTime>", "StartTime>=", "StartTime<", "StartTime<="}
	accountFields := []string{"FriendlyName", "Status", "CallsPerSecond", "SmsPerSecond", "MaxConcurrentCalls", "ClassOfRestriction", "Balance", "BalanceAdjustment", "LowBalanceThreshold", "NotificationUrl", "NotificationEmail"}
	numberFields := []string{"FriendlyName", "VoiceUrl", "TrunkSid", "SmsUrl", "VoiceEnabled", "SmsEnabled", "SmsStopHandling", "StatusCallback"}
	messageFields := []string{"From", "To", "Body", "StatusCallback"}
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

		{pattern: "GET " + acctPath + "/SIP/Registrations.json", params: append([]string{"Username"}, pageParams...), h: a.listRegistrations},

		{pattern: "POST " + acctPath + "/Messages.json", params: messageFields, h: a.sendMessage},
		{pattern: "GET " + acctPath + "/Messages.json", params: append([]string{"To", "From", "Status"}, pageParams...), h: a.listMessages},
		{pattern: "GET " + acctPath + "/Messages/{msg}", h: a.fetchMessage},
		// The Avaya CPaaS paths of the same resources.
		{pattern: "POST /v2/Accounts/{acct}/SMS/Messages.json", params: messageFields, h: a.sendMessage},
		{pattern: "GET /v2/Accounts/{acct}/SMS/Messages.json", params: append([]string{"To", "From", "Status"}, pageParams...), h: a.listMessages},
		{pattern: "GET /v2/Accounts/{acct}/SMS/Messages/{msg}", h: a.fetchMessage},
		{pattern: "GET " + acctPath + "/SMS/OptOuts.json", params: pageParams, h: a.listOptOuts},

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
	str("NotificationUrl", &s.NotifyURL)
	str("NotificationEmail", &s.Email)
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
	}{{"Balance", &s.Balance}, {"BalanceAdjustment", &s.Adjust}, {"LowBalanceThreshold", &s.LowBalance}} {
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
		for _, k := range []string{"Status", "CallsPerSecond", "SmsPerSecond", "MaxConcurrentCalls", "ClassOfRestriction", "Balance", "BalanceAdjustment", "LowBalanceThreshold"} {
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

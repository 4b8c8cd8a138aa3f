package api

import (
	"net/http"
	"time"

	"sbc/control/store"
)

// SIP users of an account: passwords checked and kept only as HA1s.

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

// listRegistrations lists the devices an account's users have registered,
// on every node: username, contact, the flow (transport, source) and
// when the binding expires.
func (a *API) listRegistrations(q *request) (any, error) {
	p, err := q.page()
	if err != nil {
		return nil, err
	}
	user, _ := q.get("Username")
	regs, err := a.p.Store().Registrations(q.ctx, store.RegistrationFilter{AccountSID: q.accountSID(), Username: user}, time.Now())
	if err != nil {
		return nil, err
	}
	start := min(p.num*p.size, len(regs))
	page := regs[start:min(start+p.size, len(regs))]
	out := make([]registrationJSON, len(page))
	for i, g := range page {
		out[i] = registrationJSON{AccountSID: g.AccountSID, Username: g.Username, Contact: g.Contact, Transport: g.Transport,
			Source: g.Source, Node: g.Node, UserAgent: g.UserAgent, Expires: rfc2822(g.Expires), DateUpdated: rfc2822(g.Updated)}
	}
	return q.list("registrations", out, len(out), p, start+len(page) < len(regs), ""), nil
}

type registrationJSON struct {
	AccountSID  string  `json:"account_sid"`
	Username    string  `json:"username"`
	Contact     string  `json:"contact"`
	Transport   string  `json:"transport"`
	Source      string  `json:"source"`
	Node        string  `json:"node"`
	UserAgent   string  `json:"user_agent"`
	Expires     *string `json:"expires"`
	DateUpdated *string `json:"date_updated"`
}

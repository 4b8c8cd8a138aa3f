package api

import (
	"net/http"

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

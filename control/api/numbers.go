package api

import (
	"net/http"
	"strconv"
	"time"

	"sbc/control"
	"sbc/control/store"
)

// Incoming phone numbers: list, add (operator), fetch, update, release.

func (q *request) numberSpec() (control.NumberSpec, error) {
	var s control.NumberSpec
	for _, x := range []struct {
		k   string
		dst **string
	}{{"PhoneNumber", &s.PhoneNumber}, {"FriendlyName", &s.FriendlyName}, {"VoiceUrl", &s.VoiceTarget}, {"SmsUrl", &s.SMSURL}, {"StatusCallback", &s.Callback}} {
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
	}{{"VoiceEnabled", &s.Voice}, {"SmsEnabled", &s.SMS}, {"SmsStopHandling", &s.SMSStop}} {
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

package api

import (
	"strconv"

	"sbc/control/store"
)

// The JSON forms of the resources, with the CPaaS API's field names.

type accountJSON struct {
	SID             string            `json:"sid"`
	FriendlyName    string            `json:"friendly_name"`
	Status          string            `json:"status"`
	Type            string            `json:"type"`
	OwnerAccountSID string            `json:"owner_account_sid"`
	AuthToken       *string           `json:"auth_token,omitempty"` // only when just made
	DateCreated     *string           `json:"date_created"`
	DateUpdated     *string           `json:"date_updated"`
	URI             string            `json:"uri"`
	SubresourceURIs map[string]string `json:"subresource_uris"`
	// Beyond the CPaaS account: the SBC's limits and money.
	CallsPerSecond     int    `json:"calls_per_second"`
	SMSPerSecond       int    `json:"sms_per_second"`
	MaxConcurrentCalls int    `json:"max_concurrent_calls"`
	ClassOfRestriction string `json:"class_of_restriction"`
	Balance            string `json:"balance"`
	LowBalance         string `json:"low_balance_threshold"`
	NotificationURL    string `json:"notification_url"`
	NotificationEmail  string `json:"notification_email"`
}

func accountOut(a *store.Account, token string) accountJSON {
	base := Version + "/Accounts/" + a.SID
	j := accountJSON{SID: a.SID, FriendlyName: a.Name, Status: a.Status, Type: "Full", OwnerAccountSID: a.SID,
		DateCreated: rfc2822(a.Created), DateUpdated: rfc2822(a.Updated), URI: base + ".json",
		SubresourceURIs: map[string]string{
			"calls":                  base + "/Calls.json",
			"incoming_phone_numbers": base + "/IncomingPhoneNumbers.json",
			"sip_users":              base + "/SIP/Users.json",
			"audit_log":              base + "/AuditLog.json",
		},
		CallsPerSecond: a.CPS, SMSPerSecond: a.SMSPerSecond, MaxConcurrentCalls: a.MaxConcurrent,
		ClassOfRestriction: a.Class, Balance: a.Balance.String(), LowBalance: a.LowBalance.String(),
		NotificationURL: a.NotifyURL, NotificationEmail: a.Email}
	if token != "" {
		j.AuthToken = &token
	}
	return j
}

type legJSON struct {
	Packets  int64   `json:"packets"`
	Lost     int64   `json:"packets_lost"`
	JitterMs float64 `json:"jitter_ms"`
	MOS      float64 `json:"mos,omitempty"`
}

type callJSON struct {
	SID             string            `json:"sid"`
	AccountSID      string            `json:"account_sid"`
	ParentCallSID   *string           `json:"parent_call_sid"`
	DateCreated     *string           `json:"date_created"`
	DateUpdated     *string           `json:"date_updated"`
	To              string            `json:"to"`
	ToFormatted     string            `json:"to_formatted"`
	From            string            `json:"from"`
	FromFormatted   string            `json:"from_formatted"`
	PhoneNumberSID  *string           `json:"phone_number_sid"`
	Status          string            `json:"status"`
	StartTime       *string           `json:"start_time"`
	EndTime         *string           `json:"end_time"`
	Duration        string            `json:"duration"`
	Price           *string           `json:"price"`
	PriceUnit       string            `json:"price_unit"`
	Direction       string            `json:"direction"`
	AnsweredBy      *string           `json:"answered_by"`
	APIVersion      string            `json:"api_version"`
	ForwardedFrom   *string           `json:"forwarded_from"`
	CallerName      *string           `json:"caller_name"`
	QueueTime       string            `json:"queue_time"`
	TrunkSID        *string           `json:"trunk_sid"`
	URI             string            `json:"uri"`
	SubresourceURIs map[string]string `json:"subresource_uris"`
	// Beyond the CPaaS call: the SIP outcome, trunks, node and media.
	SIPResponseCode int     `json:"sip_response_code,omitempty"`
	EndedBy         string  `json:"ended_by,omitempty"`
	FromTrunk       string  `json:"from_trunk"`
	ToTrunk         string  `json:"to_trunk"`
	Node            string  `json:"node"`
	MediaFromCaller legJSON `json:"media_from_caller"`
	MediaFromCallee legJSON `json:"media_from_callee"`
}

func callOut(c *store.Call) callJSON {
	uri := Version + "/Accounts/" + c.AccountSID + "/Calls/" + c.SID + ".json"
	leg := func(l store.LegStats) legJSON { return legJSON{l.Packets, l.Lost, l.JitterMs, l.MOS} }
	j := callJSON{SID: c.SID, AccountSID: c.AccountSID, DateCreated: rfc2822(c.Created), DateUpdated: rfc2822(c.Created),
		To: c.To, ToFormatted: c.To, From: c.From, FromFormatted: c.From, Status: c.Status,
		StartTime: rfc2822(c.Answered), EndTime: rfc2822(c.Ended), Duration: strconv.Itoa(c.Duration),
		PriceUnit: "USD", Direction: c.Direction, APIVersion: "2010-04-01", QueueTime: "0", URI: uri,
		SubresourceURIs: map[string]string{}, SIPResponseCode: c.SIPCode, EndedBy: c.EndedBy,
		FromTrunk: c.FromTrunk, ToTrunk: c.ToTrunk, Node: c.Node, MediaFromCaller: leg(c.A), MediaFromCallee: leg(c.B)}
	if !c.Ended.IsZero() {
		j.DateUpdated = rfc2822(c.Ended)
	} else if !c.Answered.IsZero() {
		j.DateUpdated = rfc2822(c.Answered)
	}
	return j
}

type capabilitiesJSON struct {
	Voice bool `json:"voice"`
	SMS   bool `json:"sms"`
	MMS   bool `json:"mms"`
	Fax   bool `json:"fax"`
}

type numberJSON struct {
	SID          string           `json:"sid"`
	AccountSID   string           `json:"account_sid"`
	FriendlyName string           `json:"friendly_name"`
	PhoneNumber  string           `json:"phone_number"`
	Capabilities capabilitiesJSON `json:"capabilities"`
	VoiceURL     string           `json:"voice_url"`
	TrunkSID     *string          `json:"trunk_sid"`
	SMSURL       string           `json:"sms_url"`
	SMSMethod    string           `json:"sms_method"`
	SMSStop      bool             `json:"sms_stop_handling"`
	Callback     string           `json:"status_callback"`
	CallbackVerb string           `json:"status_callback_method"`
	Status       string           `json:"status"`
	Origin       string           `json:"origin"`
	APIVersion   string           `json:"api_version"`
	DateCreated  *string          `json:"date_created"`
	DateUpdated  *string          `json:"date_updated"`
	URI          string           `json:"uri"`
}

func numberOut(n *store.Number) numberJSON {
	j := numberJSON{SID: n.SID, AccountSID: n.AccountSID, FriendlyName: n.FriendlyName, PhoneNumber: n.PhoneNumber,
		Capabilities: capabilitiesJSON{Voice: n.Voice, SMS: n.SMS}, VoiceURL: n.VoiceTarget, SMSURL: n.SMSURL,
		SMSMethod: "POST", SMSStop: n.SMSStop, Callback: n.StatusCallback, CallbackVerb: "POST", Status: "in-use", Origin: "sbc", APIVersion: "2010-04-01",
		DateCreated: rfc2822(n.Created), DateUpdated: rfc2822(n.Updated),
		URI: Version + "/Accounts/" + n.AccountSID + "/IncomingPhoneNumbers/" + n.SID + ".json"}
	if len(n.VoiceTarget) > 6 && n.VoiceTarget[:6] == "trunk:" {
		t := n.VoiceTarget[6:]
		j.TrunkSID = &t
	}
	return j
}

type userJSON struct {
	SID                string  `json:"sid"`
	AccountSID         string  `json:"account_sid"`
	Username           string  `json:"username"`
	Realm              string  `json:"realm"`
	ClassOfRestriction string  `json:"class_of_restriction"`
	DateCreated        *string `json:"date_created"`
	DateUpdated        *string `json:"date_updated"`
	URI                string  `json:"uri"`
}

func userOut(u *store.User) userJSON {
	return userJSON{SID: u.SID, AccountSID: u.AccountSID, Username: u.Username, Realm: u.Realm, ClassOfRestriction: u.Class,
		DateCreated: rfc2822(u.Created), DateUpdated: rfc2822(u.Updated),
		URI: Version + "/Accounts/" + u.AccountSID + "/SIP/Users/" + u.SID + ".json"}
}

type auditJSON struct {
	SID        string  `json:"sid"`
	AccountSID string  `json:"account_sid"`
	Date       *string `json:"date_created"`
	Actor      string  `json:"actor"`
	Action     string  `json:"action"`
	Resource   string  `json:"resource"`
	Before     string  `json:"before"`
	After      string  `json:"after"`
}

func auditOut(a *store.Audit) auditJSON {
	return auditJSON{SID: a.SID, AccountSID: a.AccountSID, Date: rfc2822(a.At), Actor: a.Actor, Action: a.Action,
		Resource: a.Resource, Before: a.Before, After: a.After}
}

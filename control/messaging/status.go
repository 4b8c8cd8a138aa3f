package messaging

import (
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
)

// Status is a message's status, as the API shows it (MessageStatus).
// Outbound: queued → sending → sent → delivered | undelivered | failed.
// Inbound: received.
type Status string

const (
	Queued      Status = "queued"
	Sending     Status = "sending"
	Sent        Status = "sent"
	Delivered   Status = "delivered"
	Undelivered Status = "undelivered"
	Failed      Status = "failed"
	Received    Status = "received"
)

// Final tells whether no report can change s any more.
func (s Status) Final() bool {
	return s == Delivered || s == Undelivered || s == Failed || s == Received
}

// StatusRule is one [[control.sms.status]]: a carrier's delivery report
// text (compared without case and surrounding spaces) and what it means.
type StatusRule struct {
	Carrier string `toml:"carrier"`
	Status  Status `toml:"status"`
	Reason  string `toml:"reason"`
}

// DefaultStatusRules are the carrier texts known out of the box.
var DefaultStatusRules = []StatusRule{
	{"Destination Address is not text enabled", Failed, "Failed - Destination Number not SMS enabled"},
	{"Spam Reject", Failed, "Failed - Content Flagged as SPAM"},
	{"Message accepted by Carrier", Delivered, "Delivered Successfully"},
	{"Delivered to handset", Delivered, "Delivered Successfully"},
	{"Route Denied", Failed, "Failed - Delivery Not Available to Destination Carrier"},
	{"Source Not Authorized", Failed, "Source Number Not SMS Enabled"},
	{"Temporary Resolution Failure", Undelivered, "Failed - Message was Dropped After Reattempts"},
	{"ESME Receiver reject message error", Failed, "Failed - Rejected by the Receiving Carrier"},
	{"Message rejected", Failed, "Failed - Message Rejected by the Carrier"},
	// The stat: words of SMPP delivery receipts, which SIP gateways pass on.
	{"DELIVRD", Delivered, "Delivered Successfully"},
	{"ACCEPTD", Sent, "Accepted by the Carrier"},
	{"ENROUTE", Sent, "On its Way"},
	{"UNDELIV", Undelivered, "Failed - Undeliverable"},
	{"EXPIRED", Undelivered, "Failed - Expired Before Delivery"},
	{"DELETED", Failed, "Failed - Deleted by the Carrier"},
	{"REJECTD", Failed, "Failed - Rejected by the Carrier"},
	{"UNKNOWN", Failed, "Failed - Unknown Carrier Status"},
	// RFC 5438 IMDN delivery notifications.
	{"imdn:delivered", Delivered, "Delivered Successfully"},
	{"imdn:failed", Failed, "Failed - Delivery Failed"},
	{"imdn:forbidden", Failed, "Failed - Delivery Forbidden by the Recipient"},
	{"imdn:error", Failed, "Failed - Delivery Error"},
}

// UnknownReport is what a report text no rule names means.
var UnknownReport = StatusRule{Status: Failed, Reason: "Failed - Unknown Carrier Status"}

// Config is [control.sms].
type Config struct {
	// Status translates carriers' delivery reports; replaces
	// DefaultStatusRules when set (list them too to keep them).
	Status []StatusRule `toml:"status"`
}

// SetDefaults fills in zero values.
func (c *Config) SetDefaults() {
	if c.Status == nil {
		c.Status = append([]StatusRule(nil), DefaultStatusRules...)
	}
}

// Validate names each bad key of [control.sms].
func (c *Config) Validate() []error {
	var errs []error
	seen := map[string]bool{}
	for i, r := range c.Status {
		key := fmt.Sprintf("control.sms.status[%d]", i)
		k := strings.ToLower(strings.TrimSpace(r.Carrier))
		switch {
		case k == "" || len(r.Carrier) > 256 || seen[k]:
			errs = append(errs, fmt.Errorf("%s.carrier: %q is invalid; want the carrier's report text, each once", key, r.Carrier))
		case r.Status != Delivered && r.Status != Undelivered && r.Status != Failed && r.Status != Sent:
			errs = append(errs, fmt.Errorf("%s.status: %q is invalid; want delivered, undelivered, failed or sent", key, r.Status))
		case r.Reason == "" || len(r.Reason) > 128 || strings.ContainsAny(r.Reason, "\r\n\x00"):
			errs = append(errs, fmt.Errorf("%s.reason: %q is invalid; want a line of at most 128 characters", key, r.Reason))
		}
		seen[k] = true
	}
	return errs
}

// Report is a delivery report, translated; Raw is the carrier's text.
type Report struct {
	Status Status
	Reason string
	Raw    string
}

// Translate is what the carrier's report text raw means.
func (c *Config) Translate(raw string) Report {
	k := strings.TrimSpace(raw)
	for _, r := range c.Status {
		if strings.EqualFold(strings.TrimSpace(r.Carrier), k) {
			return Report{Status: r.Status, Reason: r.Reason, Raw: raw}
		}
	}
	return Report{Status: UnknownReport.Status, Reason: UnknownReport.Reason, Raw: raw}
}

// IMDN is an RFC 5438 delivery notification (message/imdn+xml): the
// Message-ID of the message it reports on and its status, as a report
// text ("imdn:delivered") Translate knows.
type IMDN struct {
	MessageID string
	Status    string
}

// ParseIMDN reads a delivery notification. Display and processing
// notifications are not delivery reports: an error.
func ParseIMDN(body []byte) (IMDN, error) {
	var doc struct {
		XMLName   xml.Name `xml:"imdn"`
		MessageID string   `xml:"message-id"`
		Delivery  *struct {
			Status struct {
				Inner []struct{ XMLName xml.Name } `xml:",any"`
			} `xml:"status"`
		} `xml:"delivery-notification"`
	}
	if len(body) > 16<<10 {
		return IMDN{}, errors.New("imdn: body over 16 KB")
	}
	if err := xml.Unmarshal(body, &doc); err != nil {
		return IMDN{}, fmt.Errorf("imdn: %w", err)
	}
	if doc.Delivery == nil || len(doc.Delivery.Status.Inner) != 1 {
		return IMDN{}, errors.New("imdn: no delivery-notification with one status")
	}
	id := strings.TrimSpace(doc.MessageID)
	if id == "" {
		return IMDN{}, errors.New("imdn: no message-id")
	}
	return IMDN{MessageID: id, Status: "imdn:" + doc.Delivery.Status.Inner[0].XMLName.Local}, nil
}

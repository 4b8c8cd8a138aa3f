package messaging

import (
	"strings"
	"testing"
)

func TestTranslate(t *testing.T) {
	var c Config
	c.SetDefaults()
	if errs := c.Validate(); len(errs) > 0 {
		t.Fatalf("defaults invalid: %v", errs)
	}
	for raw, want := range map[string]Report{
		"Destination Address is not text enabled": {Failed, "Failed - Destination Number not SMS enabled", ""},
		"spam reject":                         {Failed, "Failed - Content Flagged as SPAM", ""},
		" Message accepted by Carrier ":       {Delivered, "Delivered Successfully", ""},
		"Delivered to handset":                {Delivered, "Delivered Successfully", ""},
		"Route Denied":                        {Failed, "Failed - Delivery Not Available to Destination Carrier", ""},
		"Source Not Authorized":               {Failed, "Source Number Not SMS Enabled", ""},
		"Temporary Resolution Failure":        {Undelivered, "Failed - Message was Dropped After Reattempts", ""},
		"ESME Receiver reject message error":  {Failed, "Failed - Rejected by the Receiving Carrier", ""},
		"Message rejected":                    {Failed, "Failed - Message Rejected by the Carrier", ""},
		"Something the carrier just invented": {Failed, "Failed - Unknown Carrier Status", ""},
	} {
		got := c.Translate(raw)
		if got.Status != want.Status || got.Reason != want.Reason || got.Raw != raw {
			t.Errorf("Translate(%q) = %+v; want %+v with the raw text kept", raw, got, want)
		}
	}
}

func TestStatusRulesValidate(t *testing.T) {
	for _, tt := range []struct {
		rules []StatusRule
		want  string
	}{
		{[]StatusRule{{"x", Delivered, "ok"}}, ""},
		{[]StatusRule{{"", Delivered, "ok"}}, "status[0].carrier"},
		{[]StatusRule{{"x", Delivered, "ok"}, {" X ", Failed, "no"}}, "status[1].carrier"},
		{[]StatusRule{{"x", "lost", "ok"}}, "status[0].status"},
		{[]StatusRule{{"x", Failed, ""}}, "status[0].reason"},
		{[]StatusRule{{"x", Failed, "a\nb"}}, "status[0].reason"},
	} {
		c := Config{Status: tt.rules}
		errs := c.Validate()
		if tt.want == "" && len(errs) > 0 || tt.want != "" && (len(errs) != 1 || !strings.Contains(errs[0].Error(), tt.want)) {
			t.Errorf("%v: %v; want %q", tt.rules, errs, tt.want)
		}
	}
}

func TestParseIMDN(t *testing.T) {
	// RFC 5438 §7.2.1.1's example, delivered; then failed.
	doc := `<?xml version="1.0" encoding="UTF-8"?>
<imdn xmlns="urn:ietf:params:xml:ns:imdn">
  <message-id>34jk324j</message-id>
  <datetime>2008-04-04T12:16:49-05:00</datetime>
  <recipient-uri>im:bob@example.com</recipient-uri>
  <original-recipient-uri>im:bob@example.com</original-recipient-uri>
  <delivery-notification>
    <status>
      <%s/>
    </status>
  </delivery-notification>
</imdn>`
	var c Config
	c.SetDefaults()
	for status, want := range map[string]Status{"delivered": Delivered, "failed": Failed, "forbidden": Failed, "error": Failed} {
		n, err := ParseIMDN([]byte(strings.Replace(doc, "%s", status, 1)))
		if err != nil || n.MessageID != "34jk324j" || c.Translate(n.Status).Status != want {
			t.Errorf("%s: %+v %v; want message 34jk324j %s", status, n, err, want)
		}
	}
	display := strings.Replace(strings.Replace(doc, "delivery-notification", "display-notification", 2), "%s", "displayed", 1)
	for _, bad := range []string{"", "<imdn>", display, strings.Replace(doc, "<message-id>34jk324j</message-id>", "", 1), "<imdn><message-id>x</message-id><delivery-notification><status/></delivery-notification></imdn>"} {
		if n, err := ParseIMDN([]byte(bad)); err == nil {
			t.Errorf("ParseIMDN(%.40q) = %+v; want an error", bad, n)
		}
	}
}

func FuzzParseIMDN(f *testing.F) {
	f.Add([]byte(`<imdn><message-id>a</message-id><delivery-notification><status><delivered/></status></delivery-notification></imdn>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if n, err := ParseIMDN(b); err == nil && (n.MessageID == "" || !strings.HasPrefix(n.Status, "imdn:")) {
			t.Fatalf("accepted %+v", n)
		}
	})
}

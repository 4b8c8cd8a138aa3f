package sbc

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"sbc/control/messaging"
)

// base is a minimal valid config; tests append or replace parts.
const base = `
[sip]
public_ip = "192.0.2.1"
[media]
public_ip = "192.0.2.1"
[[trunk]]
name = "a"
address = "192.0.2.10:5060"
sources = ["192.0.2.10"]
[[trunk]]
name = "b"
address = "192.0.2.20:5060"
sources = ["192.0.2.0/28"]
[[route]]
from = "a"
to = "b"
`

// tlsTrunkConf is a third trunk, over TLS, with extra lines.
func tlsTrunkConf(extra string) string {
	return "[[trunk]]\nname = \"c\"\naddress = \"192.0.2.30:5061\"\ntransport = \"tls\"\nsources = [\"192.0.2.30\"]\n" + extra + "\n"
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		wantErr string // substrings of the error, "" = valid
	}{
		{"minimal", base, ""},
		{"unknown top-level key", "foo = 1\n" + base, "unknown key(s) foo"},
		{"unknown nested key", strings.Replace(base, "[sip]", "[sip]\nlisten_port = 5", 1), "sip.listen_port"},
		{"bad toml", "[sip", "parse config"},
		{"bad log level", base + "[log]\nlevel = \"loud\"\n", `log.level: "loud" is invalid`},
		{"bad log format", base + "[log]\nformat = \"xml\"\n", `log.format: "xml"`},
		{"missing public ip", strings.Replace(base, `public_ip = "192.0.2.1"`+"\n[media]", "[media]", 1), `sip.public_ip: ""`},
		{"unspecified public ip", strings.Replace(base, `[sip]`+"\n"+`public_ip = "192.0.2.1"`, `[sip]`+"\n"+`public_ip = "0.0.0.0"`, 1), `sip.public_ip: "0.0.0.0"`},
		{"bad listener transport", strings.Replace(base, "[media]", "[[sip.listen]]\ntransport = \"sctp\"\naddress = \"0.0.0.0:5060\"\n[media]", 1), `sip.listen[0].transport: "sctp"`},
		{"udp listener in the media range", strings.Replace(base, "[media]", "[[sip.listen]]\ntransport = \"udp\"\naddress = \"0.0.0.0:20002\"\n[media]", 1),
			`sip.listen[0].address: "0.0.0.0:20002" is invalid; want a port outside the media port range 20000-29999`},
		{"tcp listener in the media range", strings.Replace(base, "[media]", "[[sip.listen]]\ntransport = \"udp\"\naddress = \"0.0.0.0:5060\"\n[[sip.listen]]\ntransport = \"tcp\"\naddress = \"0.0.0.0:20002\"\n[media]", 1), ""},
		{"bad listener address", strings.Replace(base, "[media]", "[[sip.listen]]\ntransport = \"udp\"\naddress = \"localhost\"\n[media]", 1), `sip.listen[0].address: "localhost"`},
		{"duplicate listener", strings.Replace(base, "[media]", "[[sip.listen]]\ntransport = \"udp\"\naddress = \"0.0.0.0:5060\"\n[[sip.listen]]\ntransport = \"udp\"\naddress = \"0.0.0.0:5070\"\n[media]", 1), `sip.listen[1].transport`},
		{"trunk transport without listener", strings.Replace(base, "[media]", "[[sip.listen]]\ntransport = \"udp\"\naddress = \"0.0.0.0:5060\"\n[media]", 1) + "[[trunk]]\nname=\"c\"\naddress=\"192.0.2.30:5060\"\ntransport=\"tcp\"\nsources=[\"192.0.2.30\"]\n", `trunk[2].transport: "tcp" is invalid; want a transport with a [[sip.listen]] entry`},
		{"bad media port", strings.Replace(base, "[media]", "[media]\nport_min = 20001", 1), "media.port_min"},
		{"bad duration type", base + "[calls]\nmax_duration = 5\n", ""}, // integers are nanoseconds in BurntSushi/toml
		{"bad duration text", base + "[calls]\nmax_duration = \"forever\"\n", "parse config"},
		{"short ring timeout", base + "[calls]\nring_timeout = \"10ms\"\n", `calls.ring_timeout: "10ms"`},
		{"relative state dir", base + "[calls]\nstate_dir = \"calls\"\n", `calls.state_dir: "calls" is invalid; want an absolute directory path`},
		{"duplicate trunk", base + "[[trunk]]\nname = \"a\"\naddress = \"192.0.2.30:5060\"\nsources = [\"192.0.2.30\"]\n", `trunk[2].name: "a" is invalid; want a name no other trunk uses`},
		{"trunk without port", base + "[[trunk]]\nname = \"c\"\naddress = \"192.0.2.30\"\nsources = [\"192.0.2.30\"]\n", `trunk[2].address: "192.0.2.30"`},
		{"trunk bad source", base + "[[trunk]]\nname = \"c\"\naddress = \"192.0.2.30:5060\"\nsources = [\"192.0.2.300\"]\n", `trunk[2].sources[0]: "192.0.2.300"`},
		{"trunk sms_long", base + "[[trunk]]\nname = \"c\"\naddress = \"192.0.2.30:5060\"\nsources = [\"192.0.2.30\"]\nsms_long = \"truncate\"\n", `trunk[2].sms_long: "truncate" is invalid`},
		{"trunk no sources", base + "[[trunk]]\nname = \"c\"\naddress = \"192.0.2.30:5060\"\n", `trunk[2].sources`},
		{"route to unknown trunk", base + "[[route]]\nfrom = \"a\"\nprefix = \"1\"\nto = \"nowhere\"\n", `route[1].to: "nowhere"`},
		{"route from unknown trunk", base + "[[route]]\nfrom = \"x\"\nto = \"a\"\n", `route[1].from: "x"`},
		{"trunk account", strings.Replace(base, `name = "a"`, `name = "a"`+"\naccount = \"AC0123456789abcdef0123456789abcdef\"", 1), ""},
		{"bad trunk account", strings.Replace(base, `name = "a"`, `name = "a"`+"\naccount = \"acme\"", 1), `trunk[0].account: "acme" is invalid; want an account SID`},
		{"control relative data dir", base + "[control]\ndata_dir = \"data\"\n", `control.data_dir: "data"`},
		{"control store not postgres", base + "[control]\nstore = \"mysql://u:secret@h/db\"\n", `control.store`},
		{"control store password not echoed", base + "[control]\nstore = \"mysql://u:secret@h/db\"\n", `(not shown`},
		{"control bad country code", base + "[control]\nhome_country_code = \"+1\"\n", `control.home_country_code: "+1"`},
		{"control bad premium", base + "[control]\npremium = [\"1900\"]\n", `control.premium[0]: "1900"`},
		{"control bad cross account", base + "[control]\ncross_account = \"bridge\"\n", `control.cross_account: "bridge"`},
		{"control class bad prefix", base + "[[control.class]]\nname = \"x\"\nallow = [\"44\"]\n", `control.class[0].allow[0]: "44"`},
		{"control class duplicate", base + "[[control.class]]\nname = \"x\"\n[[control.class]]\nname = \"x\"\n", `control.class[1].name: "x"`},
		{"control defaults unknown class", base + "[control.defaults]\nclass = \"gold\"\n", `control.defaults.class: "gold"`},
		{"control defaults cps", base + "[control.defaults]\ncps = -1\n", `control.defaults.cps: "-1"`},
		{"control retention age", base + "[control.retention]\ncalls = \"forever\"\n", `parse config`},
		{"control retention too short", base + "[control.retention]\naudit = \"1m\"\n", `control.retention.audit: "1m0s"`},
		{"control retention months", base + "[control.retention]\ncalls = \"24mo\"\nmessage_bodies = \"7d\"\n", ""},
		{"control api bad listen", base + "[control.api]\nlisten = \"8443\"\n", `control.api.listen: "8443"`},
		{"control api off", base + "[control.api]\nlisten = \"\"\n", ""},
		{"control plain http on the network", base + "[control.api]\nlisten = \"0.0.0.0:8080\"\nplain_http = true\n", `control.api.plain_http: "true" is invalid; want false unless control.api.listen is a loopback address`},
		{"control plain http on loopback", base + "[control.api]\nlisten = \"127.0.0.1:8080\"\nplain_http = true\n", ""},
		{"control cert without key", base + "[control.api]\ncert = \"/etc/sbc/api.pem\"\n", `control.api.cert`},
		{"billing increment", base + "[control.billing]\nincrement = \"hour\"\n", `control.billing.increment: "hour"`},
		{"billing price", base + "[control.billing]\n[[control.billing.rate]]\nprefix = \"+44\"\nper_minute = \"abc\"\n", `control.billing.rate[0].per_minute: "abc"`},
		{"billing prefix", base + "[control.billing]\n[[control.billing.rate]]\nprefix = \"44\"\nper_sms = \"0.01\"\n", `control.billing.rate[0].prefix: "44"`},
		{"billing on without rates", base + "[control.billing]\nenabled = true\n", `control.billing`},
		{"billing on, rated", base + "[control.billing]\nenabled = true\ngrace = \"0s\"\n[[control.billing.rate]]\nprefix = \"+\"\nper_minute = \"0.01\"\n", ""},
		{"smtp relay", base + "[control.smtp]\nrelay = \"smtp.example.net\"\nfrom = \"sbc@example.net\"\n", `control.smtp.relay: "smtp.example.net"`},
		{"smtp plain text on a network", base + "[control.smtp]\nrelay = \"192.0.2.25:25\"\nfrom = \"sbc@example.net\"\ntls = \"none\"\n", `control.smtp.tls: "none" is invalid; want "starttls" unless control.smtp.relay is on loopback`},
		{"smtp plain text on loopback", base + "[control.smtp]\nrelay = \"127.0.0.1:25\"\nfrom = \"sbc@example.net\"\ntls = \"none\"\n", ""},
		{"smtp from", base + "[control.smtp]\nrelay = \"smtp.example.net:587\"\nfrom = \"SBC <sbc@example.net>\"\n", `control.smtp.from`},
		{"smtp user without password", base + "[control.smtp]\nrelay = \"smtp.example.net:587\"\nfrom = \"sbc@example.net\"\nusername = \"sbc\"\n", `control.smtp.username: "sbc"`},
		{"webhook queue", base + "[control.webhooks]\nqueue_size = -1\n", `control.webhooks.queue_size: "-1"`},
		{"webhook attempts", base + "[control.webhooks]\nattempts = 50\n", `control.webhooks.attempts: "50"`},
		{"webhook backoff", base + "[control.webhooks]\nbackoff = \"1ms\"\n", `control.webhooks.backoff: "1ms"`},
		{"webhook workers", base + "[control.webhooks]\nworkers = 0\n", ""},
		{"webhook too many workers", base + "[control.webhooks]\nworkers = 5000\n", `control.webhooks.workers: "5000"`},
		{"webhook timeout", base + "[control.webhooks]\ntimeout = \"1h\"\n", `control.webhooks.timeout: "1h0m0s"`},
		{"duplicate route", base + "[[route]]\nfrom = \"a\"\nto = \"a\"\n", `route[1]: "a/"`},
		{"negative rate limit", strings.Replace(base, "[media]", "rate_limit = -1\n[media]", 1), `sip.rate_limit: "-1" is invalid`},
		{"rate limit off", strings.Replace(base, "[media]", "rate_limit = 0\n[media]", 1), ""},
		{"negative burst", strings.Replace(base, "[media]", "rate_burst = -5\n[media]", 1), `sip.rate_burst: "-5" is invalid`},
		{"bad route prefix", base + "[[route]]\nprefix = \"1 2\"\nto = \"a\"\n", `route[1].prefix: "1 2"`},
		{"media policy", base + "[[trunk]]\nname = \"c\"\naddress = \"192.0.2.30:5060\"\nsources = [\"192.0.2.30\"]\n" + "srtp = \"mandatory\"\ncodecs = [\"PCMA\", \"telephone-event\"]\nsrtp_suites = [\"AEAD_AES_128_GCM\"]\n", ""},
		{"bad srtp mode", base + "[[trunk]]\nname = \"c\"\naddress = \"192.0.2.30:5060\"\nsources = [\"192.0.2.30\"]\n" + "srtp = \"yes\"\n", `trunk[2].srtp: "yes" is invalid; want "off", "optional" or "mandatory"`},
		{"unknown codec", base + "[[trunk]]\nname = \"c\"\naddress = \"192.0.2.30:5060\"\nsources = [\"192.0.2.30\"]\n" + "codecs = [\"G729\"]\n", `trunk[2].codecs[0]: "G729" is invalid`},
		{"codec twice", base + "[[trunk]]\nname = \"c\"\naddress = \"192.0.2.30:5060\"\nsources = [\"192.0.2.30\"]\n" + "codecs = [\"PCMU\", \"pcmu/8000\"]\n", `trunk[2].codecs[1]: "pcmu/8000" is invalid; want each codec once`},
		{"events only", base + "[[trunk]]\nname = \"c\"\naddress = \"192.0.2.30:5060\"\nsources = [\"192.0.2.30\"]\n" + "codecs = [\"telephone-event\"]\n", `trunk[2].codecs: "telephone-event" is invalid; want at least one of "PCMU", "PCMA"`},
		{"unknown suite", base + "[[trunk]]\nname = \"c\"\naddress = \"192.0.2.30:5060\"\nsources = [\"192.0.2.30\"]\n" + "srtp = \"optional\"\nsrtp_suites = [\"F8_128_HMAC_SHA1_80\"]\n", `trunk[2].srtp_suites[0]: "F8_128_HMAC_SHA1_80" is invalid`},
		{"tls trunk", base + tlsTrunkConf("tls_ca = \"/etc/sbc/carrier-ca.pem\"\ntls_name = \"sip.carrier.example\"\ntls_client_ca = \"/etc/sbc/carrier-ca.pem\"\ntls_client_names = [\"sbc.carrier.example\"]\ntls_only = true"), ""},
		{"tls trunk by host name", base + strings.Replace(tlsTrunkConf(""), "192.0.2.30:5061", "sip.carrier.example:5061", 1), `trunk[2].address: "sip.carrier.example:5061" is invalid; want "ip:port" for a TLS trunk`},
		{"tls_ca on a udp trunk", base + strings.Replace(tlsTrunkConf("tls_ca = \"/ca.pem\""), `transport = "tls"`, `transport = "udp"`, 1), `trunk[2].transport: "udp" is invalid; want "tls" with tls_ca`},
		{"client ca without names", base + tlsTrunkConf("tls_client_ca = \"/ca.pem\""), `trunk[2].tls_client_names`},
		{"client names without ca", base + tlsTrunkConf("tls_client_names = [\"x\"]"), `trunk[2].tls_client_ca`},
		{"tls_only without a tls listener", strings.Replace(base, "[media]", "[[sip.listen]]\ntransport = \"udp\"\naddress = \"0.0.0.0:5060\"\n[media]", 1) +
			"[[trunk]]\nname = \"c\"\naddress = \"192.0.2.30:5060\"\nsources = [\"192.0.2.30\"]\ntls_only = true\n", `trunk[2].tls_only`},
		{"tls cert without key", strings.Replace(base, "[media]", "[sip.tls]\ncert = \"/etc/sbc/sip.pem\"\n[media]", 1), `sip.tls.key: "" is invalid`},
		{"tls handshake timeout", strings.Replace(base, "[media]", "[sip.tls]\nhandshake_timeout = \"1ms\"\n[media]", 1), `sip.tls.handshake_timeout: "1ms" is invalid`},
		{"tls keepalive", strings.Replace(base, "[media]", "[sip.tls]\nkeepalive = \"500ms\"\n[media]", 1), `sip.tls.keepalive: "500ms" is invalid`},
		{"max connections", strings.Replace(base, "[sip]", "[sip]\nmax_connections = -1", 1), `sip.max_connections: "-1" is invalid`},
		{"max connections per source", strings.Replace(base, "[sip]", "[sip]\nmax_connections = 10\nmax_connections_per_source = 11", 1), `sip.max_connections_per_source: "11" is invalid`},
		{"registrar keepalive", strings.Replace(base, "[media]", "[sip.registrar]\nkeepalive = \"2h\"\n[media]", 1), `sip.registrar.keepalive: "2h0m0s" is invalid`},
		{"registrar keepalive off", strings.Replace(base, "[media]", "[sip.registrar]\nkeepalive = \"0s\"\n[media]", 1), ""},
		{"tls keepalive off", strings.Replace(base, "[media]", "[sip.tls]\nkeepalive = \"0s\"\n[media]", 1), ""},
		{"srtp without suites", base + "[[trunk]]\nname = \"c\"\naddress = \"192.0.2.30:5060\"\nsources = [\"192.0.2.30\"]\n" + "srtp = \"optional\"\nsrtp_suites = []\n", `trunk[2].srtp_suites: "" is invalid; want at least one suite`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig(tt.doc)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v; want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c, err := ParseConfig(base)
	if err != nil {
		t.Fatal(err)
	}
	if c.Log.Level != "info" || c.Log.Format != "text" {
		t.Errorf("log defaults = %+v", c.Log)
	}
	if len(c.SIP.Listen) != 3 || c.SIP.Listen[0] != (Listener{"udp", "0.0.0.0:5060"}) || c.SIP.Listen[1] != (Listener{"tcp", "0.0.0.0:5060"}) ||
		c.SIP.Listen[2] != (Listener{"tls", "0.0.0.0:5061"}) {
		t.Errorf("listen defaults = %+v", c.SIP.Listen)
	}
	if c.Calls.RingTimeout != 180*time.Second || c.Calls.DrainTimeout != 30*time.Second || c.Calls.MaxDuration != 0 {
		t.Errorf("calls defaults = %+v", c.Calls)
	}
	if c.Trunks[0].Transport != "udp" {
		t.Errorf("trunk transport default = %q", c.Trunks[0].Transport)
	}
	if c.Media.Timeout != 60*time.Second {
		t.Errorf("media timeout default = %v", c.Media.Timeout)
	}
	if c.SIP.RateLimit == nil || *c.SIP.RateLimit != DefaultRateLimit || c.SIP.RateBurst != 2*DefaultRateLimit {
		t.Errorf("SIP rate limit defaults = %v, burst %d", c.SIP.RateLimit, c.SIP.RateBurst)
	}
	if c.Media.FastPath != "auto" {
		t.Errorf("media.fast_path default = %q", c.Media.FastPath)
	}
}

// The reference config in the repository root must always be valid.
func TestReferenceConfig(t *testing.T) {
	c, err := LoadConfig("../sbc.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Trunks) == 0 || len(c.Routes) == 0 {
		t.Fatal("reference config has no trunks or routes")
	}
	// It ships the delivery-report table's defaults, as they are.
	if !reflect.DeepEqual(c.Control.SMS.Status, messaging.DefaultStatusRules) {
		t.Errorf("[[control.sms.status]] in sbc.toml differ from messaging.DefaultStatusRules")
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	_, err := LoadConfig(t.TempDir() + "/nope.toml")
	if err == nil || !strings.Contains(err.Error(), "read config") {
		t.Fatalf("err = %v", err)
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add(base)
	if ref, err := os.ReadFile("../sbc.toml"); err == nil {
		f.Add(string(ref))
	}
	f.Add("[[trunk]]\nname=1")
	f.Fuzz(func(t *testing.T, doc string) {
		c, err := ParseConfig(doc)
		if err == nil && c == nil {
			t.Fatal("nil config without error")
		}
	})
}

package digest

import "testing"

// Known answers of RFC 2617 §3.5 and RFC 7616 §3.9.1.
func TestResponseRFC(t *testing.T) {
	tests := []struct {
		name, algorithm, realm, password, nonce, cnonce, want string
	}{
		{"RFC 2617 §3.5", "", "testrealm@host.com", "Circle Of Life",
			"dcd98b7102dd2f0e8b11d0f600bfb0c093", "0a4f113b",
			"6629fae49393a05397450978507c4ef1"},
		{"RFC 7616 §3.9.1 SHA-256", "SHA-256", "http-auth@example.org", "Circle of Life",
			"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
			"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"},
		{"RFC 7616 §3.9.1 MD5", "MD5", "http-auth@example.org", "Circle of Life",
			"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
			"8ca523f5e9506fed4657c9700eebdbec"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ha1, err := HA1(tt.algorithm, "Mufasa", tt.realm, tt.password)
			if err != nil {
				t.Fatal(err)
			}
			p := Params{"algorithm": tt.algorithm, "nonce": tt.nonce, "nc": "00000001",
				"cnonce": tt.cnonce, "qop": "auth", "uri": "/dir/index.html"}
			got, err := Response(ha1, "GET", p)
			if err != nil || got != tt.want {
				t.Errorf("Response = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// The Authorization header of RFC 7616 §3.9.1, folded as printed there,
// parses into what gives its response.
func TestParseRFC7616(t *testing.T) {
	const header = `Digest username="Mufasa",
       realm="http-auth@example.org",
       uri="/dir/index.html",
       algorithm=SHA-256,
       nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
       nc=00000001,
       cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
       qop=auth,
       response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
       opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"`
	p, err := Parse(header)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != 10 || p["username"] != "Mufasa" || p["opaque"] != "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS" {
		t.Errorf("Parse = %q", p)
	}
	ha1, _ := HA1("SHA-256", p["username"], p["realm"], "Circle of Life")
	if got, err := Response(ha1, "GET", p); err != nil || got != p["response"] {
		t.Errorf("Response = %q, %v; want %q", got, err, p["response"])
	}
}

package digest

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
)

// format writes p as a Digest header value, every value quoted.
func format(p Params) string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(p)) {
		parts = append(parts, name+"="+quote(p[name]))
	}
	return "Digest " + strings.Join(parts, ", ")
}

func TestParse(t *testing.T) {
	tests := []struct {
		header string
		want   Params // nil: an error is expected
	}{
		{`Digest username="bob", nc=00000001`, Params{"username": "bob", "nc": "00000001"}},
		{"digest\tUserName = \"a\\\"b\\\\c\" ,\tqop=auth", Params{"username": `a"b\c`, "qop": "auth"}},
		{" DIGEST opaque=\"\"\r\n ,realm=\"é x\" ", Params{"opaque": "", "realm": "é x"}},
		{`Digest a="x\yz"`, Params{"a": "xyz"}},
		{"", nil},
		{"Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", nil},
		{"Digest", nil},
		{"Digest ", nil},
		{`Digestusername="a"`, nil},
		{"Digest a", nil},
		{"Digest a=", nil},
		{`Digest ="x"`, nil},
		{`Digest a="x`, nil},
		{`Digest a="x\"`, nil},
		{`Digest a="x\`, nil},
		{"Digest a=1,", nil},
		{"Digest a=1,,b=2", nil},
		{"Digest a=1 b=2", nil},
		{`Digest a="x"y`, nil},
		{`Digest a=b"c"`, nil},
		{"Digest a=1, A=2", nil},
		{"Digest a=\"\x01\"", nil},
		{"Digest a=\"\\\x01\"", nil},
		{"Digest a=\"x\ny\"", nil},
		{"Digest a=sip:bob@example.com", nil},
	}
	for _, tt := range tests {
		p, err := Parse(tt.header)
		switch {
		case tt.want == nil && !errors.Is(err, ErrMalformed):
			t.Errorf("Parse(%q) = %q, %v; want ErrMalformed", tt.header, p, err)
		case tt.want != nil && (err != nil || !maps.Equal(p, tt.want)):
			t.Errorf("Parse(%q) = %q, %v; want %q", tt.header, p, err, tt.want)
		}
	}
}

func TestParseTooLong(t *testing.T) {
	ok := "Digest a=" + quote(strings.Repeat("x", MaxHeaderLen-len("Digest a=")-2))
	if _, err := Parse(ok); err != nil {
		t.Errorf("Parse of %d bytes: %v", len(ok), err)
	}
	if _, err := Parse(ok + " "); !errors.Is(err, ErrTooLong) {
		t.Errorf("Parse of %d bytes: %v; want ErrTooLong", len(ok)+1, err)
	}
}

// FuzzParse checks that Parse never panics, fails only with its errors,
// and reads back what format writes of what it parsed.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		`Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"`,
		`Digest realm="sbc", nonce="abc", algorithm=MD5, qop="auth", stale=true`,
		"digest\ta = \"x\\\"y\" ,b=c",
		`Digest a="x\`,
		"Digest a=1,,b=2",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		p, err := Parse(header)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLong) {
				t.Fatalf("Parse(%q): unexpected error %v", header, err)
			}
			return
		}
		for name, value := range p {
			if tok, rest := token(name); tok == "" || rest != "" || name != strings.ToLower(name) {
				t.Fatalf("Parse(%q): bad name %q", header, name)
			}
			if strings.ContainsFunc(value, func(r rune) bool { return r < 0x80 && isCtl(byte(r)) }) {
				t.Fatalf("Parse(%q): control character in %q", header, value)
			}
		}
		again := format(p)
		if len(again) > MaxHeaderLen {
			return // quoting made it longer than Parse reads
		}
		if p2, err := Parse(again); err != nil || !maps.Equal(p, p2) {
			t.Fatalf("Parse(%q) = %q; Parse(%q) = %q, %v", header, p, again, p2, err)
		}
	})
}

package tlsconf

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"testing"
)

func TestSelfSignedAndReload(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	c, made, err := SelfSigned(dir, "sip", "sbc SIP", []net.IP{net.ParseIP("192.0.2.10")})
	if err != nil || !made {
		t.Fatalf("SelfSigned: made %v, %v", made, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "sip-key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v; want mode 0600", err, fi.Mode())
	}
	if err := c.Leaf().VerifyHostname("192.0.2.10"); err != nil {
		t.Errorf("the public address is not among its names: %v", err)
	}
	again, made, err := SelfSigned(dir, "sip", "sbc SIP", nil)
	if err != nil || made || again.Fingerprint() != c.Fingerprint() {
		t.Fatalf("second start: made %v, %v; want the same certificate", made, err)
	}
	// The policy: TLS 1.2 at least, AEAD suites only, the certificate
	// served as it is now.
	cfg := Config(c)
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion %x", cfg.MinVersion)
	}
	for _, id := range cfg.CipherSuites {
		for _, in := range tls.InsecureCipherSuites() {
			if in.ID == id {
				t.Errorf("insecure suite %s allowed", in.Name)
			}
		}
	}
	got, _ := cfg.GetCertificate(nil)
	if Fingerprint(got.Certificate[0]) != c.Fingerprint() {
		t.Error("GetCertificate serves another certificate")
	}
	// A broken file on reload: the certificate in use stays.
	os.WriteFile(filepath.Join(dir, "sip-cert.pem"), []byte("garbage"), 0o644)
	if err := c.Reload(); err == nil {
		t.Fatal("garbage reloaded")
	}
	if got, _ := cfg.GetCertificate(nil); Fingerprint(got.Certificate[0]) != again.Fingerprint() {
		t.Error("a failed reload replaced the certificate")
	}
	if _, err := Load(filepath.Join(dir, "missing.pem"), filepath.Join(dir, "sip-key.pem")); err == nil {
		t.Error("Load of a missing file")
	}
}

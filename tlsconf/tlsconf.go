// Package tlsconf is the daemon's TLS: one policy (TLS 1.2 and 1.3 only;
// for 1.2 only ECDHE key exchange with AEAD ciphers) and certificates read
// from files, replaced without a restart (Reload, on SIGHUP) or made
// self-signed at first start. The SIP listener and the REST API use it.
package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// Suites are the TLS 1.2 cipher suites allowed (TLS 1.3's are all AEAD).
var Suites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// Config is the policy with cert as the certificate, server or client.
func Config(cert *Cert) *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: Suites}
	if cert != nil {
		c.GetCertificate = cert.get
		c.GetClientCertificate = cert.getClient
	}
	return c
}

// Cert is a certificate and key read from files, replaced by Reload while
// connections use it: handshakes after a Reload present the new one,
// established connections keep theirs.
type Cert struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
}

// Load reads a PEM certificate chain and its key.
func Load(certFile, keyFile string) (*Cert, error) {
	c := &Cert{certFile: certFile, keyFile: keyFile}
	return c, c.Reload()
}

// Reload reads the files again; on error the certificate in use stays.
func (c *Cert) Reload() error {
	kp, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("certificate %s, key %s: %w", c.certFile, c.keyFile, err)
	}
	if kp.Leaf == nil || time.Now().After(kp.Leaf.NotAfter) {
		return fmt.Errorf("certificate %s: expired or unreadable", c.certFile)
	}
	c.cur.Store(&kp)
	return nil
}

// File is the certificate's path.
func (c *Cert) File() string { return c.certFile }

// Leaf is the certificate in use.
func (c *Cert) Leaf() *x509.Certificate { return c.cur.Load().Leaf }

// Fingerprint is the SHA-256 of the certificate in use, as AA:BB:….
func (c *Cert) Fingerprint() string { return Fingerprint(c.cur.Load().Certificate[0]) }

func (c *Cert) get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.cur.Load(), nil }

func (c *Cert) getClient(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return c.cur.Load(), nil
}

// Fingerprint is the SHA-256 of a DER certificate, as AA:BB:….
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	parts := make([]string, 0, len(sum))
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

// SelfSigned loads dir/NAME-cert.pem and dir/NAME-key.pem, making them
// first when missing (ECDSA P-256, ten years, common name cn; names:
// localhost, the host name, the loopback addresses and ips). made tells
// whether they were made now.
func SelfSigned(dir, name, cn string, ips []net.IP) (cert *Cert, made bool, err error) {
	certFile, keyFile := filepath.Join(dir, name+"-cert.pem"), filepath.Join(dir, name+"-key.pem")
	if _, err := os.Stat(certFile); err == nil {
		c, err := Load(certFile, keyFile)
		return c, false, err
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, false, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(10, 0, 0),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    []string{"localhost"}, IPAddresses: append([]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, ips...),
	}
	if host, _ := os.Hostname(); host != "" && host != "localhost" {
		tmpl.DNSNames = append(tmpl.DNSNames, host)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, false, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, err
	}
	if err := writeFile(keyFile, pemBlock("PRIVATE KEY", keyDER), 0o600); err != nil {
		return nil, false, err
	}
	if err := writeFile(certFile, pemBlock("CERTIFICATE", der), 0o644); err != nil {
		return nil, false, err
	}
	c, err := Load(certFile, keyFile)
	return c, true, err
}

// writeFile writes a file with mode perm from its creation on (a key is
// never readable by others, not even for a moment).
func writeFile(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	_, err = f.Write(data)
	return errors.Join(err, f.Sync(), f.Close())
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// Package testpki makes throw-away certificate authorities and the
// certificates they issue, as PEM files, for tests of TLS peers.
package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a certificate authority whose files are in a test's directory.
type CA struct {
	Cert     *x509.Certificate
	CertFile string // PEM
	key      *ecdsa.PrivateKey
	dir      string
}

// Leaf is an issued certificate's files.
type Leaf struct {
	CertFile, KeyFile string // PEM: the certificate, its key
	Cert              *x509.Certificate
	TLS               tls.Certificate
}

// NewCA makes a CA named cn with its certificate in a new directory of t.
func NewCA(t testing.TB, cn string) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(t), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca := &CA{key: key, dir: t.TempDir()}
	ca.Cert, _ = x509.ParseCertificate(der)
	ca.CertFile = filepath.Join(ca.dir, "ca.pem")
	write(t, ca.CertFile, "CERTIFICATE", der)
	return ca
}

// Issue makes a certificate for names (DNS names, or IP addresses) with
// common name cn, valid for servers and clients, and writes it and its
// key as NAME.pem and NAME-key.pem (NAME: cn).
func (ca *CA) Issue(t testing.TB, cn string, names ...string) *Leaf {
	return ca.IssueValid(t, cn, time.Now().Add(24*time.Hour), names...)
}

// IssueValid is Issue with the certificate's end of validity.
func (ca *CA) IssueValid(t testing.TB, cn string, notAfter time.Time, names ...string) *Leaf {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(t), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	l := &Leaf{CertFile: filepath.Join(ca.dir, cn+".pem"), KeyFile: filepath.Join(ca.dir, cn+"-key.pem")}
	write(t, l.CertFile, "CERTIFICATE", der)
	write(t, l.KeyFile, "PRIVATE KEY", keyDER)
	l.Cert, _ = x509.ParseCertificate(der)
	if l.TLS, err = tls.LoadX509KeyPair(l.CertFile, l.KeyFile); err != nil {
		t.Fatal(err)
	}
	return l
}

// Pool is a cert pool of the CA alone.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

func serial(t testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func write(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

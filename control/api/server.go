package api

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
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sbc/control"
)

// TLSConfig is the API's TLS: 1.2 and 1.3 only, and for 1.2 only ECDHE
// key exchange with AEAD ciphers.
func TLSConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
	}
}

// ServerTLS is the API's TLS configuration: the configured certificate,
// or one made in dataDir at first start (its fingerprint logged); nil when
// cfg asks for plain HTTP (loopback only, as Validate insists).
func ServerTLS(cfg control.APIConfig, dataDir string, log *slog.Logger) (*tls.Config, error) {
	if cfg.PlainHTTP {
		return nil, nil
	}
	certFile, keyFile := cfg.Cert, cfg.Key
	if certFile == "" {
		var err error
		if certFile, keyFile, err = selfSigned(dataDir, log); err != nil {
			return nil, err
		}
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("api certificate: %w", err)
	}
	return TLSConfig(cert), nil
}

// HTTPServer is the http.Server for the API handler h: timeouts and
// header limits a client cannot hold open, TLS where tlsCfg is not nil
// (serve it with ServeTLS(ln, "", "")).
func HTTPServer(h http.Handler, tlsCfg *tls.Config, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler: h, TLSConfig: tlsCfg,
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// selfSigned returns the paths of the API's own certificate in dataDir,
// making it (ECDSA P-256, ten years, names: localhost, the host name and
// the loopback addresses) when missing.
func selfSigned(dataDir string, log *slog.Logger) (string, string, error) {
	certFile, keyFile := filepath.Join(dataDir, "api-cert.pem"), filepath.Join(dataDir, "api-key.pem")
	if pemBytes, err := os.ReadFile(certFile); err == nil {
		if _, err := os.Stat(keyFile); err == nil {
			log.Info("api certificate (self-signed)", "file", certFile, "sha256_fingerprint", fingerprint(pemBytes))
			return certFile, keyFile, nil
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "sbc control API"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(10, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if host != "" && host != "localhost" {
		tmpl.DNSNames = append(tmpl.DNSNames, host)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		return "", "", err
	}
	log.Info("api certificate made (self-signed)", "file", certFile, "sha256_fingerprint", fingerprint(certPEM))
	return certFile, keyFile, nil
}

// fingerprint is the SHA-256 of a PEM certificate's DER, as browsers and
// curl --pinnedpubkey users compare it (AA:BB:...).
func fingerprint(certPEM []byte) string {
	b, _ := pem.Decode(certPEM)
	if b == nil {
		return ""
	}
	sum := sha256.Sum256(b.Bytes)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var parts []string
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

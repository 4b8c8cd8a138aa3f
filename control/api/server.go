package api

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"sbc/control"
	"sbc/tlsconf"
)

// ServerTLS is the API's TLS configuration (tlsconf's policy) and its
// certificate: the configured one, or one made in dataDir at first start
// (its fingerprint logged). Both nil when cfg asks for plain HTTP
// (loopback only, as Validate insists).
func ServerTLS(cfg control.APIConfig, dataDir string, log *slog.Logger) (*tls.Config, *tlsconf.Cert, error) {
	if cfg.PlainHTTP {
		return nil, nil, nil
	}
	if cfg.Cert != "" {
		cert, err := tlsconf.Load(cfg.Cert, cfg.Key)
		if err != nil {
			return nil, nil, fmt.Errorf("api certificate: %w", err)
		}
		return tlsconf.Config(cert), cert, nil
	}
	cert, made, err := tlsconf.SelfSigned(dataDir, "api", "sbc control API", nil)
	if err != nil {
		return nil, nil, fmt.Errorf("api certificate: %w", err)
	}
	msg := "api certificate (self-signed)"
	if made {
		msg = "api certificate made (self-signed)"
	}
	log.Info(msg, "file", cert.File(), "sha256_fingerprint", cert.Fingerprint())
	return tlsconf.Config(cert), cert, nil
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

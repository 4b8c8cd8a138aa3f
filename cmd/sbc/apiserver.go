package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"sbc/control"
	"sbc/control/api"
	"sbc/tlsconf"
)

// apiServer is the REST API's listener.
type apiServer struct {
	srv  *http.Server
	cert *tlsconf.Cert // nil for plain HTTP
	done chan error
}

// listenAPI binds control.api.listen and serves the API on it: HTTPS, or
// plain HTTP where the config allows it.
func listenAPI(cfg control.APIConfig, dataDir string, h http.Handler, log *slog.Logger) (*apiServer, error) {
	tlsCfg, cert, err := api.ServerTLS(cfg, dataDir, log)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", *cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("api listen: %w", err)
	}
	s := &apiServer{srv: api.HTTPServer(h, tlsCfg, log), cert: cert, done: make(chan error, 1)}
	scheme := "http"
	go func() {
		if tlsCfg != nil {
			s.done <- s.srv.ServeTLS(ln, "", "")
		} else {
			s.done <- s.srv.Serve(ln)
		}
	}()
	if tlsCfg != nil {
		scheme = "https"
	}
	log.Info("api listening", "address", ln.Addr().String(), "scheme", scheme)
	return s, nil
}

// Close stops the server, letting requests in flight finish for a moment.
func (s *apiServer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if e := <-s.done; !errors.Is(e, http.ErrServerClosed) && err == nil {
		err = e
	}
	return err
}

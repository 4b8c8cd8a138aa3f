// Package api is the control plane's REST API, in the shape of the CPaaS
// API operators and their customers already use (Twilio's 2010-04-01 REST
// API, which the Avaya CPaaS API follows too): form-encoded POSTs, JSON
// answers with snake_case fields, RFC 2822 dates, HTTP Basic auth as
// AccountSid:AuthToken, pages with next_page_uri, errors as
// {code, message, more_info, status}. What that API lacks (SIP users,
// classes of restriction, the audit log, operator actions) follows the
// same conventions under the same prefix; see openapi.json.
package api

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"sbc/control"
	"sbc/control/store"
)

// Version is the API's path prefix.
const Version = "/2010-04-01"

//go:embed openapi.json
var openapi []byte

// API serves the REST API of one control plane. Safe for concurrent use.
type API struct {
	p    *control.Plane
	log  *slog.Logger
	mux  *http.ServeMux
	auth *lockout
	now  func() time.Time
}

// New builds the API over a plane.
func New(p *control.Plane, log *slog.Logger) *API {
	a := &API{p: p, log: log, mux: http.NewServeMux(), auth: newLockout(), now: time.Now}
	for _, r := range a.routes() {
		a.mux.HandleFunc(r.pattern, a.wrap(r))
	}
	a.mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(openapi)
	})
	a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{http.StatusNotFound, 20404, "no such resource: " + r.URL.Path})
	})
	return a
}

// ServeHTTP serves one request.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// who made a request.
type caller struct {
	admin   bool
	sid     string // admin or account SID
	account *store.Account
}

func (c caller) actor() string {
	if c.admin {
		return "admin:" + c.sid
	}
	return "account:" + c.sid
}

// route is one endpoint: its pattern, the parameters it takes (any other
// is refused), whether only an operator may call it, and its handler.
type route struct {
	pattern string
	params  []string
	admin   bool
	h       func(*request) (any, error)
}

// request is what a handler gets: the caller and the checked form.
type request struct {
	ctx  context.Context
	r    *http.Request
	who  caller
	form url.Values
	// status to answer with on success (default 200).
	status int
}

func (q *request) get(k string) (string, bool) {
	v, ok := q.form[k]
	if !ok || len(v) == 0 {
		return "", false
	}
	return v[0], true
}

// apiError is an error answer.
type apiError struct {
	status  int
	code    int
	message string
}

func (e *apiError) Error() string { return e.message }

func badParam(name, format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, 20001, "Invalid parameter " + name + ": " + fmt.Sprintf(format, args...)}
}

var errNotFound = &apiError{http.StatusNotFound, 20404, "The requested resource was not found"}

func writeError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.status)
	json.NewEncoder(w).Encode(map[string]any{
		"code": e.code, "message": e.message, "status": e.status,
		"more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", e.code),
	})
}

// maxBody bounds a request body (form POSTs are small).
const maxBody = 64 << 10

// wrap authenticates, checks the parameters and maps errors to answers.
func (a *API) wrap(rt route) http.HandlerFunc {
	allowed := map[string]bool{}
	for _, p := range rt.params {
		allowed[p] = true
	}
	return func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				a.log.Error("api handler panic", "path", r.URL.Path, "panic", v)
				writeError(w, &apiError{http.StatusInternalServerError, 20500, "internal error"})
			}
		}()
		who, aerr := a.authenticate(r)
		if aerr != nil {
			if aerr.status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Basic realm="sbc"`)
			}
			writeError(w, aerr)
			return
		}
		if rt.admin && !who.admin {
			writeError(w, errNotFound) // an account learns nothing of operator routes
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		if r.Method == http.MethodPost {
			if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
				writeError(w, &apiError{http.StatusUnsupportedMediaType, 20415, "POST bodies are application/x-www-form-urlencoded"})
				return
			}
		}
		if err := r.ParseForm(); err != nil {
			writeError(w, &apiError{http.StatusBadRequest, 20001, "malformed request: " + err.Error()})
			return
		}
		for k := range r.Form {
			if !allowed[k] {
				writeError(w, badParam(k, "unknown parameter for %s %s", r.Method, rt.pattern[strings.IndexByte(rt.pattern, ' ')+1:]))
				return
			}
		}
		q := &request{ctx: r.Context(), r: r, who: who, form: r.Form, status: http.StatusOK}
		if acct := r.PathValue("acct"); acct != "" {
			sid, ok := strings.CutSuffix(acct, ".json")
			if !ok && strings.HasSuffix(rt.pattern, "{acct}") {
				writeError(w, errNotFound)
				return
			}
			if !ok {
				sid = acct
			}
			// An account reaches only itself: another's SID is not found.
			if !who.admin && sid != who.sid {
				writeError(w, errNotFound)
				return
			}
		}
		out, err := rt.h(q)
		if err != nil {
			var ae *apiError
			var fe *control.FieldError
			var ce *control.CodedError
			switch {
			case errors.As(err, &ae):
			case errors.As(err, &fe):
				ae = badParam(fe.Field, "%s", fe.Message)
			case errors.Is(err, control.ErrNoBalance):
				ae = &apiError{http.StatusPaymentRequired, control.ErrNoBalance.Code, control.ErrNoBalance.Message}
			case errors.As(err, &ce):
				ae = &apiError{http.StatusBadRequest, ce.Code, ce.Message}
			case errors.Is(err, control.ErrNoMessaging):
				ae = &apiError{http.StatusServiceUnavailable, 20503, "messaging is not running on this node"}
			case errors.Is(err, store.ErrNotFound):
				ae = errNotFound
			case errors.Is(err, store.ErrConflict):
				ae = &apiError{http.StatusConflict, 20409, "already exists: " + err.Error()}
			default:
				a.log.Error("api", "method", r.Method, "path", r.URL.Path, "error", err)
				ae = &apiError{http.StatusInternalServerError, 20500, "internal error"}
			}
			writeError(w, ae)
			return
		}
		if out == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(q.status)
		json.NewEncoder(w).Encode(out)
	}
}

// accountSID is the {acct} of a path, without ".json".
func (q *request) accountSID() string {
	return strings.TrimSuffix(q.r.PathValue("acct"), ".json")
}

// pathSID is the {name} of a path: a SID with prefix, ending ".json".
func (q *request) pathSID(name, prefix string) (string, error) {
	v, ok := strings.CutSuffix(q.r.PathValue(name), ".json")
	if !ok || !store.ValidSID(prefix, v) {
		return "", errNotFound
	}
	return v, nil
}

// rfc2822 is the CPaaS API's date form.
func rfc2822(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC1123Z)
	return &s
}

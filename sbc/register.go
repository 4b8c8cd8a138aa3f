package sbc

import (
	"context"
	"crypto/rand"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"sbc/control"
	"sbc/control/store"
	"sbc/sbc/digest"
	"sbc/sbc/registrar"
)

// Customer devices: the control plane's SIP users register (digest
// authentication, RFC 3261 §22, RFC 8760) and are called at the flow
// they registered over; their calls are challenged (407) and then the
// account's like a trunk's.

// device is a registered user's device as a peer of a call: a Trunk of
// its own (its account, the registrar's media policy) whose Address is
// its flow.
type device struct {
	user    string
	contact sip.Uri // the Request-URI of calls to it
}

// newDeviceTrunk is the peer of a device of user u, reached at source
// ("ip:port") over transport.
func (s *Server) newDeviceTrunk(u store.User, transport, source string, contact sip.Uri) *Trunk {
	return &Trunk{Name: "user:" + u.Username, Address: source, Transport: transport, Account: u.AccountSID,
		MediaPolicy: s.cfg.SIP.Registrar.MediaPolicy, device: &device{user: u.Username, contact: contact}}
}

// devices is the registrar's state in the server.
type devices struct {
	reg    *registrar.Registrar
	auth   *digest.Challenger
	locked userLockout
}

func newDevices(cfg *Config) *devices {
	secret := make([]byte, 32)
	rand.Read(secret)
	r := cfg.SIP.Registrar
	d := &devices{
		reg:    registrar.New(r.MinExpires, r.MaxExpires, r.MaxExpires, r.MaxContacts),
		auth:   digest.New(cfg.Control.Realm, secret, r.NonceTTL),
		locked: userLockout{m: map[string]*userFailures{}, max: *r.AuthFailures, window: cfg.SIP.BanWindow, ban: cfg.SIP.BanTime},
	}
	d.auth.SetAlgorithms(r.Digest) // validated
	return d
}

// challenge answers req with a fresh digest challenge: 401 with
// WWW-Authenticate for REGISTER, 407 with Proxy-Authenticate otherwise;
// statelessly (respondOnce): the device sends its request again, with
// credentials, and a forged source gets one answer, not ten.
func (s *Server) challenge(tx sip.ServerTransaction, req *sip.Request, stale bool) {
	code, reason, name := 407, "Proxy Authentication Required", "Proxy-Authenticate"
	if req.Method == sip.REGISTER {
		code, reason, name = 401, "Unauthorized", "WWW-Authenticate"
	}
	var hdrs []sip.Header
	for _, v := range s.dev.auth.Challenge(stale, clientOf(req)) {
		hdrs = append(hdrs, sip.NewHeader(name, v))
	}
	s.respondOnce(tx, req, code, reason, hdrs...)
}

// authenticate checks a request's digest credentials against the
// control plane's users. Answered (challenge, 403, or nothing for a
// source just banned) and false unless they are right and the user's
// account is active. A wrong user and a wrong password look the same.
func (s *Server) authenticate(req *sip.Request, tx sip.ServerTransaction) (control.Device, bool) {
	name := "Proxy-Authorization"
	if req.Method == sip.REGISTER {
		name = "Authorization"
	}
	h := req.GetHeader(name)
	if h == nil {
		s.challenge(tx, req, false)
		return control.Device{}, false
	}
	now := time.Now()
	p, err := digest.Parse(h.Value())
	user := p["username"]
	if len(user) > 64 {
		// No user has such a name: refused like a wrong password, and not
		// counted under a name an attacker chose (the lockout's memory).
		user = ""
	}
	ip, _ := sourceIP(req.Source())
	if err == nil && s.dev.locked.lockedOut(user, ip.String(), now) && !s.registeredFlow(user, req.Source()) {
		s.log.Warn("authentication refused: user locked out", "method", req.Method.String(), "source", req.Source(), "username", user)
		s.respondOnce(tx, req, 403, "Forbidden")
		return control.Device{}, false
	}
	var dev control.Device
	res := s.dev.auth.Verify(req.Method.String(), digestURI(req, p["uri"]), h.Value(), clientOf(req), func(u string) (string, string, bool) {
		d, ok := s.ctl.Device(u)
		if !ok || !d.Active {
			return "", "", false
		}
		dev = d
		return d.User.HA1MD5, d.User.HA1SHA256, true
	})
	switch {
	case res.OK:
		s.dev.locked.succeed(user, ip.String())
		return dev, true
	case res.Stale || res.Unproven:
		// Without a nonce sent to its address, a failure could be forged
		// (UDP) to lock out or ban that address: challenged, not counted.
		s.challenge(tx, req, res.Stale)
		return control.Device{}, false
	}
	lockedNow := user != "" && s.dev.locked.fail(user, ip.String(), now)
	s.log.Warn("authentication failed", "method", req.Method.String(), "source", req.Source(), "transport", strings.ToLower(req.Transport()),
		"username", res.Username, "reason", res.Reason, "user_locked_out", lockedNow)
	if ip.IsValid() && s.bans.fail(ip, now) {
		tx.Terminate() // banned: no answer
		return control.Device{}, false
	}
	s.challenge(tx, req, false)
	return control.Device{}, false
}

// clientOf is what a request's nonces are bound to: its source IP. Not
// the port: a NAT may give a device's next request another one.
func clientOf(req *sip.Request) string {
	ip, _ := sourceIP(req.Source())
	return ip.String()
}

// registeredFlow tells whether user has a device registered over source.
func (s *Server) registeredFlow(user, source string) bool {
	for _, b := range s.dev.reg.Lookup(user, time.Now()) {
		if b.Source == source {
			return true
		}
	}
	return false
}

// digestURI is the Request-URI the credentials must be for: the uri
// parameter as the device wrote it when it designates the Request-URI's
// server (scheme, host and port; sipgo re-serialises URIs, so their text
// may differ, and some devices leave the user out, as sipp does), else
// the Request-URI as sipgo writes it (a mismatch). The nonce count, which
// the response also covers, is what keeps credentials from being
// replayed.
func digestURI(req *sip.Request, uri string) string {
	var u sip.Uri
	r := req.Recipient
	if err := sip.ParseUri(uri, &u); err == nil && u.Scheme == r.Scheme && (u.User == "" || u.User == r.User) &&
		strings.EqualFold(u.Host, r.Host) && u.Port == r.Port {
		return uri
	}
	return r.String()
}

// onRegister is the registrar (RFC 3261 §10.3).
func (s *Server) onRegister(req *sip.Request, tx sip.ServerTransaction) {
	if s.ctl == nil || !s.ctl.HasDevices() {
		if s.admit(req, tx) != nil { // a trunk's: trunks do not register
			s.respond(tx, req, 403, "Forbidden", nil, s.warning("no SIP users to register"))
		}
		return
	}
	if why := validate(req); why != "" {
		s.respond(tx, req, 400, "Bad Request", nil, s.warning(why))
		return
	}
	dev, ok := s.authenticate(req, tx)
	if !ok {
		return
	}
	u := dev.User
	if to := req.To(); to == nil || to.Address.User != u.Username {
		// Credentials of one user do not register another's address.
		s.log.Warn("register refused: address of record is not the authenticated user's", "source", req.Source(), "username", u.Username)
		s.respond(tx, req, 403, "Forbidden", nil, s.warning("the To user must be the authenticated user"))
		return
	}
	r := registrar.Request{User: u.Username, Expires: -1, CallID: callID(req), CSeq: req.CSeq().SeqNo,
		Transport: strings.ToLower(req.Transport()), Source: req.Source()}
	if ua := req.GetHeader("User-Agent"); ua != nil {
		r.UserAgent = ua.Value()
	}
	if e := req.GetHeader("Expires"); e != nil {
		n, err := strconv.Atoi(strings.TrimSpace(e.Value()))
		if err != nil || n < 0 {
			s.respond(tx, req, 400, "Bad Request", nil, s.warning("bad Expires"))
			return
		}
		r.Expires = n
	}
	for _, h := range req.GetHeaders("Contact") {
		c, ok := h.(*sip.ContactHeader)
		if !ok {
			s.respond(tx, req, 400, "Bad Request", nil, s.warning("bad Contact"))
			return
		}
		if c.Address.Wildcard {
			r.Wildcard = true
			continue
		}
		exp := -1
		if v, ok := c.Params.Get("expires"); ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				s.respond(tx, req, 400, "Bad Request", nil, s.warning("bad Contact expires"))
				return
			}
			exp = n
		}
		r.Contacts = append(r.Contacts, registrar.Contact{URI: c.Address.String(), Expires: exp})
	}
	now := time.Now()
	current, saved, removed, err := s.dev.reg.Register(r, now)
	switch {
	case errors.Is(err, registrar.ErrTooBrief):
		s.respond(tx, req, 423, "Interval Too Brief", nil,
			sip.NewHeader("Min-Expires", strconv.Itoa(int(s.cfg.SIP.Registrar.MinExpires/time.Second))))
		return
	case errors.Is(err, registrar.ErrOutOfOrder):
		s.respond(tx, req, 500, "Server Internal Error", nil, s.warning("CSeq out of order"))
		return
	case errors.Is(err, registrar.ErrWildcard):
		s.respond(tx, req, 400, "Bad Request", nil, s.warning("Contact: * needs Expires: 0 and no other Contact"))
		return
	case errors.Is(err, registrar.ErrTooMany):
		s.respond(tx, req, 403, "Forbidden", nil, s.warning("too many devices registered for this user"))
		return
	case err != nil:
		s.respond(tx, req, 500, "Server Internal Error", nil)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.ctl.SaveRegistrations(ctx, storeRegs(saved, u.AccountSID), storeRegs(removed, u.AccountSID)); err != nil {
		// In memory it holds; a restart before the next refresh loses it.
		s.log.Warn("registration not stored", "username", u.Username, "error", err)
	}
	if len(saved)+len(removed) > 0 {
		s.log.Info("registered", "username", u.Username, "account_sid", u.AccountSID, "source", r.Source, "transport", r.Transport,
			"contacts", len(current), "user_agent", r.UserAgent)
	}
	hdrs := []sip.Header{sip.NewHeader("Date", now.UTC().Format(time.RFC1123))}
	for _, b := range current {
		hdrs = append(hdrs, sip.NewHeader("Contact", "<"+b.Contact+">;expires="+strconv.Itoa(int(b.Expires.Sub(now).Round(time.Second)/time.Second))))
	}
	s.respond(tx, req, 200, "OK", nil, hdrs...)
}

func storeRegs(bs []registrar.Binding, account string) []store.Registration {
	out := make([]store.Registration, len(bs))
	for i, b := range bs {
		out[i] = store.Registration{Username: b.User, Contact: b.Contact, AccountSID: account, Transport: b.Transport,
			Source: b.Source, Expires: b.Expires, UserAgent: b.UserAgent, CallID: b.CallID, CSeq: b.CSeq, Updated: b.Updated}
	}
	return out
}

// expireRegistrations drops the bindings expired at now, from memory and
// from the store (a second at most after their expiry: the reaper's tick).
func (s *Server) expireRegistrations(now time.Time) {
	gone := s.dev.reg.Expire(now)
	if len(gone) == 0 || s.ctl == nil {
		return
	}
	go func() { // the reaper does not wait for the store
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.ctl.SaveRegistrations(ctx, nil, storeRegs(gone, "")); err != nil {
			s.log.Warn("expired registrations not removed from the store", "error", err)
		}
	}()
}

// pingDevices sends a double CRLF to each device registered over UDP
// every interval, from the SIP UDP port (the one the SBC's requests leave
// from): the NAT in front of the device keeps the mapping calls to it
// come in through. SIP stacks ignore CRLFs between messages (RFC 3261
// §7.5).
func (s *Server) pingDevices(interval time.Duration) {
	defer s.reaperWG.Done()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	ping := []byte("\r\n\r\n")
	for {
		select {
		case <-s.stop:
			return
		case now := <-tick.C:
			for _, src := range s.dev.reg.Flows("udp", now) {
				if ap, err := netip.ParseAddrPort(src); err == nil {
					s.udpConn.WriteToUDPAddrPort(ping, ap)
				}
			}
		}
	}
}

// restoreRegistrations reads back this node's bindings a previous run
// stored.
func (s *Server) restoreRegistrations() {
	if s.ctl == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	regs, err := s.ctl.NodeRegistrations(ctx)
	if err != nil {
		s.log.Warn("registrations of a previous run not read", "error", err)
		return
	}
	bs := make([]registrar.Binding, len(regs))
	for i, g := range regs {
		bs[i] = registrar.Binding{User: g.Username, Contact: g.Contact, Transport: g.Transport, Source: g.Source,
			Expires: g.Expires, UserAgent: g.UserAgent, CallID: g.CallID, CSeq: g.CSeq, Updated: g.Updated}
	}
	if n := s.dev.reg.Restore(bs, time.Now()); n > 0 {
		s.log.Info("registrations of a previous run restored", "bindings", n)
	}
}

// deviceOf is the peer a user's call goes to first: the device that
// registered last; nil when none is registered.
func (s *Server) deviceOf(user string) *Trunk {
	if ds := s.devicesOf(user); len(ds) > 0 {
		return ds[0]
	}
	return nil
}

// admitCaller is the peer an initial INVITE comes from: a trunk (admit),
// or, from any other address, a customer device whose user's credentials
// the INVITE carries (challenged with 407 first). nil when answered.
func (s *Server) admitCaller(req *sip.Request, tx sip.ServerTransaction) *Trunk {
	if t, why := s.identifyTrunk(req); t != nil || why != "" || s.ctl == nil || !s.ctl.HasDevices() {
		// A trunk, or nobody: with no SIP user at all, a stranger is told
		// 403 and counted towards a ban, not challenged.
		return s.admit(req, tx)
	}
	if why := validate(req); why != "" {
		s.log.Warn("malformed request answered 400", "method", req.Method.String(), "source", req.Source(), "error", why)
		s.respond(tx, req, 400, "Bad Request", nil, s.warning(why))
		return nil
	}
	dev, ok := s.authenticate(req, tx)
	if !ok {
		return nil
	}
	var contact sip.Uri
	if ct := req.Contact(); ct != nil {
		contact = *ct.Address.Clone()
	}
	return s.newDeviceTrunk(dev.User, strings.ToLower(req.Transport()), req.Source(), contact)
}

// deviceLeg is the leg of a device's call an in-dialog request belongs
// to, when it comes over that device's flow; nil otherwise.
func (s *Server) deviceLeg(req *sip.Request) *leg {
	l := s.findLeg(req)
	if l == nil || l.trunk().device == nil || l.dest != req.Source() {
		return nil
	}
	return l
}

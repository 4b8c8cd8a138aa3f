package sbc

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"mime"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emiago/sipgo/sip"

	"sbc/control"
	"sbc/control/messaging"
	"sbc/control/store"
)

// Outbound SMS: the control plane's queue hands each message to SendSMS,
// which carries it to the carrier as SIP MESSAGE (RFC 3428), text/plain,
// to the trunk the dial plan picks for its recipient (the routes with an
// empty `from`, as for devices' calls). A text longer than one SMS is
// split, sent whole or refused as the trunk's sms_long says.

// errNoSMSRoute fails a message no route takes.
var errNoSMSRoute = errors.New("no route to the recipient")

// SendSMS sends m to its carrier and returns the answer; the parts of a
// split text go one by one, each after the last one's 2xx. The first
// MESSAGE's Call-ID is m.CarrierID, which delivery reports name.
func (s *Server) SendSMS(ctx context.Context, m *store.Message) (int, string, error) {
	to := s.smsTrunk(m.To)
	if to == nil {
		return 0, "", errNoSMSRoute
	}
	parts := []string{m.Body}
	if n, _ := messaging.Segments(m.Body); n > 1 {
		switch to.SMSLong {
		case "refuse":
			return 0, "", fmt.Errorf("a text of %d parts, and trunk %s takes one (sms_long = refuse)", n, to.Name)
		case "split":
			parts = messaging.Split(m.Body)
		}
	}
	var code int
	var reason string
	for i, p := range parts {
		cid := m.CarrierID
		if i > 0 || cid == "" {
			cid = newID() + newID() + bLegCallIDSuffix
		}
		var err error
		code, reason, err = s.sendPart(ctx, to, m, p, cid)
		if err != nil {
			if i > 0 {
				err = fmt.Errorf("part %d of %d: %w", i+1, len(parts), err)
			}
			return code, reason, err
		}
		if code >= 300 {
			break
		}
	}
	return code, reason, nil
}

// smsTrunk is the trunk a message to number (+E.164) goes to: the dial
// plan's routes with an empty `from`, matched on the number as it is and
// without its "+".
func (s *Server) smsTrunk(number string) *Trunk {
	for _, n := range []string{number, strings.TrimPrefix(number, "+")} {
		if name, ok := s.plan.Lookup("", n); ok {
			if t := s.trunks.get(name); t != nil {
				return t
			}
		}
	}
	return nil
}

// messageRequest is one MESSAGE of m to trunk to, carrying text, with
// Call-ID cid, From tag tag and CSeq seq.
func (s *Server) messageRequest(to *Trunk, m *store.Message, text, cid, tag string, seq uint32) *sip.Request {
	host, port, _ := splitHostPort(to.Address)
	ruri := sip.Uri{Scheme: "sip", User: m.To, Host: uriHost(host), Port: port}
	req := sip.NewRequest(sip.MESSAGE, ruri)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: m.From, Host: s.publicIP}, Params: sip.NewParams()}
	from.Params.Add("tag", tag)
	callID := sip.CallIDHeader(cid)
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: m.To, Host: uriHost(host)}, Params: sip.NewParams()})
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: seq, MethodName: sip.MESSAGE})
	req.AppendHeader(ptr(sip.MaxForwardsHeader(70)))
	req.AppendHeader(ptr(sip.ContentTypeHeader("text/plain;charset=UTF-8")))
	req.SetBody([]byte(text))
	s.prepare(req, to.Transport)
	if to.Transport == "tls" {
		if a, ok := trunkAddr(to.Address); ok {
			req.SetDestination(a)
		}
	}
	return req
}

// smsTries is how often one part is offered to a carrier that answers 503.
const smsTries = 3

// sendPart sends one MESSAGE, again while the carrier answers 503
// Service Unavailable, after its Retry-After (RFC 3261 §21.5.4; 10 s at
// most) or 2 s, within ctx: a carrier's brief overload does not fail the
// message. A retry is a new request of the same sender: its Call-ID and
// From tag, the next CSeq (§8.1.3.5).
func (s *Server) sendPart(ctx context.Context, to *Trunk, m *store.Message, text, cid string) (int, string, error) {
	tag := sip.GenerateTagN(16)
	for try := 1; ; try++ {
		tx, err := s.send(ctx, s.messageRequest(to, m, text, cid, tag, uint32(try)))
		if err != nil {
			return 0, "", err
		}
		code, reason, after, err := finalOf(ctx, tx)
		if err != nil || code != 503 || try == smsTries {
			return code, reason, err
		}
		select {
		case <-time.After(after):
		case <-ctx.Done():
			return code, reason, nil
		}
	}
}

// finalOf waits for tx's final response: its status, reason and, for a
// 503, how long its Retry-After asks to wait (2 s without one).
func finalOf(ctx context.Context, tx sip.ClientTransaction) (int, string, time.Duration, error) {
	defer tx.Terminate()
	for {
		select {
		case res := <-tx.Responses():
			if res.StatusCode >= 200 {
				after := 2 * time.Second
				if h := res.GetHeader("Retry-After"); h != nil {
					v, _, _ := strings.Cut(strings.TrimSpace(h.Value()), ";")
					if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
						after = min(time.Duration(n)*time.Second, 10*time.Second)
					}
				}
				return res.StatusCode, res.Reason, after, nil
			}
		case <-tx.Done():
			if err := tx.Err(); err != nil {
				return 0, "", 0, err
			}
			return 0, "", 0, errors.New("transaction ended without an answer")
		case <-ctx.Done():
			return 0, "", 0, ctx.Err()
		}
	}
}

// Inbound SMS: a carrier trunk's MESSAGE (RFC 3428) to a number is the
// control plane's to file (ReceiveMessage); one answering a message the
// SBC sent is a delivery report: In-Reply-To naming that MESSAGE's Call-ID
// (RFC 3261 §20.21) with the carrier's report text as its body, or an RFC
// 5438 IMDN (message/imdn+xml) naming it as message-id.

// maxMessageBody bounds an inbound MESSAGE's body (RFC 3428 §8: MESSAGE
// is for short texts; a concatenated SMS of 1600 characters fits).
const maxMessageBody = 8 << 10

func (s *Server) onMessage(req *sip.Request, tx sip.ServerTransaction) {
	t := s.admit(req, tx)
	if t == nil {
		return
	}
	if s.ctl == nil || t.device != nil || t.Account != "" {
		// SMS comes from carriers: a customer's PBX or phone would write
		// into other accounts (a STOP in a recipient's name).
		s.respond(tx, req, 403, "Forbidden", nil, s.warning("only carrier trunks send MESSAGE"))
		return
	}
	ct, charset := "", ""
	if h := req.ContentType(); h != nil {
		if mt, params, err := mime.ParseMediaType(h.Value()); err == nil {
			ct, charset = mt, strings.ToLower(params["charset"])
		}
	}
	body, ok := textOf(req.Body(), charset)
	switch {
	case len(req.Body()) > maxMessageBody:
		s.respond(tx, req, 413, "Request Entity Too Large", nil)
		return
	case ct != "text/plain" && ct != "message/imdn+xml":
		s.respond(tx, req, 415, "Unsupported Media Type", nil, sip.NewHeader("Accept", "text/plain, message/imdn+xml"))
		return
	case !ok:
		s.respond(tx, req, 415, "Unsupported Media Type", nil, sip.NewHeader("Accept", "text/plain;charset=UTF-8"),
			s.warning("the text is not "+cmp.Or(charset, "utf-8")))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var carrierID, report string
	if ct == "message/imdn+xml" {
		n, err := messaging.ParseIMDN(req.Body())
		if err != nil {
			s.respond(tx, req, 400, "Bad Request", nil, s.warning(err.Error()))
			return
		}
		carrierID, report = n.MessageID, n.Status
	} else if h := req.GetHeader("In-Reply-To"); h != nil {
		carrierID, report = strings.TrimSpace(strings.Split(h.Value(), ",")[0]), body
	}
	if carrierID != "" {
		m, err := s.ctl.DeliveryReport(ctx, carrierID, report)
		switch {
		case errors.Is(err, store.ErrNotFound):
			s.log.Info("delivery report for no message of ours", "trunk", t.Name, "carrier_id", carrierID)
			s.respond(tx, req, 481, "Call/Transaction Does Not Exist", nil)
			return
		case err != nil:
			s.log.Warn("delivery report not recorded", "trunk", t.Name, "carrier_id", carrierID, "error", err)
			s.respond(tx, req, 500, "Server Internal Error", nil, sip.NewHeader("Retry-After", "5"))
			return
		}
		s.respond(tx, req, 200, "OK", nil)
		s.log.Info("delivery report", "trunk", t.Name, "message_sid", m.SID, "status", m.Status, "carrier_status", report)
		return
	}
	from := ""
	if f := req.From(); f != nil {
		from = f.Address.User
	}
	m, kw, err := s.ctl.ReceiveMessage(ctx, from, req.Recipient.User, body)
	switch {
	case errors.Is(err, control.ErrNotOurNumber):
		s.respond(tx, req, 404, "Not Found", nil)
	case errors.Is(err, control.ErrNumberNotSMS):
		s.respond(tx, req, 403, "Forbidden", nil, s.warning("the number takes no SMS"))
	case err != nil:
		// Not stored, or a STOP not recorded: the carrier tries again.
		s.log.Warn("inbound message not recorded", "trunk", t.Name, "message_sid", m.SID, "error", err)
		s.respond(tx, req, 500, "Server Internal Error", nil, sip.NewHeader("Retry-After", "5"))
	default:
		s.respond(tx, req, 200, "OK", nil)
		s.log.Info("message received", "trunk", t.Name, "message_sid", m.SID, "account_sid", m.AccountSID, "keyword", kw.String())
		return
	}
	s.log.Info("message refused", "trunk", t.Name, "to", req.Recipient.User, "error", err)
}

// textOf is a MESSAGE body as text: UTF-8 (the default, RFC 3428 §9), or
// ISO-8859-1 converted; false for bytes that are not the charset's, or a
// NUL (the store keeps text).
func textOf(b []byte, charset string) (string, bool) {
	switch charset {
	case "", "utf-8", "us-ascii":
		return string(b), utf8.Valid(b) && !bytes.ContainsRune(b, 0)
	case "iso-8859-1", "latin1":
		r := make([]rune, len(b))
		for i, c := range b {
			r[i] = rune(c)
		}
		return string(r), !bytes.ContainsRune(b, 0)
	}
	return "", false
}

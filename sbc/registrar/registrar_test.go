package registrar

import (
	"errors"
	"testing"
	"time"
)

func TestRegister(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	r := New(60*time.Second, 120*time.Second, 120*time.Second, 3)
	req := Request{User: "alice", Contacts: []Contact{{URI: "sip:alice@10.0.0.2:5060", Expires: -1}}, Expires: 3600,
		CallID: "c1", CSeq: 1, Transport: "udp", Source: "192.0.2.7:40000", UserAgent: "phone"}
	cur, saved, _, err := r.Register(req, now)
	if err != nil || len(cur) != 1 || len(saved) != 1 {
		t.Fatalf("register: %v %v", cur, err)
	}
	if got := cur[0].Expires.Sub(now); got != 120*time.Second {
		t.Errorf("3600 s asked, %v granted; want the 120 s cap", got)
	}
	if cur[0].Source != "192.0.2.7:40000" || cur[0].Transport != "udp" {
		t.Errorf("flow %+v", cur[0])
	}
	// The same Call-ID with a CSeq not above the last: out of order.
	if _, _, _, err := r.Register(req, now); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("replayed CSeq: %v", err)
	}
	// Too brief: 423.
	req.CSeq, req.Expires = 2, 30
	if _, _, _, err := r.Register(req, now); !errors.Is(err, ErrTooBrief) {
		t.Fatalf("30 s: %v", err)
	}
	// A second device, then a query: both, newest first.
	req2 := Request{User: "alice", Contacts: []Contact{{URI: "sips:alice@10.0.0.3", Expires: 90}}, Expires: -1, CallID: "c2", CSeq: 7,
		Transport: "tls", Source: "192.0.2.8:50000"}
	if cur, _, _, err := r.Register(req2, now.Add(time.Second)); err != nil || len(cur) != 2 {
		t.Fatalf("second device: %v %v", cur, err)
	}
	if l := r.Lookup("alice", now.Add(2*time.Second)); len(l) != 2 || l[0].Contact != "sips:alice@10.0.0.3" {
		t.Fatalf("lookup %+v", l)
	}
	if !r.Registered("192.0.2.8:50000") || !r.Registered("192.0.2.7:40000") || r.Registered("192.0.2.9:1") {
		t.Fatal("flow index wrong")
	}
	// Expiry: the first (120 s) outlives the second (90 s).
	if l := r.Lookup("alice", now.Add(100*time.Second)); len(l) != 1 || l[0].Contact != "sip:alice@10.0.0.2:5060" {
		t.Fatalf("after 100 s: %+v", l)
	}
	// expires=0 removes one contact.
	req.CSeq, req.Contacts = 3, []Contact{{URI: "sip:alice@10.0.0.2:5060", Expires: 0}}
	if cur, _, removed, err := r.Register(req, now.Add(101*time.Second)); err != nil || len(cur) != 0 || len(removed) != 1 {
		t.Fatalf("unregister: %v %v %v", cur, removed, err)
	}
	// Too many contacts.
	for i := range 4 {
		_, _, _, err := r.Register(Request{User: "bob", Contacts: []Contact{{URI: "sip:bob@h" + string(rune('0'+i)), Expires: 60}}, Expires: -1, CallID: "b", CSeq: uint32(i + 1)}, now)
		if i < 3 && err != nil || i == 3 && !errors.Is(err, ErrTooMany) {
			t.Fatalf("contact %d: %v", i+1, err)
		}
	}
	// Contact: * with Expires: 0 removes all; with another expiry it is an error.
	if _, _, _, err := r.Register(Request{User: "bob", Wildcard: true, Expires: 60, CallID: "b", CSeq: 9}, now); !errors.Is(err, ErrWildcard) {
		t.Fatalf("wildcard with expires 60: %v", err)
	}
	if _, _, removed, err := r.Register(Request{User: "bob", Wildcard: true, Expires: 0, CallID: "b", CSeq: 9}, now); err != nil || len(removed) != 3 {
		t.Fatalf("wildcard: %v %v", removed, err)
	}
	if len(r.Lookup("bob", now)) != 0 {
		t.Fatal("bob still registered")
	}
	// alice's first contact was removed, her second expired: no flow left.
	if len(r.Lookup("alice", now.Add(200*time.Second))) != 0 || r.Registered("192.0.2.7:40000") || r.Registered("192.0.2.8:50000") {
		t.Fatal("flow index kept removed or expired bindings")
	}
}

func TestRestoreAndExpire(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	r := New(60*time.Second, 120*time.Second, 120*time.Second, 3)
	n := r.Restore([]Binding{
		{User: "a", Contact: "sip:a@x", Expires: now.Add(time.Minute)},
		{User: "b", Contact: "sip:b@x", Expires: now.Add(-time.Second)},
	}, now)
	if n != 1 || len(r.Lookup("a", now)) != 1 || len(r.Lookup("b", now)) != 0 {
		t.Fatalf("restored %d", n)
	}
	if gone := r.Expire(now.Add(2 * time.Minute)); len(gone) != 1 || gone[0].User != "a" || len(r.Lookup("a", now)) != 0 {
		t.Fatalf("expired %+v", gone)
	}
}

func TestFlows(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	r := New(60*time.Second, 120*time.Second, 120*time.Second, 3)
	r.Restore([]Binding{
		{User: "a", Contact: "sip:a@x", Transport: "udp", Source: "192.0.2.1:5060", Expires: now.Add(time.Minute)},
		{User: "b", Contact: "sip:b@x", Transport: "udp", Source: "192.0.2.1:5060", Expires: now.Add(time.Minute)}, // one NAT, two users
		{User: "c", Contact: "sip:c@x", Transport: "tls", Source: "192.0.2.2:40000", Expires: now.Add(time.Minute)},
		{User: "d", Contact: "sip:d@x", Transport: "udp", Source: "192.0.2.3:5060", Expires: now.Add(time.Second)},
	}, now)
	if got := r.Flows("udp", now.Add(2*time.Second)); len(got) != 1 || got[0] != "192.0.2.1:5060" {
		t.Fatalf("Flows(udp) = %v; want the live UDP source, once", got)
	}
}

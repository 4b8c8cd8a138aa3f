//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sbc/control/store"
	"sbc/sbc"
	"sbc/sbc/sbctest"
)

const (
	deviceIP = "127.0.0.31" // a customer's phone, registered (sipp)
	rogueDev = "127.0.0.32" // a phone with a wrong password
)

// TestE2EDevices: a customer's phone (sipp) registers with digest
// authentication, a carrier's call to its account's number reaches it
// over the flow it registered from, and the phone's own call is
// challenged (407) and then goes out through the carrier.
func TestE2EDevices(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end tests with sipp: skipped in -short mode")
	}
	bin := buildSBC(t)
	dir := dataDir(t, false)
	const password = "Str0ng-Passw0rd!"
	num := "+14155550400"
	st, acctSID := deviceAccount(t, dir, "alice", password, num)
	ctx := context.Background()
	e := newE2EEnv(t, bin, func(c *sbctest.DaemonConfig) {
		c.Control.DataDir = dir
		c.LogLevel = "info"
		c.Edit = func(cfg *sbc.Config) {
			// sipp answers the first challenge only, and knows MD5 only.
			cfg.SIP.Registrar.Digest = []string{"MD5", "SHA-256"}
			// NAT keepalives reach the phone during its calls: sipp
			// must take them in its stride.
			keepalive := time.Second
			cfg.SIP.Registrar.Keepalive = &keepalive
			// Devices' calls: any number starting "+" to the carrier b.
			cfg.Routes = append(cfg.Routes, sbc.Route{Prefix: "+", To: c.Callee.Name})
		}
	}, false)
	sbcAddr := fmt.Sprintf("%s:%d", sbcIP, e.cfg.SIPPort)
	phonePort := freeUDPPort(t, deviceIP)

	// The phone registers and stays; its out-of-call scenario answers.
	phone := startSipp(t, sippOpts{name: "phone", calls: 1, scenario: "device_register.xml", ip: deviceIP, port: phonePort,
		mediaPort: freeMediaPort(t, deviceIP, phonePort), remote: sbcAddr, pause: 8 * time.Second, timeout: 20 * time.Second,
		extra: []string{"-s", "alice", "-au", "alice", "-ap", password, "-oocsf", filepath.Join(sippDir(t), "uas_basic.xml")}})
	reg := e.sbc.waitN(t, 1, 5*time.Second, "registered", func(l logLine) bool { return l.msg() == "registered" })[0]
	if reg.str("username") != "alice" || reg.str("account_sid") != acctSID || reg.str("transport") != "udp" {
		t.Fatalf("registered line %v", reg)
	}
	if regs, err := st.Registrations(ctx, store.RegistrationFilter{AccountSID: acctSID}, time.Now()); err != nil || len(regs) != 1 || regs[0].Source != reg.str("source") {
		t.Fatalf("stored registrations %+v %v", regs, err)
	}

	// The CLI lists it from the store.
	cfgPath := filepath.Join(t.TempDir(), "sbc.toml")
	os.WriteFile(cfgPath, []byte(e.cfg.TOML()), 0o644)
	if out, err := exec.Command(bin, "registrations", "-config", cfgPath, "-account", acctSID).CombinedOutput(); err != nil ||
		!strings.Contains(string(out), "alice") || !strings.Contains(string(out), reg.str("source")) {
		t.Errorf("sbc registrations: %v\n%s", err, out)
	}

	t.Run("call_to_device", func(t *testing.T) {
		carrier := e.uac(t, sippOpts{name: "carrier", ip: calleeIP, port: int(e.cfg.Callee.Addr.Port()), scenario: "uac_outcome.xml",
			extra: []string{"-s", num}})
		carrier.expectSuccess(t)
		l := e.sbc.waitN(t, 1, 5*time.Second, "call to alice", func(l logLine) bool {
			return l.msg() == "call started" && l.str("to_trunk") == "user:alice"
		})[0]
		if l.str("from_trunk") != e.cfg.Callee.Name || l.str("account_sid") != acctSID {
			t.Errorf("call started %v", l)
		}
		ended := e.sbc.waitN(t, 1, 5*time.Second, "call to alice ended", func(m logLine) bool {
			return isCallEnded(m) && m.str("call_id") == l.str("call_id")
		})[0]
		if n, _ := ended.num("status"); n != 200 {
			t.Errorf("call to the phone: %v; want answered (200)", ended)
		}
		if strings.Contains(carrier.messages(t), deviceIP) {
			t.Error("the phone's address reached the carrier")
		}
	})

	t.Run("call_from_device", func(t *testing.T) {
		uas := e.uas(t, sippOpts{scenario: "uas_basic.xml"})
		port := freeUDPPort(t, deviceIP)
		dev := startSipp(t, sippOpts{name: "device_call", calls: 1, scenario: "device_call.xml", ip: deviceIP, port: port,
			mediaPort: freeMediaPort(t, deviceIP, port), remote: sbcAddr, extra: []string{"-s", "+14155550100", "-au", "alice", "-ap", password}})
		dev.expectSuccess(t)
		uas.expectSuccessWithin(t, 5*time.Second)
		l := e.sbc.waitN(t, 1, 5*time.Second, "call from alice", func(l logLine) bool {
			return l.msg() == "call started" && l.str("from_trunk") == "user:alice"
		})[0]
		if l.str("to_trunk") != e.cfg.Callee.Name || l.str("account_sid") != acctSID {
			t.Errorf("call started %v", l)
		}
		// The phone presents its account's number, whatever its From said.
		deadline := time.Now().Add(5 * time.Second)
		for {
			r, err := st.Call(ctx, acctSID, l.str("call_id"))
			if err == nil && r.From == num {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("call row %+v %v; want From %s", r, err, num)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if strings.Contains(uas.messages(t), "From: <sip:alice@") {
			t.Error("the carrier got the phone's own From")
		}
	})

	t.Run("wrong_password", func(t *testing.T) {
		port := freeUDPPort(t, rogueDev)
		dev := startSipp(t, sippOpts{name: "rogue", calls: 1, scenario: "device_call.xml", ip: rogueDev, port: port,
			mediaPort: freeMediaPort(t, rogueDev, port), remote: sbcAddr, timeout: 5 * time.Second, recvTimeout: 2 * time.Second,
			extra: []string{"-s", "+14155550100", "-au", "alice", "-ap", "wrong-Passw0rd!"}})
		if code := dev.wait(t); code == 0 {
			t.Fatal("a wrong password's call went through")
		}
		l := e.sbc.waitN(t, 1, 5*time.Second, "authentication failed", func(l logLine) bool {
			return l.msg() == "authentication failed" && l.str("source") != "" && l.str("username") == "alice"
		})[0]
		if l.str("reason") != "wrong password" {
			t.Errorf("failure line %v", l)
		}
	})
	phone.expectSuccess(t)
}

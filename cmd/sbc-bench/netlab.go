//go:build linux

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"syscall"

	"sbc/sbc/sbctest/netlab"
)

// With -netlab the harness measures across network namespaces instead of
// loopback, as the kernel fast path needs real interfaces: the targets run
// in an "sbc" namespace, the harness's UAC and UAS in a "peers" namespace,
// joined by two veth pairs (netlab's shared-leaf lab):
//
//	peers                                   sbc
//	sbc-carrier  198.51.100.2  ----------  198.51.100.1  to-carrier
//	sbc-customer 203.0.113.2   ----------  203.0.113.1   to-customer
//
// The UAC is 198.51.100.2, the UAS 203.0.113.2; targets listen and relay
// on 198.51.100.1. Media to the UAS leaves the sbc namespace by
// to-customer, everything else crosses to-carrier. The parent process
// builds the lab, runs itself again inside the peers namespace (every
// socket the harness and sipgo open is then there), and removes the lab
// when that child ends.

// labEnv carries the lab to the child.
const labEnv = "SBC_BENCH_NETLAB"

// labInfo is what the child needs of the lab.
type labInfo struct {
	SBCNetns   string     `json:"sbc_netns"`
	UAC        netip.Addr `json:"uac"`
	UAS        netip.Addr `json:"uas"`
	SBC        netip.Addr `json:"sbc"`
	Interfaces []string   `json:"interfaces"` // the sbc namespace's veths
	// Links are the sbc's ends of the carrier's and the customer's links
	// and their leaves' MACs, for a forwarder that writes Ethernet headers
	// itself.
	Links []labLink `json:"links"`
}

type labLink struct {
	Ifindex  int              `json:"ifindex"`
	Name     string           `json:"name"`
	MAC      net.HardwareAddr `json:"mac"`
	LeafMAC  net.HardwareAddr `json:"leaf_mac"`
	LeafIPv4 netip.Addr       `json:"leaf_ipv4"`
}

// inLab returns the lab the process runs in (the child), or nil.
func inLab() (*labInfo, error) {
	v := os.Getenv(labEnv)
	if v == "" {
		return nil, nil
	}
	var l labInfo
	if err := json.Unmarshal([]byte(v), &l); err != nil || len(l.Links) != 2 {
		return nil, fmt.Errorf("%s: %q is not a lab (%v)", labEnv, v, err)
	}
	return &l, nil
}

// linkTo is the link whose leaf holds ip.
func (l *labInfo) linkTo(ip netip.Addr) (labLink, bool) {
	for _, k := range l.Links {
		if k.LeafIPv4 == ip {
			return k, true
		}
	}
	return labLink{}, false
}

// runInLab builds the lab, runs this program with args inside its peers
// namespace, and removes the lab. It returns the child's exit status.
func runInLab(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "sbc-bench: -netlab needs root (network namespaces, veths, BPF)")
		return exitFail
	}
	lab, err := netlab.Build(netlab.Options{SharedLeaf: true})
	if err != nil {
		fmt.Fprintf(stderr, "sbc-bench: -netlab: %v\n", err)
		return exitFail
	}
	defer lab.Close()
	info := labInfo{SBCNetns: lab.SBC.Name, UAC: lab.CarrierLink.Leaf.IPv4, UAS: lab.CustomerLink.Leaf.IPv4,
		SBC: lab.CarrierLink.SBC.IPv4, Interfaces: []string{lab.CarrierLink.SBC.Name, lab.CustomerLink.SBC.Name}}
	for _, k := range []netlab.Link{lab.CarrierLink, lab.CustomerLink} {
		info.Links = append(info.Links, labLink{Ifindex: k.SBC.Index, Name: k.SBC.Name, MAC: k.SBC.MAC,
			LeafMAC: k.Leaf.MAC, LeafIPv4: k.Leaf.IPv4})
	}
	env, _ := json.Marshal(info)
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "sbc-bench: -netlab: %v\n", err)
		return exitFail
	}
	cmd := lab.Carrier.Command(self, args...)
	cmd.Env = append(os.Environ(), labEnv+"="+string(env))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(stderr, "sbc-bench: -netlab: %v\n", err)
		return exitFail
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done(): // Ctrl-C: the child got it too; give it its way out
		case <-done:
		}
	}()
	err = cmd.Wait()
	close(done)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return ee.ExitCode()
	}
	fmt.Fprintf(stderr, "sbc-bench: -netlab: %v\n", err)
	return exitFail
}

// inNetns wraps a command to run in the named network namespace ("": as
// is).
func inNetns(netns, bin string, args ...string) *exec.Cmd {
	if netns == "" {
		return exec.Command(bin, args...)
	}
	return exec.Command("ip", append([]string{"netns", "exec", netns, bin}, args...)...)
}

//go:build linux

package ladder

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestKamailioConfig: the template with the run's defines is a config
// Kamailio accepts, with and without rtpengine, and listens where asked.
func TestKamailioConfig(t *testing.T) {
	template, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "testdata", "kamailio", "kamailio.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	listen := netip.MustParseAddrPort("127.0.0.42:45060")
	uas := netip.MustParseAddrPort("127.0.0.43:45080")
	ng := netip.MustParseAddrPort("127.0.0.44:42223")
	for _, media := range []bool{true, false} {
		cfg := kamailioConfig(template, listen, uas, ng, 3, media)
		if !strings.HasPrefix(cfg, "#!KAMAILIO\n") || !strings.Contains(cfg, `#!define UAS "sip:127.0.0.43:45080"`) ||
			strings.Contains(cfg, "#!define WITH_RTPENGINE") != media {
			t.Errorf("media %v: config starts:\n%s", media, cfg[:min(len(cfg), 400)])
		}
		if _, err := exec.LookPath("kamailio"); err != nil {
			continue
		}
		path := filepath.Join(t.TempDir(), "kamailio.cfg")
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("kamailio", "-c", "-f", path).CombinedOutput()
		if err != nil {
			t.Errorf("media %v: kamailio -c: %v\n%s", media, err, out)
		}
		if !strings.Contains(string(out), "udp: 127.0.0.42 [127.0.0.42]:45060") {
			t.Errorf("media %v: kamailio -c does not list the listener:\n%s", media, out)
		}
	}
}

// TestKamailioEndsWithHarness: should the harness die, the kernel sends
// SIGTERM to Kamailio's wrapper shell (PDEATHSIG), which must take the main
// process and every worker with it. Here the test sends that SIGTERM.
func TestKamailioEndsWithHarness(t *testing.T) {
	needPeers(t, "kamailio")
	dir := t.TempDir()
	c := Config{Systems: []string{SystemKamailioNoMedia}, Testdata: filepath.Join("..", "..", "..", "..", "testdata")}.withDefaults()
	e, _, _, err := newEnv(c, dir)
	if err != nil {
		t.Fatal(err)
	}
	k := &kamailioSystem{}
	defer k.stop()
	if err := k.start(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	// Kamailio may still be forking its workers when its port is bound.
	n := liveInGroup(t, k.p.pid())
	for deadline := time.Now().Add(5 * time.Second); n < c.KamailioChildren && time.Now().Before(deadline); n = liveInGroup(t, k.p.pid()) {
		time.Sleep(20 * time.Millisecond)
	}
	if n < c.KamailioChildren {
		t.Fatalf("%d processes in kamailio's group; want the wrapper, main and at least %d workers", n, c.KamailioChildren)
	}
	if err := syscall.Kill(k.p.pid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(8 * time.Second)
	for liveInGroup(t, k.p.pid()) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d processes of kamailio's group still up 8 s after its wrapper got SIGTERM", liveInGroup(t, k.p.pid()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	checkNothingLeft(t, dir)
}

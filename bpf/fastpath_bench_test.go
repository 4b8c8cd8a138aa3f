package bpf

import (
	"net/netip"
	"testing"
)

// BenchmarkFastPath times the program alone on one packet, through
// BPF_PROG_TEST_RUN's repeat loop: what each verdict costs before any
// driver or stack work (the machine-wide cost per packet is the load
// harness's to measure). Reported as ns/packet.
func BenchmarkFastPath(b *testing.B) {
	f, err := LoadFastPath(FastPathConfig{PortMin: portMin, PortMax: portMax, IP4: mediaIP,
		SIPPorts: []uint16{5060}, SIPRate: 200, SIPBurst: 400})
	if err != nil {
		b.Fatalf("load (root needed): %v", err)
	}
	defer f.Close()
	if err := f.Open(20010, Pinhole{Peer: netip.AddrPortFrom(carrier, 4000)}); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		pk   packet
		want uint32
	}{
		{"closed-port-drop", packet{src: customer, dst: mediaIP, sport: 4000, dport: 20020}, xdpDrop},
		{"open-port-pass", packet{src: carrier, dst: mediaIP, sport: 4000, dport: 20010}, xdpPass},
		{"not-media-pass", packet{src: carrier, dst: customer, sport: 4000, dport: 443}, xdpPass},
	} {
		b.Run("xdp/"+c.name, func(b *testing.B) {
			frame := c.pk.bytes()
			ret, per, err := f.objs.XdpMedia.Benchmark(frame, b.N, nil)
			if err != nil {
				b.Fatal(err)
			}
			if ret != c.want {
				b.Fatalf("verdict %d, want %d", ret, c.want)
			}
			b.ReportMetric(float64(per.Nanoseconds()), "ns/packet")
		})
	}
}

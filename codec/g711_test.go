package codec

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
)

// reference is one line of testdata/g711/reference.txt, made by the
// reference C implementation (see its README), not by this package.
type reference struct {
	ulawLinear, alawLinear       int16
	ulawToAlaw, alawToUlaw       byte
	ulawReencoded, alawReencoded byte
}

func loadReference(t *testing.T) [256]reference {
	t.Helper()
	f, err := os.Open("../testdata/g711/reference.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var refs [256]reference
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		var v [7]int
		for i, s := range strings.Fields(line) {
			if v[i], err = strconv.Atoi(s); err != nil {
				t.Fatalf("reference line %q: %v", line, err)
			}
		}
		refs[v[0]] = reference{int16(v[1]), int16(v[2]), byte(v[3]), byte(v[4]), byte(v[5]), byte(v[6])}
		n++
	}
	if n != 256 {
		t.Fatalf("reference has %d codes, want 256", n)
	}
	return refs
}

func TestG711AgainstReference(t *testing.T) {
	refs := loadReference(t)
	for c := range 256 {
		b, r := byte(c), refs[c]
		if got := UlawToLinear(b); got != r.ulawLinear {
			t.Errorf("UlawToLinear(%#02x) = %d, reference %d", b, got, r.ulawLinear)
		}
		if got := AlawToLinear(b); got != r.alawLinear {
			t.Errorf("AlawToLinear(%#02x) = %d, reference %d", b, got, r.alawLinear)
		}
		if got := UlawToAlaw(b); got != r.ulawToAlaw {
			t.Errorf("UlawToAlaw(%#02x) = %#02x, reference %#02x", b, got, r.ulawToAlaw)
		}
		if got := AlawToUlaw(b); got != r.alawToUlaw {
			t.Errorf("AlawToUlaw(%#02x) = %#02x, reference %#02x", b, got, r.alawToUlaw)
		}
		if got := LinearToUlaw(r.ulawLinear); got != r.ulawReencoded {
			t.Errorf("LinearToUlaw(%d) = %#02x, reference %#02x", r.ulawLinear, got, r.ulawReencoded)
		}
		if got := LinearToAlaw(r.alawLinear); got != r.alawReencoded {
			t.Errorf("LinearToAlaw(%d) = %#02x, reference %#02x", r.alawLinear, got, r.alawReencoded)
		}
		if ulawToAlaw[c] != r.ulawToAlaw || alawToUlaw[c] != r.alawToUlaw {
			t.Errorf("conversion tables at %#02x disagree with the functions", b)
		}
	}
}

// TestG711RoundTrip: every code word decodes to a level that encodes back
// to it. The one exception is µ-law's negative zero (0x7f): G.711 has two
// codes for 0 and the encoder gives the positive one (0xff).
func TestG711RoundTrip(t *testing.T) {
	for c := range 256 {
		b := byte(c)
		want := b
		if b == 0x7f {
			want = 0xff
		}
		if got := LinearToUlaw(UlawToLinear(b)); got != want {
			t.Errorf("µ-law %#02x -> %d -> %#02x", b, UlawToLinear(b), got)
		}
		if got := LinearToAlaw(AlawToLinear(b)); got != b {
			t.Errorf("A-law %#02x -> %d -> %#02x", b, AlawToLinear(b), got)
		}
	}
}

// TestG711Encode covers the whole linear range: each sample encodes to the
// code whose level is nearest among the levels of its segment, and the
// extremes clip.
func TestG711Encode(t *testing.T) {
	if got := LinearToUlaw(32767); got != 0x80 {
		t.Errorf("LinearToUlaw(max) = %#02x, want 0x80", got)
	}
	if got := LinearToUlaw(-32768); got != 0x00 {
		t.Errorf("LinearToUlaw(min) = %#02x, want 0x00", got)
	}
	if got := LinearToAlaw(32767); got != 0xaa {
		t.Errorf("LinearToAlaw(max) = %#02x, want 0xaa", got)
	}
	if got := LinearToAlaw(-32768); got != 0x2a {
		t.Errorf("LinearToAlaw(min) = %#02x, want 0x2a", got)
	}
	// Monotonic: a larger sample never decodes smaller.
	prevU, prevA := int16(-32768), int16(-32768)
	for v := -32768; v <= 32767; v++ {
		u, a := UlawToLinear(LinearToUlaw(int16(v))), AlawToLinear(LinearToAlaw(int16(v)))
		if u < prevU || a < prevA {
			t.Fatalf("not monotonic at %d: µ %d<%d or A %d<%d", v, u, prevU, a, prevA)
		}
		prevU, prevA = u, a
	}
}

func TestTableConvert(t *testing.T) {
	b := []byte{0xff, 0x00, 0x7f, 0x80}
	Conversion(PCMU, PCMA).Convert(b)
	for i, c := range []byte{0xff, 0x00, 0x7f, 0x80} {
		if b[i] != UlawToAlaw(c) {
			t.Errorf("Convert[%d] = %#02x, want %#02x", i, b[i], UlawToAlaw(c))
		}
	}
	if Conversion(PCMU, PCMU) != nil || Conversion(PCMA, TelephoneEvent) != nil {
		t.Error("Conversion gives a table where none is needed or none exists")
	}
}

func BenchmarkConvert160(b *testing.B) {
	buf := make([]byte, 160)
	t := Conversion(PCMU, PCMA)
	b.SetBytes(160)
	for b.Loop() {
		t.Convert(buf)
	}
}

// TestConvertLengths: every length converts every sample, in the unrolled
// part and the tail.
func TestConvertLengths(t *testing.T) {
	for n := range 20 {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(37 * i)
		}
		Conversion(PCMA, PCMU).Convert(b)
		for i, c := range b {
			if c != AlawToUlaw(byte(37*i)) {
				t.Fatalf("length %d: sample %d = %#02x, want %#02x", n, i, c, AlawToUlaw(byte(37*i)))
			}
		}
	}
}

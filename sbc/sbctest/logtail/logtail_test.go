package logtail

import (
	"fmt"
	"strings"
	"testing"
)

func TestTail(t *testing.T) {
	var tail Tail
	if s := tail.String(); s != "" {
		t.Errorf("empty tail: %q; want \"\"", s)
	}
	for i := range 12 {
		tail.Add(fmt.Sprint("line ", i))
	}
	tail.Add(strings.Repeat("x", 400))
	want := "; its last log lines:\n  line 3\n  line 4\n  line 5\n  line 6\n  line 7\n  line 8\n  line 9\n  line 10\n  line 11\n  " + strings.Repeat("x", 300)
	if s := tail.String(); s != want {
		t.Errorf("tail:\n%s\nwant:\n%s", s, want)
	}
}

// TestScan: a line too long for the scanner ends the scan, and the rest
// is read anyway.
func TestScan(t *testing.T) {
	r := strings.NewReader("a\nb\n" + strings.Repeat("x", 2<<20) + "\nc\n")
	var got []string
	Scan(r, func(line string) { got = append(got, line) })
	if strings.Join(got, ",") != "a,b" || r.Len() != 0 {
		t.Errorf("Scan got %q, left %d bytes; want a and b, nothing left", got, r.Len())
	}
}

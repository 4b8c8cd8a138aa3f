package messaging

import (
	"strings"
	"testing"
	"unicode/utf16"
)

func TestKeywordOf(t *testing.T) {
	for body, want := range map[string]Keyword{
		"STOP": OptOut, "stop": OptOut, "  Stop \n": OptOut, "CANCEL": OptOut, "quit": OptOut,
		"STOPALL": OptOut, "Unsubscribe": OptOut, "end": OptOut,
		"START": OptIn, " unstop ": OptIn,
		"Stop it": NoKeyword, "STOP!": NoKeyword, "": NoKeyword, "stopp": NoKeyword, "please stop": NoKeyword,
	} {
		if got := KeywordOf(body); got != want {
			t.Errorf("KeywordOf(%q) = %v; want %v", body, got, want)
		}
	}
}

func TestSegments(t *testing.T) {
	for _, tt := range []struct {
		body string
		n    int
		enc  Encoding
	}{
		{"", 1, GSM7},
		{strings.Repeat("a", 160), 1, GSM7},
		{strings.Repeat("a", 161), 2, GSM7},
		{strings.Repeat("a", 306), 2, GSM7},
		{strings.Repeat("a", 307), 3, GSM7},
		{strings.Repeat("€", 80), 1, GSM7}, // 160 septets: extension characters count twice
		{strings.Repeat("€", 81), 2, GSM7},
		{"Grüße aus Köln", 1, GSM7},              // ü, ö are in the alphabet; ß too
		{strings.Repeat("ç", 70), 1, UCS2},       // ç (lower case) is not: Ç is
		{strings.Repeat("a", 69) + "😀", 2, UCS2}, // an emoji is two UTF-16 units
		{strings.Repeat("日", 134), 2, UCS2},
		{strings.Repeat("日", 135), 3, UCS2},
	} {
		if n, enc := Segments(tt.body); n != tt.n || enc != tt.enc {
			t.Errorf("Segments(%.20q… %d bytes) = %d %s; want %d %s", tt.body, len(tt.body), n, enc, tt.n, tt.enc)
		}
	}
}

func TestSplit(t *testing.T) {
	for _, body := range []string{
		"short",
		strings.Repeat("a", 400),
		strings.Repeat("a", 152) + "€" + strings.Repeat("b", 200), // the € would straddle 153
		strings.Repeat("日", 66) + "😀" + strings.Repeat("x", 100),  // the emoji would straddle 67
	} {
		parts := Split(body)
		n, enc := Segments(body)
		if len(parts) != n || strings.Join(parts, "") != body {
			t.Errorf("Split(%d bytes): %d parts joining to the body %v; want %d", len(body), len(parts), strings.Join(parts, "") == body, n)
		}
		for i, p := range parts {
			size := len(utf16.Encode([]rune(p)))
			limit := 67
			if enc == GSM7 {
				size, _ = septets(p)
				limit = 153
			}
			if n > 1 && size > limit {
				t.Errorf("part %d of %d: %d units; want at most %d", i+1, n, size, limit)
			}
		}
	}
}

// A character never straddles two parts, so a text can take one part
// more than its length divided by a part's size.
func TestSegmentsCountParts(t *testing.T) {
	body := strings.Repeat("a", 152) + strings.Repeat("€", 77) // 152 + 154 = 306 septets = 2×153
	if n, _ := Segments(body); n != 3 {
		t.Fatalf("Segments = %d; want 3 (the first € starts part 2)", n)
	}
}

func BenchmarkSegments(b *testing.B) {
	body := strings.Repeat("Hello, world! ", 114) // 1596 GSM-7 characters
	for b.Loop() {
		Segments(body)
	}
}

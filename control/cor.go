package control

import "strings"

// E164 normalises the user part of a Request-URI or From to E.164: "+"
// and digits, with visual separators (RFC 3966: - . ( ) and spaces)
// dropped; "00" is taken as the international prefix, and digits alone as
// a number already in international form without its "+". ok is false
// for anything else (a name, a short code with letters).
func E164(user string) (string, bool) {
	if n, ok := plainE164(user); ok {
		return n, true
	}
	var b strings.Builder
	b.Grow(len(user) + 1)
	for i := 0; i < len(user); i++ {
		switch c := user[i]; {
		case c >= '0' && c <= '9':
			b.WriteByte(c)
		case c == '+' && b.Len() == 0 && i == strings.IndexByte(user, '+'):
		case c == '-' || c == '.' || c == '(' || c == ')' || c == ' ':
		default:
			return "", false
		}
	}
	d := b.String()
	d = strings.TrimPrefix(d, "00")
	if len(d) < 2 || len(d) > 15 || d[0] == '0' {
		return "", false
	}
	return "+" + d, true
}

// verdict is a class of restriction's answer: allowed or not, and the
// rule that decided, for the log.
type verdict struct {
	allowed bool
	rule    string
}

// classifier decides destinations for one class; built once per config.
type classifier struct {
	name          string
	home          string // "+1"
	international bool
	prefixes      map[string]bool // prefix -> allowed
	maxLen        int
	labels        map[string]string
}

func newClassifier(cl Class, home string, premium []string) *classifier {
	c := &classifier{name: cl.Name, home: "+" + home, international: cl.International,
		prefixes: map[string]bool{}, labels: map[string]string{}}
	set := func(p string, allow bool, label string) {
		if old, ok := c.prefixes[p]; ok && !old {
			return // deny wins a tie
		}
		c.prefixes[p], c.labels[p] = allow, label
		c.maxLen = max(c.maxLen, len(p))
	}
	if !cl.Premium {
		for _, p := range premium {
			set(p, false, "premium")
		}
	}
	for _, p := range cl.Allow {
		set(p, true, "allow")
	}
	for _, p := range cl.Deny {
		set(p, false, "deny")
	}
	return c
}

// check decides an E.164 destination: the longest matching prefix, else
// home country allowed and international as the class says.
func (c *classifier) check(num string) verdict {
	for n := min(len(num), c.maxLen); n >= 2; n-- {
		if allow, ok := c.prefixes[num[:n]]; ok {
			return verdict{allow, "class " + c.name + ": " + c.labels[num[:n]] + " " + num[:n]}
		}
	}
	if strings.HasPrefix(num, c.home) {
		return verdict{true, "class " + c.name + ": home country " + c.home}
	}
	if c.international {
		return verdict{true, "class " + c.name + ": international allowed"}
	}
	return verdict{false, "class " + c.name + ": international (outside " + c.home + ")"}
}

// plainE164 is E164's fast path for what carriers send most: "+" and
// digits (returned as is) or digits alone.
func plainE164(user string) (string, bool) {
	d := strings.TrimPrefix(user, "+")
	if len(d) < 2 || len(d) > 15 || d[0] == '0' {
		return "", false
	}
	for i := 0; i < len(d); i++ {
		if d[i] < '0' || d[i] > '9' {
			return "", false
		}
	}
	if len(d) < len(user) {
		return user, true
	}
	return "+" + d, true
}

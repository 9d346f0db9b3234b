package filter

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/dlclark/regexp2"
)

// pyRef compiles an expanded Python pattern with regexp2 only, keeping
// fail2ban's IPv6 lookbehind: the reference the RE2 translation must
// agree with.
func pyRef(tb testing.TB, expanded string) *Regex {
	tb.Helper()
	re, err := regexp2.Compile(toRegexp2(expanded), regexp2.None)
	if err != nil {
		tb.Fatalf("regexp2 compile %q: %v", expanded, err)
	}
	r := &Regex{expanded: expanded, re2: re}
	for _, n := range re.GetGroupNumbers() {
		if n >= len(r.names) {
			r.names = append(r.names, make([]string, n+1-len(r.names))...)
		}
		if name := re.GroupNameFromNumber(n); n > 0 && name != strconv.Itoa(n) {
			r.names[n] = name
		}
	}
	return r
}

func sameMatch(a Match, aok bool, b Match, bok bool) bool {
	if aok != bok {
		return false
	}
	if !aok {
		return true
	}
	if a.Start != b.Start || a.End != b.End {
		return false
	}
	ga, gb := a.Groups(), b.Groups()
	if len(ga) != len(gb) {
		return false
	}
	for k, v := range ga {
		if gb[k] != v {
			return false
		}
	}
	return true
}

var ip6Forms = []string{
	"::", "::1", "fe80::", "fe80::1", "2001:db8::", "2001:db8::1", "2001:db8:0:0:0:0:2:1",
	"2001:db8::2:1", "::ffff:192.0.2.1", "1:2:3:4:5:6:7:8", "1::8", "1:2:3:4:5:6:7::",
	"::2:3:4:5:6:7:8", "fe80::1%eth0", "[2001:db8::1]", "[::1]:22", "a:::b", ":::", "1:", ":1",
	"::ffff:", "2001:db8::/32", "gggg::1", "FE80::ABCD", "1:2:3:4:5:6:7:8:9",
}

// TestIPv6RewriteEquivalence shows that dropping fail2ban's (?<=:)
// lookbehind changes nothing: <IP6>, <ADDR>, <HOST> and <SUBNET> match the
// same text with the same groups under RE2 as fail2ban's originals do.
func TestIPv6RewriteEquivalence(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	inputs := append([]string(nil), ip6Forms...)
	for _, f := range ip6Forms {
		inputs = append(inputs, "from "+f+" port 22", "client "+f+":", "["+f+"]")
	}
	const alpha = "0123456789abcdefF:.[]/ x"
	for range 3000 {
		n := 1 + rng.IntN(24)
		var b strings.Builder
		for range n {
			b.WriteByte(alpha[rng.IntN(len(alpha))])
		}
		inputs = append(inputs, b.String())
	}
	for _, tag := range []string{"<IP6>", "<ADDR>", "<HOST>", "<SUBNET>", "^<IP6>$", "^<HOST>$", "host <ADDR>:\\d+"} {
		t.Run(tag, func(t *testing.T) {
			got, err := Compile(tag)
			if err != nil {
				t.Fatal(err)
			}
			if got.Engine() != "re2" {
				t.Fatalf("engine %s (%s), want re2", got.Engine(), got.Fallback())
			}
			ref := pyRef(t, got.Expanded())
			for _, s := range inputs {
				gm, gok := got.Match(s)
				rm, rok := ref.Match(s)
				if !sameMatch(gm, gok, rm, rok) {
					t.Errorf("%q: re2 %v %+v, python-like %v %+v", s, gok, gm.Groups(), rok, rm.Groups())
				}
			}
		})
	}
	// The real forms are found whole.
	ip6, _ := Compile("^<IP6>$")
	for _, s := range []string{"::", "::1", "fe80::", "2001:db8::", "2001:db8::2:1", "1:2:3:4:5:6:7:8", "1::8"} {
		m, ok := ip6.Match(s)
		if v, _ := m.Group("ip6"); !ok || v != s {
			t.Errorf("<IP6> on %q: %v %q", s, ok, v)
		}
	}
}

// TestUnicodeClasses checks that \d, \w and \s keep Python 3's Unicode
// meaning in RE2 patterns, in and out of character classes.
func TestUnicodeClasses(t *testing.T) {
	tests := []struct {
		pattern, input string
		match          bool
	}{
		{`^\d+$`, "١٢٣", true}, // Arabic-Indic digits
		{`^\d+$`, "½", false},  // No, not Nd
		{`^\w+$`, "Grüße_ǅ", true},
		{`^\w+$`, "x²", true}, // No is \w in Python
		{`^\w+$`, "a-b", false},
		{`^\s$`, "\u00a0", true},
		{`^\s$`, "\u3000", true},
		{`^\s$`, "\x1c", true},
		{`^\s$`, "\u200b", false}, // zero width space is not whitespace
		{`^\S+$`, "a\u2028", false},
		{`^[\w.]+$`, "müller.de", true},
		{`^[\d]+$`, "٣", true},
		{`^[\s]$`, "\u2009", true},
		{`^\D$`, "٣", false},
		{`^\W$`, "é", false},
		{`^a{,2}$`, "aa", true},
		{`^a{,2}$`, "aaa", false},
		{`^a{,}$`, "a{,}", true}, // not a quantifier in Python: literal
		{`^ab\Z`, "ab", true},
		{`^\u00e9$`, "é", true},
		{`^x(?#comment)y$`, "xy", true},
		{`((?i)abc)`, "ABC", true},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+"/"+tt.input, func(t *testing.T) {
			r, err := Compile(tt.pattern)
			if err != nil {
				t.Fatal(err)
			}
			if r.Engine() != "re2" {
				t.Errorf("engine %s (%s), want re2", r.Engine(), r.Fallback())
			}
			if _, ok := r.Match(tt.input); ok != tt.match {
				t.Errorf("match %q = %v, want %v", tt.input, ok, tt.match)
			}
		})
	}
}

// TestFallback checks the patterns only regexp2 can run, and the errors.
func TestFallback(t *testing.T) {
	tests := []struct {
		pattern, feature, input string
		match                   bool
		group, value            string
	}{
		{`^a(?=b)`, "lookahead", "ab", true, "", ""},
		{`^a(?!b)`, "lookahead", "ab", false, "", ""},
		{`(?<!x)y`, "lookbehind", "xy", false, "", ""},
		{`^(?P<w>\w+) (?P=w)$`, "backreference", "hé hé", true, "w", "hé"},
		{`^(\w)\1$`, "backreference", "aa", true, "", ""},
		{`^(?P<q>")?x(?(q)"|)$`, "conditional", `"x"`, true, "q", `"`},
		{`^(?P<q>")?x(?(q)"|)$`, "conditional", `"x`, false, "", ""},
		{`^(?>a+)b`, "atomic group", "aab", true, "", ""},
		// Python numbers groups in order; .NET numbers named groups last.
		{`^(?P<a>x)(y)\2\1$`, "backreference", "xyyx", true, "a", "x"},
		{`^(?P<a>x)(y)\2\1$`, "backreference", "xyxy", false, "", ""},
		{`^(?P<a>x)?(y)?(?(1)a|b)$`, "conditional", "xya", true, "a", "x"},
		{`^(?P<a>x)?(y)?(?(1)a|b)$`, "conditional", "yb", true, "", ""},
		{`^(?P<a>x)?(y)?(?(2)a|b)$`, "conditional", "xb", true, "a", "x"},
		{`^ab$`, "", "ab\n", false, "", ""}, // lines carry no newline; RE2 $ is \z
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			r, err := Compile(tt.pattern)
			if err != nil {
				t.Fatal(err)
			}
			if tt.feature == "" {
				if r.Engine() != "re2" {
					t.Fatalf("engine %s", r.Engine())
				}
			} else if r.Engine() == "re2" || r.Fallback() != tt.feature {
				// regexp2, or a rewrite on RE2 with regexp2 behind it
				t.Fatalf("engine %s fallback %q, want regexp2 %q", r.Engine(), r.Fallback(), tt.feature)
			}
			m, ok := r.Match(tt.input)
			if ok != tt.match {
				t.Fatalf("match %q = %v, want %v", tt.input, ok, tt.match)
			}
			if tt.group != "" {
				if v, _ := m.Group(tt.group); v != tt.value {
					t.Errorf("group %s = %q, want %q", tt.group, v, tt.value)
				}
			}
		})
	}
	for _, bad := range []string{"", "   ", "(", "a)(?<=b", "[z-a]", `\`} {
		if _, err := Compile(bad); err == nil {
			t.Errorf("Compile(%q): no error", bad)
		} else {
			t.Logf("Compile(%q): %v", bad, err)
		}
	}
}

// TestRuneOffsets checks that regexp2 matches report byte offsets.
func TestRuneOffsets(t *testing.T) {
	r, err := Compile(`(?<=é)<F-USER>\w+</F-USER>`)
	if err != nil {
		t.Fatal(err)
	}
	s := "ééabc"
	m, ok := r.Match(s)
	if !ok || s[m.Start:m.End] != "éabc" || m.Start != 2 {
		t.Fatalf("match %v [%d:%d]", ok, m.Start, m.End)
	}
	if u, _ := m.Group("user"); u != "éabc" {
		t.Errorf("user = %q", u)
	}
}

// TestConcurrentMatch runs one regex of each engine from many goroutines
// (meaningful under -race).
func TestConcurrentMatch(t *testing.T) {
	re2, err := Compile(`from <HOST> port \d+`)
	if err != nil {
		t.Fatal(err)
	}
	dn, err := Compile(`^Failed (?P<cond_inv>invalid user )?<F-USER>\S+</F-USER> from <HOST>(?(cond_inv)x|)`)
	if err != nil {
		t.Fatal(err)
	}
	lb, err := Compile(`(?<=^Failed )<F-USER>\S+</F-USER> from <HOST>`)
	if err != nil {
		t.Fatal(err)
	}
	if re2.Engine() != "re2" || dn.Engine() != "re2+regexp2" || lb.Engine() != "regexp2" {
		t.Fatalf("engines %s %s %s", re2.Engine(), dn.Engine(), lb.Engine())
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				line := "Failed root from 192.0.2." + strconv.Itoa((g*200+i)%256) + " port 22"
				for _, r := range []*Regex{re2, dn, lb} {
					m, ok := r.Match(line)
					if h, _ := m.Host(); !ok || !strings.HasPrefix(h, "192.0.2.") {
						t.Errorf("%s on %q: %v %q", r.Engine(), line, ok, h)
						return
					}
				}
			}
		})
	}
	wg.Wait()
}

// TestRegexp2WordClass checks that a regexp2 pattern's \w and \W are
// Python's (letters, numbers of every kind, and _), not .NET's, which
// also takes combining marks and connector punctuation and lacks the
// letter-like and other numbers.
func TestRegexp2WordClass(t *testing.T) {
	tests := []struct {
		pattern, text string
		want          bool
	}{
		{`^(?=x)x\w$`, "xé", true},       // a letter
		{`^(?=x)x\w$`, "x\u2167", true},  // Ⅷ, a letter-like number (Nl)
		{`^(?=x)x\w$`, "x\u0368", false}, // a combining mark (Mn)
		{`^(?=x)x\w$`, "x\u203f", false}, // ‿, a connector (Pc) other than _
		{`^(?=x)x\w$`, "x_", true},
		{`^(?=x)x\W$`, "x\u0368", true},
		{`^(?=x)x[\w.]$`, "x\u0368", false},
		{`^(?=x)x[\w.]$`, "x.", true},
	}
	for _, tt := range tests {
		r, err := Compile(tt.pattern)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := r.Match(tt.text); ok != tt.want {
			t.Errorf("%q on %q: %v, want %v (engine %s)", tt.pattern, tt.text, ok, tt.want, r.Engine())
		}
	}
}

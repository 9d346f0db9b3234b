package filter

import "testing"

// FuzzCompile checks that Compile never panics and that a pattern that
// compiles matches any input without panicking, with offsets and groups
// inside the input.
func FuzzCompile(f *testing.F) {
	for _, s := range []struct{ pattern, line string }{
		{`^Failed \S+ for <F-USER>.*?</F-USER> from <HOST>( port \d+)?$`, "Failed password for root from 192.0.2.1 port 22"},
		{`<SUBNET>`, "[2001:db8::/32]"},
		{`^<F-MLFID>\S+</F-MLFID> <F-CONTENT>.+</F-CONTENT>$`, "id content"},
		{`(?P<q>")?x(?(q)"|)`, `"x"`},
		{`a(?!b)(?<=a)\1`, "ab"},
		{`((?i)ab){,3}\Z`, "ABab"},
		{`[\w\s\d]+\b`, "é ١ x"},
		{`</F-X><F-ID/><F-PORT/>`, "a b"},
		{`(?#c)\u00e9[^]]`, "éx"},
		{`<SKIPLINES>`, "a\nb\n"},
	} {
		f.Add(s.pattern, s.line)
	}
	f.Fuzz(func(t *testing.T, pattern, line string) {
		r, err := Compile(pattern)
		if err != nil {
			return
		}
		m, ok := r.Match(line)
		if !ok {
			return
		}
		if m.Start < 0 || m.End < m.Start || m.End > len(line) {
			t.Fatalf("%s: match [%d:%d] outside %d bytes", r.Engine(), m.Start, m.End, len(line))
		}
		for _, v := range m.Groups() {
			if len(v) > len(line) {
				t.Fatalf("group longer than the line")
			}
		}
	})
}

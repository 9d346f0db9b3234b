package filter

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/edgeban/edgeban/internal/sharedtest"
)

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

// fuzzNow is the fixed time FuzzProcess's filters run at; the sample
// logs' dates (with no year) are read relative to it.
var fuzzNow = time.Date(2005, 6, 21, 16, 47, 0, 0, time.UTC)

// fuzzMaxLines bounds how many lines one FuzzProcess input feeds.
const fuzzMaxLines = 16

// fuzzResetLine starts each FuzzProcess input: a dated line no filter
// matches, fed maxlines times so that no earlier input's lines stay in a
// multi-line buffer. Its date is over a minute before fuzzNow, so it does
// not stand in for the date of the input's undated lines.
const fuzzResetLine = "Jun 21 16:40:00 edgeban-fuzz reset[1]: -"

type fuzzFilter struct {
	name string
	f    *Filter
	twin *Filter // a second filter fed the same lines, for determinism
}

// FuzzProcess feeds log lines to real filters: fail2ban's sshd (prefregex,
// mlfid, F-NOFAIL...) in normal and aggressive mode, a multi-line filter
// (zzz-sshd-obsolete-multiline with maxlines = 3: <SKIPLINES>,
// backreferences, so regexp2), the repository's own sshd and a literal
// regex. The input is split at "\n" into a short sequence of lines (so the
// fuzzer can build multi-line and mlfid sequences); an input holding "\n"
// is also fed whole, as one line, to the single-line filters. The filters
// are built once: each input starts with the multi-line cache expired
// (Clock moves an hour per input) and the buffers flushed.
//
// Properties checked for every failure: an id unless pending; the id (or
// Host when an F-ID differs) is the ip4 text as it is, or the ip6 text
// canonical and unmapped (Failure.ID's contract); Matches are whole lines
// fed in this input (a line without a date may carry the previous date's
// text before it, as fail2ban does), the current line last unless the
// failure is a helper match; for a failure without mlfid on a single-line
// filter, Matches is exactly the line. Two fresh filters fed the same
// lines give the same results.
func FuzzProcess(f *testing.F) {
	conf := sharedtest.Path(f, "fail2ban/config")
	testConf := sharedtest.Path(f, "fail2ban/fail2ban/tests/config/filter.d")
	logs := sharedtest.Path(f, "fail2ban/fail2ban/tests/files/logs")

	clock := fuzzNow
	cfg := Config{CheckAll: true, Now: func() time.Time { return fuzzNow }, Location: time.UTC,
		Clock: func() time.Time { return clock }}
	var filters []fuzzFilter
	for _, c := range []struct {
		name, dir, spec string
		maxLines        int
		twin            bool
	}{
		{"fail2ban sshd", conf, "sshd", 0, true},
		{"fail2ban sshd[mode=aggressive]", conf, "sshd[mode=aggressive]", 0, false},
		// maxlines = 10 costs ~0.6 ms a line with a full buffer (regexp2,
		// many failregexes); 3 lines keep an input under a millisecond.
		{"zzz-sshd-obsolete-multiline", "", filepath.Join(testConf, "zzz-sshd-obsolete-multiline.conf"), 3, false},
		{"edgeban sshd", filepath.Join("..", "..", "config"), "sshd", 0, true},
	} {
		def, err := Load(c.dir, c.spec, LoadOptions{})
		if err != nil {
			f.Fatalf("%s: %v", c.name, err)
		}
		ff := fuzzFilter{name: c.name}
		fc := cfg
		fc.MaxLines = c.maxLines
		if ff.f, err = New(def, fc); err != nil {
			f.Fatalf("%s: %v", c.name, err)
		}
		if c.twin {
			if ff.twin, err = New(def, fc); err != nil {
				f.Fatalf("%s: %v", c.name, err)
			}
		}
		filters = append(filters, ff)
	}
	// A literal filter: single-line, no prefregex and no mlfid (Matches
	// is then exactly the line), a <HOST> that may be a name (Resolve) and
	// an F-ID that differs from the address (Host).
	lit := Literal(`^(?:\S+ ){0,4}\S*sshd\[\d+\]: (?:Failed|Invalid|Did not) .*? from <HOST>(?: port \d+)?` + "\n" +
		`for (?:invalid user )?<F-ID>\S+</F-ID> from <HOST>`)
	lf, err := New(lit, cfg)
	if err != nil {
		f.Fatal(err)
	}
	lt, err := New(lit, cfg)
	if err != nil {
		f.Fatal(err)
	}
	filters = append(filters, fuzzFilter{name: "literal", f: lf, twin: lt})
	if filters[2].f.MaxLines() < 2 {
		f.Fatalf("%s: maxlines %d, want a multi-line filter", filters[2].name, filters[2].f.MaxLines())
	}

	// Seeds: fail2ban's sshd sample log, line by line and in runs of
	// consecutive lines, and crafted lines.
	b, err := os.ReadFile(filepath.Join(logs, "sshd"))
	if err != nil {
		f.Fatal(err)
	}
	var run []string
	flush := func() {
		if len(run) > 1 {
			f.Add(strings.Join(run[:min(len(run), 4)], "\n"))
		}
		run = run[:0]
	}
	for _, l := range strings.Split(string(b), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			flush()
			continue
		}
		f.Add(l)
		run = append(run, l)
	}
	flush()
	for _, s := range []string{
		"",
		"Jun 21 16:47:48 host sshd[1]: Failed password for invalid user root from 192.0.2.1 from 198.51.100.7 port 22 ssh2",
		"Jun 21 16:47:48 host sshd[1]: Failed password for invalid user x from 6.6.6.6 port 22 ssh2 from 192.0.2.1 port 22 ssh2",
		"Jun 21 16:47:48 host sshd[1]: Invalid user  from ::ffff:192.0.2.7 port 22",
		"Jun 21 16:47:48 host sshd[1]: Invalid user x from 2001:DB8:0:0::1 port 22",
		"Jun 21 16:47:48 host sshd[1]: Invalid user x from fe80::1%eth0 port 22",
		"Jun 21 16:47:48 host sshd[1]: Invalid user x from 001.002.003.004 port 22",
		"Jun 21 16:47:48 host sshd[1]: Invalid user x from 999.1.1.1 port 22",
		"Jun 21 16:47:48 host sshd[1]: Invalid user \xff\xfe\x00 from 192.0.2.1\r",
		"Jun 21 16:47:48 host sshd[1]: Connection closed by 192.0.2.1 port 22 [preauth]\nJun 21 16:47:49 host sshd[1]: Failed password for root from 198.51.100.7 port 22 ssh2",
		"Failed password for root from 192.0.2.1 port 22 ssh2",
		"Jun 21 16:47:48 host sshd[2]: Connection from 192.0.2.9 port 4242 on 10.0.0.1 port 22\nJun 21 16:47:49 host sshd[2]: Disconnecting: Too many authentication failures [preauth]",
		"Jun 21 16:47:48 host sshd[3]: Failed publickey for a from 192.0.2.3 port 1 ssh2\nJun 21 16:47:49 host sshd[3]: Failed publickey for b from 192.0.2.3 port 1 ssh2\nJun 21 16:47:50 host sshd[3]: Accepted publickey for b from 192.0.2.3 port 1 ssh2",
		"Jun 21 16:47:48 host sshd[1]: Failed password for root from 192.0.2.1 port 22 ssh2" + strings.Repeat(" ", 4096) + "x",
		strings.Repeat("Jun 21 16:47:48 host sshd[1]: ", 200) + "Invalid user x from 192.0.2.1",
	} {
		f.Add(s)
	}

	f.Fuzz(func(t *testing.T, in string) {
		clock = clock.Add(time.Hour) // expire every multi-line cache entry
		lines := strings.SplitN(in, "\n", fuzzMaxLines+1)
		if len(lines) > fuzzMaxLines {
			lines = lines[:fuzzMaxLines]
		}
		if len(lines) > 1 {
			lines = append(lines, in)
		}
		for _, ff := range filters {
			for range ff.f.MaxLines() {
				if r := ff.f.Process(fuzzResetLine); len(r.Failures) > 0 {
					t.Fatalf("%s: reset line gave %+v", ff.name, r.Failures)
				}
				if ff.twin != nil {
					ff.twin.Process(fuzzResetLine)
				}
			}
			fed := []string{fuzzResetLine}
			for _, line := range lines {
				if ff.f.MaxLines() > 1 && strings.Contains(line, "\n") {
					// Out of Process's contract, and as in fail2ban a
					// buffer's lines are found by counting "\n": the
					// failure in such a line gets no Matches, stays in the
					// buffer and is reported again with each later line.
					continue
				}
				fed = append(fed, line)
				r := ff.f.Process(line)
				if ff.twin != nil {
					if r2 := ff.twin.Process(line); !reflect.DeepEqual(r, r2) {
						t.Fatalf("%s: %q: two filters fed the same lines differ:\n%+v\n%+v", ff.name, line, r, r2)
					}
				}
				checkFuzzResult(t, ff.name, ff.f.MaxLines() > 1, line, fed, r)
			}
		}
	})
}

func checkFuzzResult(t *testing.T, name string, multi bool, line string, fed []string, r Result) {
	t.Helper()
	isFed := func(m string) bool {
		for _, l := range fed {
			if m == l || strings.HasSuffix(m, l) && m != "" && len(m) > len(l) {
				return true
			}
		}
		return false
	}
	for _, fl := range r.Failures {
		if !fl.Pending && fl.ID == "" {
			t.Fatalf("%s: %q: failure without an id: %+v", name, line, fl)
		}
		if fl.Pending && fl.ID != "" {
			t.Fatalf("%s: %q: pending failure with an id: %+v", name, line, fl)
		}
		if !fl.Pending {
			checkFuzzID(t, name, line, fl)
		}
		for _, m := range fl.Matches {
			if !isFed(m) {
				t.Fatalf("%s: %q: match %q is no line fed: %+v", name, line, m, fl)
			}
		}
		if fl.NoFail || fl.Pending {
			continue
		}
		if len(fl.Matches) == 0 {
			t.Fatalf("%s: %q: failure without matches: %+v", name, line, fl)
		}
		last := fl.Matches[len(fl.Matches)-1]
		if !multi && last != line && (r.DateFound || !strings.HasSuffix(last, line)) {
			t.Fatalf("%s: %q: last match is %q, not the line", name, line, last)
		}
		if _, ml := fl.Fields["mlfid"]; !multi && !ml && len(fl.Matches) != 1 {
			t.Fatalf("%s: %q: single-line failure with matches %q", name, line, fl.Matches)
		}
	}
}

// checkFuzzID checks Failure.ID's contract: the F-ID if the regex has
// one (Host then holds the address when it differs), else the address,
// ip4 then ip6, an ip4 text as it is and an ip6 text canonical with
// IPv4-mapped addresses unmapped, text that is not an address as it is.
func checkFuzzID(t *testing.T, name, line string, fl Failure) {
	t.Helper()
	var want string
	if v, ok := fl.Fields["ip4"]; ok {
		want = v
	} else if v, ok := fl.Fields["ip6"]; ok {
		want = v
		if a, err := netip.ParseAddr(v); err == nil && a.Zone() == "" && a.Is6() {
			want = a.Unmap().String()
		}
	} else {
		if fl.Resolve {
			if d, ok := fl.Fields["dns"]; !ok || d != fl.ID {
				t.Fatalf("%s: %q: resolve id %q but dns %q", name, line, fl.ID, d)
			}
		}
		return
	}
	if fl.Resolve {
		t.Fatalf("%s: %q: an address to resolve: %+v", name, line, fl)
	}
	if _, ok := fl.Fields["cidr"]; ok {
		return // masked to the network: not checked here
	}
	got := fl.ID
	if fid, ok := fl.Fields["fid"]; ok && fl.Host != "" {
		if fl.ID != fid {
			t.Fatalf("%s: %q: id %q, not the F-ID %q", name, line, fl.ID, fid)
		}
		got = fl.Host
	}
	if got != want {
		t.Fatalf("%s: %q: id %q (host %q), want %q from fields %v", name, line, fl.ID, fl.Host, want, fl.Fields)
	}
}

// rewritePatterns are patterns with a rewrite, for FuzzRewrite.
var rewritePatterns = []string{
	debianSSHDFailed,
	`^(?P<q>")?x(?(q)"|)$`,
	`^(?:(?P<a>x)|y)z(?(a)1|2)$`,
	`^u (?:(?! from ).)*? from <HOST>$`,
	`^User <F-USER>(?:(?! from ).)*?</F-USER> from <HOST>(?: port \d+)?(?:(?:(?! from ).)*)$`,
}

// FuzzRewrite checks that a pattern's rewrite on RE2 finds the match and
// the groups that regexp2 finds with the original pattern, on any line.
func FuzzRewrite(f *testing.F) {
	for _, s := range []string{
		"Failed password for invalid user x from 192.0.2.1 port 22 ssh2",
		"Failed password for invalid user x from 192.0.2.1 from 6.6.6.6 port 22 ssh2",
		"Failed publickey for root from 192.0.2.1 port 22 ssh2: RSA SHA256:x",
		"Failed none for u: x from 2001:db8::1 port 22 ssh2",
		`"x"`, "xz1", "yz2", "u a from b from 192.0.2.1",
		"User a from b from 192.0.2.1 port 1",
	} {
		for i := range rewritePatterns {
			f.Add(uint8(i), s)
		}
	}
	rs := make([]*Regex, len(rewritePatterns))
	refs := make([]*Regex, len(rewritePatterns))
	for i, p := range rewritePatterns {
		r, err := Compile(p)
		if err != nil {
			f.Fatal(err)
		}
		if r.Engine() != "re2+regexp2" {
			f.Fatalf("%q: engine %s", p, r.Engine())
		}
		rs[i], refs[i] = r, pyRef(f, r.Expanded())
	}
	f.Fuzz(func(t *testing.T, which uint8, line string) {
		i := int(which) % len(rs)
		if strings.Contains(line, "\n") || !utf8.ValidString(line) {
			return // lines carry no newline; regexp2 reads invalid UTF-8 its own way
		}
		gm, gok := rs[i].Match(line)
		rm, rok := refs[i].Match(line)
		if !sameMatch(gm, gok, rm, rok) {
			t.Fatalf("%q on %q: rewrite %v %v, regexp2 %v %v", rewritePatterns[i], line, gok, gm.Groups(), rok, rm.Groups())
		}
	})
}

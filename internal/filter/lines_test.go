package filter

import (
	"bufio"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// leadingDate strips the syslog and nginx-error timestamps the sample logs
// start with, as fail2ban's date detection would cut them out (the text
// around the date is joined).
var leadingDate = regexp.MustCompile(`^(?:[A-Z][a-z]{2} +\d+ \d\d:\d\d:\d\d(?:\.\d+)?|\d{4}/\d\d/\d\d \d\d:\d\d:\d\d)`)

type sampleLine struct {
	line       string
	host, user string
	hasUser    bool
}

// loadSamples reads a fail2ban sample log: the lines that follow a
// failJSON with "match": true and a host.
func loadSamples(tb testing.TB, filter string) []sampleLine {
	tb.Helper()
	p := filepath.Join(sharedDir(tb, "fail2ban/fail2ban/tests/files/logs"), filter)
	f, err := os.Open(p)
	if err != nil {
		tb.Fatalf("open sample log: %v", err)
	}
	defer f.Close()
	var out []sampleLine
	var pending map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		if j, ok := strings.CutPrefix(l, "# failJSON:"); ok {
			pending = nil
			_ = json.Unmarshal([]byte(j), &pending)
			continue
		}
		if strings.HasPrefix(l, "#") || pending == nil {
			continue
		}
		js := pending
		pending = nil
		if js["match"] != true {
			continue
		}
		host, _ := js["host"].(string)
		if host == "" {
			continue
		}
		s := sampleLine{line: l, host: host}
		s.user, s.hasUser = js["user"].(string)
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		tb.Fatalf("read sample log: %v", err)
	}
	return out
}

// compiledFilter is a filter's prefregex and failregexes for one option set.
type compiledFilter struct {
	pref  *Regex
	fails []*Regex
}

func compileFilter(tb testing.TB, es []compatEntry, filter string, opts map[string]string) compiledFilter {
	tb.Helper()
	var cf compiledFilter
	for _, e := range es {
		if e.Filter != filter || !maps.Equal(e.Options, opts) {
			continue
		}
		r, err := Compile(e.Source)
		if err != nil {
			tb.Fatalf("%s: %v", entryName(e), err)
		}
		switch e.Kind {
		case "prefregex":
			cf.pref = r
		case "failregex":
			cf.fails = append(cf.fails, r)
		}
	}
	if len(cf.fails) == 0 {
		tb.Fatalf("no failregex for %s %v", filter, opts)
	}
	return cf
}

// TestSampleLines runs single log lines of fail2ban's samples through the
// prefregex and the first matching failregex, and checks the host and
// user groups against the samples' failJSON. Lines that need more than one
// line, other options or other date formats do not match here and are
// counted, not failed: the full conformance test belongs to a later layer.
func TestSampleLines(t *testing.T) {
	es := loadCompat(t)
	for _, tc := range []struct {
		filter     string
		opts       map[string]string
		minChecked int
	}{
		{"sshd", map[string]string{"mode": "aggressive"}, 60},
		{"nginx-http-auth", map[string]string{"mode": "aggressive"}, 8},
		{"postfix", map[string]string{"mode": "aggressive"}, 30},
	} {
		t.Run(tc.filter, func(t *testing.T) {
			cf := compileFilter(t, es, tc.filter, tc.opts)
			checked, skipped := 0, 0
			for _, s := range loadSamples(t, tc.filter) {
				loc := leadingDate.FindStringIndex(s.line)
				if loc == nil {
					skipped++
					continue
				}
				buf := s.line[:loc[0]] + s.line[loc[1]:]
				var pm Match
				content := buf
				if cf.pref != nil {
					m, ok := cf.pref.Match(buf)
					if !ok {
						skipped++
						continue
					}
					pm = m
					content, _ = m.Group("content")
				}
				var fm Match
				var fr *Regex
				for _, r := range cf.fails {
					if m, ok := r.Match(content); ok {
						fm, fr = m, r
						break
					}
				}
				matched := fr != nil
				host, ok := fm.Host()
				if !ok {
					host, ok = pm.Host()
				}
				if !matched || !ok {
					skipped++
					continue
				}
				checked++
				if host != s.host {
					t.Errorf("%q: host %q, want %q", s.line, host, s.host)
				}
				// Only where the failregex has a user group: the samples
				// may name a user the regexes of this version do not take.
				if s.hasUser && (fr.HasGroup("user") || fr.HasGroup("alt_user")) {
					user, _ := fm.Group("user")
					if alt, ok := fm.Group("alt_user"); ok && user == "" {
						user = alt
					}
					if user != s.user {
						t.Errorf("%q: user %q, want %q", s.line, user, s.user)
					}
				}
			}
			t.Logf("%s: %d lines checked, %d left to the full conformance test", tc.filter, checked, skipped)
			if checked < tc.minChecked {
				t.Errorf("only %d lines checked, want at least %d", checked, tc.minChecked)
			}
		})
	}
}

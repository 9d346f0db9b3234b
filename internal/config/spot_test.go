package config

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
)

// compatEntry is one regex of ../shared/fail2ban/analysis/filter-regex-go-compat.json.
// Its Source is the regex after fail2ban's interpolation AND its
// substitution of custom <tags> (only the built-in <HOST>, <F-...> etc.
// are left), so it can be compared with this layer's output only where
// that has no custom tags left.
type compatEntry struct {
	Filter  string            `json:"filter"`
	Options map[string]string `json:"options"`
	Kind    string            `json:"kind"`
	Index   int               `json:"index"`
	Source  string            `json:"source"`
}

func loadCompat(t *testing.T) []compatEntry {
	t.Helper()
	p := sharedDir(t, "analysis") + "/filter-regex-go-compat.json"
	b, err := os.ReadFile(p)
	if err != nil {
		t.Skipf("needs %s: %v", p, err)
	}
	var entries []compatEntry
	if err := json.Unmarshal(b, &entries); err != nil {
		t.Fatal(err)
	}
	return entries
}

func TestSSHDPrefregex(t *testing.T) {
	dir := sharedDir(t, "config")
	var want string
	for _, e := range loadCompat(t) {
		if e.Filter == "sshd" && e.Kind == "prefregex" && len(e.Options) == 0 {
			want = e.Source
		}
	}
	if want == "" {
		t.Fatal("no sshd prefregex in the compat JSON")
	}
	c, err := Read(dir, "filter.d/sshd")
	if err != nil {
		t.Fatal(err)
	}
	got := mustGet(t, c, "Definition", "prefregex")
	// %(__prefix_line)s is common.conf's "<lt_<logtype>/__prefix_line>", a
	// tag for the next layer; everything around it is final.
	const tag = "<lt_<logtype>/__prefix_line>"
	const wantOurs = "^<F-MLFID>" + tag + "</F-MLFID>(?:(?:error|fatal): (?:PAM: )?)?<F-CONTENT>.+</F-CONTENT>$"
	if got != wantOurs {
		t.Fatalf("prefregex\n got %q\nwant %q", got, wantOurs)
	}
	before, after, _ := strings.Cut(got, tag)
	if !strings.HasPrefix(want, before) || !strings.HasSuffix(want, after) {
		t.Errorf("prefregex around the tag %q ... %q does not match fail2ban's %q", before, after, want)
	}
}

// builtinTag matches the tags fail2ban leaves in the compat JSON's Source.
var builtinTag = regexp.MustCompile(`^(/?F-[A-Za-z0-9_-]+|HOST|ADDR|IP4|IP6|DNS|CIDR|SUBNET|SKIPLINES)$`)

var anyTag = regexp.MustCompile(`<([^<>\s]+)>`)

// TestFilterRegexesMatchFail2ban compares every prefregex, failregex and
// ignoreregex of the stock filters (default options) with fail2ban's,
// wherever this layer leaves no custom tag to substitute.
func TestFilterRegexesMatchFail2ban(t *testing.T) {
	dir := sharedDir(t, "config")
	configs := map[string]*Config{}
	compared, skipped := 0, 0
	for _, e := range loadCompat(t) {
		if len(e.Options) != 0 {
			continue
		}
		c, ok := configs[e.Filter]
		if !ok {
			var err error
			if c, err = Read(dir, "filter.d/"+e.Filter); err != nil {
				// zzz-* test filters live in fail2ban/tests/config.
				if c, err = Read(sharedDir(t, "fail2ban/tests/config"), "filter.d/"+e.Filter); err != nil {
					t.Errorf("%s: %v", e.Filter, err)
					continue
				}
			}
			configs[e.Filter] = c
		}
		v, err := c.Get("Definition", e.Kind)
		if err != nil {
			t.Errorf("%s %s: %v", e.Filter, e.Kind, err)
			continue
		}
		// A custom tag may stand for several lines, so only values free
		// of them can be compared line by line.
		custom := false
		for _, m := range anyTag.FindAllStringSubmatch(v, -1) {
			if !builtinTag.MatchString(m[1]) {
				custom = true
			}
		}
		if custom {
			skipped++
			continue
		}
		var lines []string
		for _, l := range strings.Split(v, "\n") {
			if l != "" {
				lines = append(lines, l)
			}
		}
		if e.Index >= len(lines) {
			t.Errorf("%s %s[%d]: only %d lines", e.Filter, e.Kind, e.Index, len(lines))
			continue
		}
		got := lines[e.Index]
		compared++
		if got != e.Source {
			t.Errorf("%s %s[%d]:\n got %q\nwant %q", e.Filter, e.Kind, e.Index, got, e.Source)
		}
	}
	t.Logf("compared %d regexes exactly, %d left for tag substitution", compared, skipped)
	if compared < 80 {
		t.Errorf("compared only %d regexes", compared)
	}
}

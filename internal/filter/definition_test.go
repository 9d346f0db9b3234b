package filter

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// TestLoadErrors checks that a filter that cannot be used is refused at
// load time with the file, the line, the option and the place in the
// pattern.
func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name, filter string
		want         []string // all must be in the error
	}{
		{"neither engine", "[Definition]\nfailregex = ^ok <HOST>$\n            ^bad (<HOST>\n", []string{"filter.d/f.conf:2", `"failregex"`, "pattern 2", "at offset 5"}},
		{"no failure id", "[Definition]\nfailregex = ^just text$\n", []string{"filter.d/f.conf:2", "no failure-id group"}},
		{"bad prefregex", "[Definition]\nprefregex = ^(?P<x\nfailregex = <HOST>\n", []string{"filter.d/f.conf:2", `"prefregex"`}},
		{"bad maxlines", "[Definition]\nfailregex = <HOST>\nmaxlines = zero\n", []string{"filter.d/f.conf:3", `"maxlines"`}},
		{"bad datepattern", "[Definition]\nfailregex = <HOST>\ndatepattern = ^(unclosed %%Y\n", []string{"filter.d/f.conf:3", `"datepattern"`}},
		{"self reference", "[Definition]\nfailregex = <a>\n[Init]\na = x<a>\n", []string{"refers to itself"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.MkdirAll(filepath.Join(dir, "filter.d"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "filter.d", "f.conf"), []byte(tc.filter), 0o644); err != nil {
				t.Fatal(err)
			}
			def, err := Load(dir, "f", LoadOptions{})
			if err == nil {
				_, err = New(def, Config{})
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestDefinitionOptions checks the options read from fail2ban's sshd
// filter: journalmatch groups, modes through parameters, and a filter
// given as a path.
func TestDefinitionOptions(t *testing.T) {
	dir := sharedDir(t, "fail2ban/config")
	def, err := Load(dir, "sshd", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(def.JournalMatch) == 0 || !strings.HasPrefix(def.JournalMatch[0][0], "_SYSTEMD_UNIT=sshd") {
		t.Errorf("journalmatch %q", def.JournalMatch)
	}
	for _, g := range def.JournalMatch {
		for _, term := range g {
			if term == "+" || !regexp.MustCompile(`^[A-Z_]+=\S+$`).MatchString(term) {
				t.Errorf("journalmatch term %q", term)
			}
		}
	}
	aggr, err := Load(dir, "sshd[mode=aggressive]", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if aggr.Mode != "aggressive" || len(aggr.FailRegex) <= len(def.FailRegex) {
		t.Errorf("mode %q: %d failregexes, normal has %d", aggr.Mode, len(aggr.FailRegex), len(def.FailRegex))
	}
	byPath, err := Load("/nonexistent", filepath.Join(dir, "filter.d", "sshd.conf"), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(byPath.FailRegex, def.FailRegex) {
		t.Error("a filter read by path differs from the same filter read by name")
	}
	if got := shellSplitMust(t, `_SYSTEMD_UNIT=a.service + "_COMM=b c" 'x\y'`); !reflect.DeepEqual(got, []string{"_SYSTEMD_UNIT=a.service", "+", "_COMM=b c", `x\y`}) {
		t.Errorf("shellSplit: %q", got)
	}
	if _, err := shellSplit(`"unterminated`); err == nil {
		t.Error("an unterminated quote is accepted")
	}
}

func shellSplitMust(t *testing.T, s string) []string {
	t.Helper()
	w, err := shellSplit(s)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

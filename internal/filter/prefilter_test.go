package filter

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp/syntax"
	"strings"
	"testing"
	"time"

	"github.com/edgeban/edgeban/internal/config"
)

// TestPrefiltersAreSound runs every failregex, ignoreregex and prefregex
// of fail2ban's filters (and ours) over every line of the sample corpus,
// and checks that whenever a regex matches, its prefilters let the text
// through (literals, first bytes, candidate bit), and that the shortened
// prefregex finds the same groups as the full one.
func TestPrefiltersAreSound(t *testing.T) {
	root := sharedDir(t, "fail2ban")
	logs := filepath.Join(root, "fail2ban/tests/files/logs")
	var texts []string
	ents, err := os.ReadDir(logs)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(logs, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if l != "" && !strings.HasPrefix(l, "#") {
				texts = append(texts, strings.TrimSuffix(l, "\r"))
			}
		}
	}
	checked := 0
	dirs := []string{filepath.Join(root, "config"), ownConfig}
	for _, dir := range dirs {
		ents, err := os.ReadDir(filepath.Join(dir, "filter.d"))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			name, ok := strings.CutSuffix(e.Name(), ".conf")
			if !ok || strings.HasSuffix(name, "common") {
				continue
			}
			cfg, err := config.Read(dir, "filter.d/"+name)
			if err != nil {
				t.Fatal(err)
			}
			def, err := FromConfig(cfg, name, map[string]string{})
			if err != nil {
				t.Fatal(err)
			}
			def.MaxLines = 1
			f, err := New(def, Config{CheckAll: true, Location: time.UTC})
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range texts {
				text := splitText(line, f.dates.Detect(line))
				cand := f.candidates(line)
				content := text
				if f.pref != nil {
					m, ok := f.pref.Match(text)
					if f.prefFast != nil {
						m2, ok2 := f.prefFast.Match(text)
						if ok2 {
							m2.extendTo("content", text)
						}
						if ok != ok2 || (ok && !reflect.DeepEqual(m.Groups(), m2.Groups())) {
							t.Errorf("%s: shortened prefregex differs on %q", name, text)
						}
					}
					if ok && (f.prefLits != nil && !mayMatch(f.prefLits, text)) {
						t.Errorf("%s: prefregex literals %q reject %q", name, f.prefLits, text)
					}
					if ok {
						if c, _ := m.Group("content"); c != "" {
							content = c
						}
					}
				}
				regs := append(append([]*compiled(nil), f.fail...), f.ignore...)
				for i, r := range regs {
					for _, s := range []string{text, content} {
						if _, ok := r.Match(s); !ok {
							continue
						}
						checked++
						if !mayMatch(r.lits, s) {
							t.Errorf("%s regex %d: literals %q reject %q", name, i, r.lits, s)
						}
						if !prefixOK(r.prefix, s) {
							t.Errorf("%s regex %d: first-byte check rejects %q", name, i, s)
						}
						// The line may lack the literal only where the date
						// was cut out; the scan then checks joinable.
						if f.cands != nil && cand&(1<<i) == 0 && !f.cands.joinable(line, f.dateReach) {
							t.Errorf("%s regex %d: not a candidate for %q", name, i, line)
						}
					}
				}
			}
		}
	}
	if checked < 1000 {
		t.Fatalf("only %d matches checked", checked)
	}
	t.Logf("%d matches checked", checked)
}

// TestRequiredLiterals checks the literal sets taken from patterns: joined
// across capture groups, small classes and short alternations, bounded in
// number, and never joined across a back-reference (which relaxPython
// turns into any text).
func TestRequiredLiterals(t *testing.T) {
	tests := []struct {
		pattern string
		python  bool // a regexp2 pattern, relaxed first
		want    []string
	}{
		{`^Received (?P<x>disconnect) from \d+`, false, []string{"Received disconnect from "}},
		{`^[aA]uthentication (?:failure|error) for (?P<user>.*)`, false,
			[]string{"uthentication failure for ", "uthentication error for "}},
		{`^Connection (?:closed|reset) (?:by|from) \S+`, false,
			[]string{"Connection closed by ", "Connection closed from ", "Connection reset by ", "Connection reset from "}},
		// 5 × 4 texts are too many: the longest set before the cut wins.
		{`x foo(?:aa|bb|cc|dd|ee)(?:11|22|33|44)z`, false, []string{"x fooaa", "x foobb", "x foocc", "x foodd", "x fooee"}},
		// A class of more than four characters is no exact text.
		{`^abc[a-e]def`, false, []string{"abc"}},
		{`^\s+ab\s+`, false, nil}, // too short to be worth it
		{`^(?P<code>\d+): error:(?P=code):SSL routines`, true, []string{":SSL routines"}},
		{`^(\w+) said (?<=d )hello \1 again`, true, []string{" said hello "}},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			p := tt.pattern
			if tt.python {
				p = relaxPython(p)
			}
			re, err := syntax.Parse(p, syntax.Perl)
			if err != nil {
				t.Fatal(err)
			}
			got := requiredLiterals(re.Simplify())
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("literals %q, want %q", got, tt.want)
			}
		})
	}
}

package filter

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRE2AgreesWithReference runs every shipped regex that Compile puts on
// RE2 against every line of its filter's sample log, and compares the match
// and its named groups with the untranslated pattern run by regexp2 (which,
// like Python, has lookbehind, a Unicode \b and Unicode classes).
func TestRE2AgreesWithReference(t *testing.T) {
	es := loadCompat(t)
	logs := sharedDir(t, "fail2ban/fail2ban/tests/files/logs")
	lines := map[string][]string{}
	compared := 0
	for _, e := range es {
		r, err := Compile(e.Source)
		if err != nil {
			t.Fatalf("%s: %v", entryName(e), err)
		}
		if r.Engine() != "re2" {
			continue
		}
		ls, ok := lines[e.Filter]
		if !ok {
			ls = readSampleLog(t, filepath.Join(logs, e.Filter))
			lines[e.Filter] = ls
		}
		ref := pyRef(t, r.Expanded())
		for _, l := range ls {
			inputs := []string{l}
			if loc := leadingDate.FindStringIndex(l); loc != nil {
				inputs = append(inputs, l[:loc[0]]+l[loc[1]:])
			}
			for _, s := range inputs {
				gm, gok := r.Match(s)
				rm, rok := ref.Match(s)
				compared++
				if !sameMatch(gm, gok, rm, rok) {
					t.Errorf("%s on %q: re2 %v %v, reference %v %v", entryName(e), s, gok, gm.Groups(), rok, rm.Groups())
				}
			}
		}
	}
	t.Logf("%d (regex, line) pairs agree", compared)
}

// readSampleLog returns the non-comment lines of a sample log, or none if
// the filter has no sample log.
func readSampleLog(tb testing.TB, path string) []string {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if l := sc.Text(); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

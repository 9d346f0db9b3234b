package filter

import (
	"path/filepath"
	"strings"
	"testing"
)

// debianSSHDFailed is the "Failed" failregex of Debian's sshd.conf
// (fail2ban 1.0.2), expanded: two conditionals and two tempered dots,
// the pattern the rewrite exists for.
const debianSSHDFailed = `^Failed (?:(?P<nofail>publickey)|\S+) for (?P<cond_inv>invalid user )?<F-USER>(?P<cond_user>\S+)|(?(cond_inv)(?:(?! from ).)*?|[^:]+)</F-USER> from <HOST>(?: (?:port \d+|on \S+)){0,2}(?: ssh\d*)?(?(cond_user): |(?:(?:(?! from ).)*)$)`

func TestRewriteForms(t *testing.T) {
	tests := []struct {
		pattern string
		ok      bool
		checks  int
	}{
		{debianSSHDFailed, true, 3},
		{`^(?P<q>")?x(?(q)"|)$`, true, 0},
		{`^(?:(?P<a>x)|y)z(?(a)1|2)$`, true, 0},
		{`^u (?:(?! from ).)*? from (?P<h>\S+)$`, true, 1},
		{`^u (?:(?! from ).)*$`, true, 1},
		// Not exact on RE2: left to regexp2.
		{`^(?:(?P<a>x)?y)*(?(a)1|2)$`, false, 0}, // a group set in an earlier turn
		{`^u (?:(?!x).)*? y`, false, 0},          // the lazy dot not followed by its literal
		{`^u (?:(?! from ).)* y$`, false, 0},     // the greedy dot not followed by $
		{`^u (?:(?![a-z]).)*$`, false, 0},        // a look-ahead that is no literal
		{`^a(?=b)`, false, 0},
		{`(?<!x)y`, false, 0},
		{`^(\w)\1$`, false, 0},
		{`^(?P<a>x)?(?(1)a|b)$`, false, 0}, // a conditional on a group number
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			p := strings.ReplaceAll(ExpandTags(tt.pattern, Options{}), reIP6, reIP6RE2)
			out, checks, ok := rewritePython(p)
			if ok != tt.ok || len(checks) != tt.checks {
				t.Fatalf("rewrite: ok %v, %d checks (%q); want %v, %d", ok, len(checks), out, tt.ok, tt.checks)
			}
			r, err := Compile(tt.pattern)
			if err != nil {
				t.Fatal(err)
			}
			if want := map[bool]string{true: "re2+regexp2", false: "regexp2"}[ok]; r.Engine() != want {
				t.Errorf("engine %s, want %s", r.Engine(), want)
			}
		})
	}
}

// rewriteInputs is, for a line and for what follows each ": " in it (the
// message, as a prefregex would leave it), the text itself and the text
// with pieces that the rewritten patterns' conditions and checks turn on
// inserted at each word start: a second " from ", a ": ", "invalid user "
// and so on.
func rewriteInputs(line string) []string {
	texts := []string{line}
	for i := strings.Index(line, ": "); i >= 0; {
		texts = append(texts, line[i+2:])
		j := strings.Index(line[i+2:], ": ")
		if j < 0 {
			break
		}
		i += 2 + j
	}
	inserts := []string{" from 6.6.6.6 ", " from ", ": ", "invalid user ", " port 22", " on x", " ssh2", "publickey "}
	var out []string
	for _, text := range texts {
		out = append(out, text, text+": x", text+" from 6.6.6.6", text+" from ")
		for i := 0; i < len(text); i++ {
			if i > 0 && text[i-1] != ' ' {
				continue
			}
			for _, ins := range inserts {
				out = append(out, text[:i]+ins+text[i:])
			}
		}
	}
	return out
}

// TestRewriteAgreesWithRegexp2 runs every fail2ban regex that has a
// rewrite against the sample lines of every filter (dates cut out, and
// with pieces inserted that drive the rewrite's branches and checks) and
// compares each match and its groups with regexp2's on the original
// pattern.
func TestRewriteAgreesWithRegexp2(t *testing.T) {
	es := loadCompat(t)
	logs := sharedDir(t, "fail2ban/fail2ban/tests/files/logs")
	all, err := filepath.Glob(filepath.Join(logs, "*"))
	if err != nil {
		t.Fatal(err)
	}
	var corpus []string
	for _, p := range all {
		for _, l := range readSampleLog(t, p) {
			if loc := leadingDate.FindStringIndex(l); loc != nil {
				l = l[:loc[0]] + l[loc[1]:]
			}
			corpus = append(corpus, l)
		}
	}
	type source struct {
		name, pattern string
		own           []string // the filter's own lines
	}
	sources := []source{{name: "debian sshd Failed", pattern: debianSSHDFailed, own: readSampleLog(t, filepath.Join(logs, "sshd"))}}
	for _, e := range es {
		sources = append(sources, source{name: entryName(e), pattern: e.Source, own: readSampleLog(t, filepath.Join(logs, e.Filter))})
	}
	rewritten, compared, fallbacks := 0, 0, 0
	for _, src := range sources {
		r, err := Compile(src.pattern)
		if err != nil {
			t.Fatalf("%s: %v", src.name, err)
		}
		if r.Engine() != "re2+regexp2" {
			continue
		}
		rewritten++
		ref := pyRef(t, r.Expanded())
		inputs := corpus
		for _, l := range src.own {
			if loc := leadingDate.FindStringIndex(l); loc != nil {
				l = l[:loc[0]] + l[loc[1]:]
			}
			inputs = append(inputs, rewriteInputs(l)...)
		}
		for _, s := range inputs {
			if _, _, sure := r.rw.match(s); !sure {
				fallbacks++
			}
			gm, gok := r.Match(s)
			rm, rok := ref.Match(s)
			compared++
			if !sameMatch(gm, gok, rm, rok) {
				t.Errorf("%s on %q: rewrite %v %v, regexp2 %v %v", src.name, s, gok, gm.Groups(), rok, rm.Groups())
			}
		}
	}
	if rewritten < 5 {
		t.Fatalf("only %d patterns rewritten", rewritten)
	}
	if fallbacks == 0 {
		t.Fatal("no input made a check fail: the fallback is untested")
	}
	t.Logf("%d rewritten patterns, %d (pattern, line) pairs agree, %d sent to regexp2 by a check", rewritten, compared, fallbacks)
}

package datetime

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pyDiffScript prints, for every line of argv[2] and every regex of the
// default-date-templates.json at argv[1], where Python's re finds the date
// (group 1) and the whole match, in UTF-8 byte offsets.
const pyDiffScript = `
import json, re, sys
tpls = [re.compile(t["regex"]) for t in json.load(open(sys.argv[1]))]
lines = open(sys.argv[2], encoding="utf-8").read().split("\n")[:-1]
b = lambda s: len(s.encode())
for i, l in enumerate(lines):
    for j, r in enumerate(tpls):
        m = r.search(l)
        if m:
            print(i, j, b(l[:m.start(1)]), b(l[:m.end(1)]), b(l[:m.start()]), b(l[:m.end()]))
`

// TestDefaultTemplatesAgainstPython compares, line by line, where each
// default template's Go regex finds a date with where fail2ban's Python
// regex (from default-date-templates.json) finds it, over the sample log
// lines and variants of them (prefixed, cut, with non-ASCII letters).
func TestDefaultTemplatesAgainstPython(t *testing.T) {
	if testing.Short() {
		t.Skip("slow; skipped with -short")
	}
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("needs python3 to run fail2ban's regexes")
	}
	shared := sharedDir(t)
	logs := filepath.Join(shared, "fail2ban", "tests", "files", "logs")
	entries, err := os.ReadDir(logs)
	if err != nil {
		t.Skipf("needs fail2ban's sample logs: %v", err)
	}
	var lines []string
	for _, de := range entries {
		if de.IsDir() {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(logs, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(raw), "\n") {
			if strings.HasPrefix(l, "#") || strings.TrimSpace(l) == "" {
				continue
			}
			l = strings.ReplaceAll(l, "\r", "")
			lines = append(lines, l, "x"+l, "[ "+l, "é "+l, l[len(l)/3:], l[:len(l)/2])
		}
	}
	dir := t.TempDir()
	linesFile := filepath.Join(dir, "lines.txt")
	if err := os.WriteFile(linesFile, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "-c", pyDiffScript,
		filepath.Join(shared, "analysis", "default-date-templates.json"), linesFile)
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("python3 failed: %v", err)
	}
	want := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		want[sc.Text()] = true
	}
	// The JSON was generated in 2026: %ExY is 20[012]\d then.
	tpls := defaultTemplates(time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
	got, bad := 0, 0
	for i, l := range lines {
		for j, tp := range tpls {
			m, ok := tp.find(l)
			if !ok {
				continue
			}
			got++
			k := fmt.Sprintf("%d %d %d %d %d %d", i, j, m.start, m.end, m.pyStart, m.pyEnd)
			if !want[k] {
				bad++
				if bad <= 20 {
					t.Errorf("template #%d on %q: Go [%d:%d] (match [%d:%d]) not as Python", j, l, m.start, m.end, m.pyStart, m.pyEnd)
				}
			}
			delete(want, k)
		}
	}
	for k := range want {
		bad++
		if bad <= 40 {
			t.Errorf("Python found %s (line, template, date, match) that Go did not", k)
		}
	}
	t.Logf("%d lines x %d templates: %d matches compared, %d differences", len(lines), len(tpls), got, bad)
}

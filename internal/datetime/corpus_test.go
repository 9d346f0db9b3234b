package datetime

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	reBefore  = regexp.MustCompile(`(?m)^before\s*=\s*(.+)$`)
	reOptTag  = regexp.MustCompile(`^<(\w+?)_<(\w+)>/datepattern>$`)
	reSectRef = regexp.MustCompile(`^%\((\w+)/datepattern\)s$`)
)

// iniSections is a small ad-hoc reading of a filter's INI files (its own
// and those it includes with before =): section -> key -> value, with
// continuation lines joined by newlines. It is not fail2ban's reader.
func iniSections(dir, name string, into map[string]map[string]string, depth int) {
	raw, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil || depth > 4 {
		return
	}
	if m := reBefore.FindStringSubmatch(string(raw)); m != nil {
		for _, inc := range strings.Fields(m[1]) {
			iniSections(dir, inc, into, depth+1)
		}
	}
	lines := strings.Split(string(raw), "\n")
	section := ""
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.HasPrefix(l, "[") {
			section = strings.Trim(strings.TrimSpace(l), "[]")
			continue
		}
		if l == "" || l[0] == ' ' || l[0] == '\t' || l[0] == '#' || l[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		vals := []string{strings.TrimSpace(v)}
		for i+1 < len(lines) && len(lines[i+1]) > 0 && (lines[i+1][0] == ' ' || lines[i+1][0] == '\t') {
			i++
			if c := strings.TrimSpace(lines[i]); !strings.HasPrefix(c, "#") {
				vals = append(vals, c)
			}
		}
		if into[section] == nil {
			into[section] = map[string]string{}
		}
		into[section][strings.TrimSpace(k)] = strings.TrimSpace(strings.Join(vals, "\n"))
	}
}

// filterDatePattern returns the datepattern of filter name with the
// filter options opts (as a test's filterOptions line sets them), with %%
// unescaped; "" when it sets none. Tags like <lt_<logtype>/datepattern>
// and references like %(lt_file/datepattern)s are resolved.
func filterDatePattern(dir, name string, opts map[string]any) string {
	secs := map[string]map[string]string{}
	iniSections(dir, name, secs, 0)
	option := func(k string) string {
		if v, ok := opts[k].(string); ok {
			return v
		}
		for _, s := range []string{"Definition", "Init", "DEFAULT"} {
			if v, ok := secs[s][k]; ok {
				return v
			}
		}
		return ""
	}
	val := ""
	for _, s := range []string{"Init", "Definition", "DEFAULT"} {
		if v, ok := secs[s]["datepattern"]; ok {
			val = v
			break
		}
	}
	for range 4 {
		if m := reOptTag.FindStringSubmatch(val); m != nil {
			val = secs[m[1]+"_"+option(m[2])]["datepattern"]
			continue
		}
		if m := reSectRef.FindStringSubmatch(val); m != nil {
			val = secs[m[1]]["datepattern"]
			continue
		}
		break
	}
	return strings.ReplaceAll(val, "%%", "%")
}

// TestCorpus runs the date detection over fail2ban's sample logs and
// compares each time with the "time" of the line's failJSON, which
// fail2ban's samplestestcase.py checks for the lines a filter matches
// ("match": true) with TZ=Europe/Paris and now = 1124013600.
func TestCorpus(t *testing.T) {
	shared := sharedDir(t)
	opts := testOptions(t)
	loc := opts.Location
	logs := filepath.Join(shared, "fail2ban", "tests", "files", "logs")
	entries, err := os.ReadDir(logs)
	if err != nil {
		t.Skipf("needs fail2ban's sample logs: %v", err)
	}
	var pass, total int
	for _, de := range entries {
		if de.IsDir() {
			continue
		}
		name := de.Name()
		newDetector := func(fopts map[string]any) (*Detector, string) {
			for _, dir := range []string{
				filepath.Join(shared, "config", "filter.d"),
				filepath.Join(shared, "fail2ban", "tests", "config", "filter.d"),
			} {
				if _, err := os.Stat(filepath.Join(dir, name+".conf")); err != nil {
					continue
				}
				if p := filterDatePattern(dir, name+".conf", fopts); p != "" {
					d, err := New(p, opts)
					if err != nil {
						t.Errorf("%s: datepattern %q: %v", name, p, err)
						break
					}
					return d, p
				}
			}
			return NewDefault(opts), ""
		}
		d, pattern := newDetector(nil)
		f, err := os.Open(filepath.Join(logs, name))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var (
			pending  map[string]any
			last     time.Time
			haveLast bool
			lineNo   int
		)
		for sc.Scan() {
			lineNo++
			line := sc.Text()
			if rest, ok := strings.CutPrefix(line, "# failJSON:"); ok {
				pending = nil
				if err := json.Unmarshal([]byte(strings.TrimSpace(rest)), &pending); err != nil {
					t.Errorf("%s:%d: failJSON: %v", name, lineNo, err)
				}
				continue
			}
			if rest, ok := strings.CutPrefix(line, "# filterOptions:"); ok {
				var v any
				if err := json.Unmarshal([]byte(strings.TrimSpace(rest)), &v); err != nil {
					t.Errorf("%s:%d: filterOptions: %v", name, lineNo, err)
				}
				if l, ok := v.([]any); ok && len(l) > 0 {
					v = l[0]
				}
				fopts, _ := v.(map[string]any)
				d, pattern = newDetector(fopts)
				continue
			}
			if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
				continue
			}
			fd := pending
			pending = nil
			got, _, _, ok := d.Find(line)
			if ok {
				last, haveLast = got, true
			} else if haveLast {
				got, ok = last, true // fail2ban keeps the last date for a line without one
			}
			want, isStr := fd["time"].(string)
			if fd == nil || !isStr || fd["match"] != true {
				continue
			}
			total++
			w, exact, err := parseJSONTime(want, loc)
			if err != nil {
				t.Errorf("%s:%d: time %q: %v", name, lineNo, want, err)
				continue
			}
			g := got
			if !exact {
				g = g.Truncate(time.Second) // fail2ban drops %f of strptime dates
			}
			switch {
			case !ok:
				t.Errorf("%s:%d: no date found, want %s in %q", name, lineNo, want, line)
			case !g.Equal(w):
				t.Errorf("%s:%d: got %s, want %s (datepattern %q) in %q", name, lineNo,
					got.In(loc).Format("2006-01-02T15:04:05.999999"), want, pattern, line)
			default:
				pass++
			}
		}
		f.Close()
	}
	t.Logf("corpus: %d of %d sample times match", pass, total)
}

var reJSONTime = regexp.MustCompile(`^(\d{4})-(\d{1,2})-(\d{1,2})T(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d{1,6}))?$`)

// parseJSONTime parses a failJSON time as samplestestcase.py does, with
// Python's strptime "%Y-%m-%dT%H:%M:%S" (one-digit fields accepted) or
// with ".%f", as a local time in loc; exact reports a fraction.
func parseJSONTime(s string, loc *time.Location) (t time.Time, exact bool, err error) {
	m := reJSONTime.FindStringSubmatch(s)
	if m == nil {
		return time.Time{}, false, fmt.Errorf("not a failJSON time")
	}
	n := make([]int, 7)
	for i := 1; i <= 6; i++ {
		n[i], _ = strconv.Atoi(m[i])
	}
	ns := 0
	if m[7] != "" {
		exact = true
		ns, _ = strconv.Atoi((m[7] + "000000000")[:9])
	}
	return time.Date(n[1], time.Month(n[2]), n[3], n[4], n[5], n[6], ns, loc), exact, nil
}

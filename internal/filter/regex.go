package filter

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

// MatchTimeout bounds one regexp2 match (RE2 matches run in linear time and
// need no bound). A match that times out counts as no match.
const MatchTimeout = time.Second

// Regex is a compiled fail2ban regex: tags expanded, the Python pattern
// translated once, matched by Go's regexp when RE2 can express the pattern
// and by regexp2 otherwise. It is safe for concurrent use.
type Regex struct {
	source   string
	expanded string
	feature  string // Python-only feature that forced regexp2, or ""
	re       *regexp.Regexp
	re2      *regexp2.Regexp
	// rw, for some regexp2 patterns, is an exact RE2 form that answers
	// most texts (see rewrite.go); re2 answers the rest.
	rw    *rewrite
	names []string // group names in group-number order (index 0 unused)
	// multiline is Python's re.MULTILINE: ^ and $ at every line.
	multiline bool
}

// Compile expands fail2ban's regex tags in pattern and compiles the result
// with fail2ban's defaults (usedns = yes, single line).
func Compile(pattern string) (*Regex, error) {
	return CompileOptions(pattern, Options{})
}

// CompileOptions is Compile with explicit Options.
func CompileOptions(pattern string, opts Options) (*Regex, error) {
	expanded := ExpandTags(pattern, opts)
	if strings.TrimSpace(expanded) == "" {
		return nil, errors.New("filter: cannot compile an empty regex")
	}
	r := &Regex{source: pattern, expanded: expanded, multiline: opts.Multiline}
	py := r.python()
	feature, pos := pyOnly(py)
	var reErr error
	if feature == "" {
		goPat, err := toRE2(py)
		if err == nil {
			re, err2 := regexp.Compile(goPat)
			if err2 == nil {
				r.re = re
				r.names = re.SubexpNames()
				return r, nil
			}
			err = err2
		}
		reErr = err
		feature = "rejected by RE2"
	}
	rOpts := regexp2.None
	if opts.Multiline {
		rOpts |= regexp2.Multiline
	}
	// Keep fail2ban's original IPv6 lookbehind: regexp2 has lookbehind.
	dotnet := toRegexp2(expanded)
	re2, err := regexp2.Compile(dotnet, rOpts)
	if err != nil {
		if reErr != nil {
			return nil, fmt.Errorf("filter: pattern %q%s: %w (RE2: %v)", pattern, sourcePos(pattern, reErr), err, reErr)
		}
		return nil, fmt.Errorf("filter: compile %q (%s at offset %d): %w", expanded, feature, pos, err)
	}
	re2.MatchTimeout = MatchTimeout
	r.re2 = re2
	r.feature = feature
	r.rw = newRewrite(py)
	nums := re2.GetGroupNumbers()
	hi := 0
	for _, n := range nums {
		hi = max(hi, n)
	}
	r.names = make([]string, hi+1)
	for _, n := range nums {
		if name := re2.GroupNameFromNumber(n); n > 0 && name != fmt.Sprint(n) {
			r.names[n] = name
		}
	}
	return r, nil
}

// python returns the pattern as RE2 runs it, in Python's syntax: the
// expanded pattern with fail2ban's IPv6 lookbehind rewritten, and the
// multi-line flag.
func (r *Regex) python() string {
	py := strings.ReplaceAll(r.expanded, reIP6, reIP6RE2)
	if r.multiline {
		py = "(?m)" + py
	}
	return py
}

// shape parses the pattern with ASCII classes (see shapeRE2), for the
// analyses of its literals and structure.
func (r *Regex) shape() (*syntax.Regexp, error) {
	p, err := shapeRE2(r.python())
	if err != nil {
		return nil, err
	}
	return syntax.Parse(p, syntax.Perl)
}

// sourcePos names where in the pattern as written (before its tags are
// expanded) a Go regexp error lies, as " at offset N", or "" when it
// cannot be told.
func sourcePos(pattern string, err error) string {
	var se *syntax.Error
	if !errors.As(err, &se) {
		return ""
	}
	switch se.Code {
	case syntax.ErrMissingParen, syntax.ErrUnexpectedParen:
		// The first group never closed, or the first ")" closing none.
		var open []int
		unopened := -1
		scanPy(pattern, 0, func(i int) bool {
			switch pattern[i] {
			case '(':
				open = append(open, i)
			case ')':
				if len(open) == 0 {
					unopened = i
					return false
				}
				open = open[:len(open)-1]
			}
			return true
		})
		if unopened >= 0 {
			return fmt.Sprintf(" at offset %d", unopened)
		}
		if len(open) > 0 {
			return fmt.Sprintf(" at offset %d", open[0])
		}
	case syntax.ErrMissingBracket:
		at := -1
		for i := 0; i < len(pattern) && at < 0; i++ {
			switch pattern[i] {
			case '\\':
				i++
			case '[':
				if end := classEnd(pattern, i); end == len(pattern) && pattern[end-1] != ']' {
					at = i
				} else {
					i = end - 1
				}
			}
		}
		if at >= 0 {
			return fmt.Sprintf(" at offset %d", at)
		}
	}
	if se.Expr != "" {
		if i := strings.Index(pattern, se.Expr); i >= 0 {
			return fmt.Sprintf(" at offset %d", i)
		}
	}
	return ""
}

// Source returns the pattern as given to Compile.
func (r *Regex) Source() string { return r.source }

// Expanded returns the pattern after tag expansion, as fail2ban's
// Regex.getRegex returns it (Python syntax).
func (r *Regex) Expanded() string { return r.expanded }

// Engine reports which engine matches: "re2" (Go's regexp), "regexp2",
// or "re2+regexp2" (a rewritten form on Go's regexp, and regexp2 for the
// texts it cannot decide).
func (r *Regex) Engine() string {
	switch {
	case r.re != nil:
		return "re2"
	case r.rw != nil:
		return "re2+regexp2"
	}
	return "regexp2"
}

// Fallback names the Python-only feature that made Compile choose regexp2,
// or returns "" for RE2 patterns.
func (r *Regex) Fallback() string { return r.feature }

// HasGroup reports whether the pattern has a named group name (fail2ban's
// name, such as "ip4", "user" or "fid").
func (r *Regex) HasGroup(name string) bool {
	for _, n := range r.names {
		if n == name && n != "" {
			return true
		}
	}
	return false
}

// Match is one successful search. Start and End are byte offsets into the
// searched string.
type Match struct {
	Start, End int
	names      []string
	groups     []group // by group number (0 unused)
}

// group is a capture group's text, and whether it took part in a match.
type group struct {
	text string
	set  bool
}

// Group returns the text of the named group and whether it took part in
// the match (Python's None is "", false).
func (m Match) Group(name string) (string, bool) {
	for i, n := range m.names {
		if n == name && m.groups[i].set {
			return m.groups[i].text, true
		}
	}
	return "", false
}

// extendTo makes the named group run to the end of s, the text m was
// found in.
func (m *Match) extendTo(name, s string) {
	for i, n := range m.names {
		if n == name && m.groups[i].set {
			// The group ends where the match ends.
			start := m.End - len(m.groups[i].text)
			m.groups[i].text = s[start:]
			m.End = len(s)
			return
		}
	}
}

// Groups returns the named groups that took part in the match, by
// fail2ban's names.
func (m Match) Groups() map[string]string {
	g := make(map[string]string)
	m.eachGroup(func(name, value string) { g[name] = value })
	return g
}

// eachGroup calls fn with each named group that took part in the match,
// in group order.
func (m Match) eachGroup(fn func(name, value string)) {
	for i, n := range m.names {
		if n != "" && m.groups[i].set {
			fn(n, m.groups[i].text)
		}
	}
}

// Host returns the matched host as fail2ban's getHost does: the first of
// the ip4, ip6 and dns groups that took part.
func (m Match) Host() (string, bool) {
	for _, n := range []string{"ip4", "ip6", "dns"} {
		if v, ok := m.Group(n); ok {
			return v, true
		}
	}
	return "", false
}

// Match searches s (like Python's re.search) and returns the leftmost
// match. s is one log line without its trailing newline: Python's `$`
// (end, or before a final "\n") and Go's (end) then agree.
func (r *Regex) Match(s string) (Match, bool) {
	if r.re != nil {
		loc := r.re.FindStringSubmatchIndex(s)
		if loc == nil {
			return Match{}, false
		}
		m := Match{Start: loc[0], End: loc[1], names: r.names, groups: make([]group, len(r.names))}
		for i := 1; i < len(r.names); i++ {
			if a := loc[2*i]; a >= 0 {
				m.groups[i] = group{s[a:loc[2*i+1]], true}
			}
		}
		return m, true
	}
	if r.rw != nil {
		if m, ok, sure := r.rw.match(s); sure {
			return m, ok
		}
	}
	rm, err := retrySpurious(MatchTimeout, func() (*regexp2.Match, error) { return r.re2.FindStringMatch(s) })
	if err != nil || rm == nil {
		return Match{}, false
	}
	conv := runeToByte(s)
	m := Match{Start: conv(rm.Index), End: conv(rm.Index + rm.Length), names: r.names, groups: make([]group, len(r.names))}
	for i := 1; i < len(r.names); i++ {
		if r.names[i] == "" {
			continue
		}
		if g := rm.GroupByNumber(i); g != nil && len(g.Captures) > 0 {
			m.groups[i] = group{g.String(), true}
		}
	}
	return m, true
}

// retrySpurious runs find, a regexp2 match bounded by budget, again when
// it fails well before the budget has passed. regexp2 checks its timeout
// against a shared clock that a goroutine advances every 100 ms; when the
// process is starved that clock can jump ahead in one step, and a match
// that has barely started then reports a timeout (regexp2 v1.12.0 closes
// only part of that race). Such a timeout would silently turn a match into
// a miss, so it is retried; a real one, after half the budget or more,
// stands.
func retrySpurious[T any](budget time.Duration, find func() (T, error)) (T, error) {
	for try := 0; ; try++ {
		start := time.Now()
		v, err := find()
		if err == nil || try == 3 || time.Since(start) >= budget/2 {
			return v, err
		}
	}
}

// runeToByte converts regexp2's rune offsets into byte offsets of s.
func runeToByte(s string) func(int) int {
	return func(n int) int {
		b := 0
		for ; n > 0 && b < len(s); n-- {
			_, w := utf8.DecodeRuneInString(s[b:])
			b += w
		}
		return b
	}
}

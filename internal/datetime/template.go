package datetime

import (
	"cmp"
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Template flags, as fail2ban's DateTemplate sets them.
const (
	flagWordEnd   = 1
	flagWordBegin = 2
	flagLineEnd   = 4
	flagLineBegin = 8
)

// kind is how a template turns its match into a time.
type kind int

const (
	kindPattern   kind = iota // strptime fields
	kindEpoch                 // seconds since the epoch, optional fraction
	kindLongEpoch             // seconds, milliseconds or microseconds since the epoch
	kindTAI64N                // @ and 24 hex digits
)

// Python-side fragments fail2ban adds around a template's regex.
const (
	pyLineBegin = `^(?:\W{0,2})?`
	pyWordBegin = `(?=^|\b|\W)`
	pyWordEnd   = `(?=\b|\W|$)`
)

var (
	reNoWordBoundBeg = regexp.MustCompile(`^\(*(?:\(\?\w+\))?(?:\^|\(*\*\*|\(\?:\^)`)
	reLineBoundBeg   = regexp.MustCompile(`^(?:\(\?\w+\))?(?:\^|\(\?:\^(?:[^|]|$))`)
	reDelWordBoundB  = regexp.MustCompile(`^\(*(?:\(\?\w+\))?\(*\*\*`)
	reGroupSplit     = regexp.MustCompile(`^((?:\(\?\w+\))?\^?(?:\(\?\w+\))?)(.*?)(\$?)$`)
	reEpochPattern   = regexp.MustCompile(`(?i)\{L?EPOCH\}`)
)

// A template finds a date of one form in a line.
type template struct {
	name    string
	pattern string // the strptime pattern it was made from, "" for EPOCH and TAI64N
	pyRegex string // the regex as fail2ban builds it (Python syntax)
	re      *regexp.Regexp
	weight  float64
	flags   int
	kind    kind
	// group indexes in re: the Python match's start and end markers, the
	// date (fail2ban's group 1), and the strptime fields by name.
	markBeg, markEnd, dateGroup int
	fieldGroups                 []fieldGroup
	// cut, when above 0, is one more than the longest match of a regex
	// anchored at the line start: it needs to see only that many bytes.
	cut int
	// cutASCII is the same in characters: when that many first bytes of
	// a line are ASCII, the regex needs to see only those.
	cutASCII int
	// reachStart and reachEnd bound where the date (dateGroup) starts
	// and ends, -1 when unbounded; lead holds the bytes that may come
	// before it (see dateReach).
	reachStart, reachEnd int
	lead                 byteSet
	loc                  *time.Location
}

// match is one match of a template in a line.
type match struct {
	start, end     int // the date, fail2ban's group 1
	pyStart, pyEnd int // fail2ban's match.start() and match.end()
	idx            []int
}

// find searches line for the template's date.
func (t *template) find(line string) (match, bool) {
	return t.findIn(line, 0, len(line))
}

// findIn searches line[lo:hi] for the template's date, as Python's
// pattern.search(line, pos, endpos) with the text before lo hidden (so
// only a date found at lo+1 or later is as Python would find it).
func (t *template) findIn(line string, lo, hi int) (match, bool) {
	hi = min(hi, len(line))
	if lo < 0 || hi < lo {
		return match{}, false
	}
	if lo == 0 && t.cut > 0 && hi > t.cut {
		hi = t.cut
	}
	if lo == 0 && t.cutASCII > 0 && hi > t.cutASCII && isASCII(line[:t.cutASCII]) {
		// On ASCII text a character is a byte.
		hi = t.cutASCII
	}
	idx := t.re.FindStringSubmatchIndex(line[lo:hi])
	if idx == nil {
		return match{}, false
	}
	if lo > 0 {
		for i, v := range idx {
			if v >= 0 {
				idx[i] = v + lo
			}
		}
	}
	m := match{idx: idx, start: idx[2*t.dateGroup], end: idx[2*t.dateGroup+1]}
	m.pyStart, m.pyEnd = idx[2*t.markBeg], idx[2*t.markEnd]
	if m.pyStart < 0 || m.pyEnd < 0 {
		// A marker in a branch that did not take part (a datepattern
		// such as "()|"): the whole match stands for it.
		m.pyStart, m.pyEnd = idx[0], idx[1]
	}
	if m.start < 0 {
		m.start, m.end = m.pyStart, m.pyStart
	}
	return m, true
}

// time converts a match to a time.
// fieldGroup lists the regex groups that capture one strptime field.
type fieldGroup struct {
	name   byte
	groups []int
}

func (t *template) time(line string, m match, loc *time.Location, now time.Time) (time.Time, bool) {
	date := line[m.start:m.end]
	switch t.kind {
	case kindEpoch, kindLongEpoch:
		return epochTime(date, t.kind == kindLongEpoch)
	case kindTAI64N:
		if len(date) < 17 {
			return time.Time{}, false
		}
		sec, err := strconv.ParseInt(date[2:17], 16, 64)
		if err != nil {
			return time.Time{}, false
		}
		return time.Unix(sec, 0), true
	}
	var buf [16]field
	f := buf[:0]
	for _, fg := range t.fieldGroups {
		for _, g := range fg.groups {
			if m.idx[2*g] >= 0 {
				if v := line[m.idx[2*g]:m.idx[2*g+1]]; v != "" {
					f = append(f, field{fg.name, v})
				}
				break
			}
		}
	}
	if t.loc != nil {
		loc = t.loc
	}
	return toTime(f, loc, now)
}

// epochTime parses seconds since the epoch with an optional fraction; in
// the long form a 13-15 digit number is milliseconds and a 16+ digit one
// without a dot microseconds, as fail2ban's DateEpoch.getDate.
func epochTime(v string, long bool) (time.Time, bool) {
	scale := int64(1)
	v = asciiDigits(v)
	if long && len(v) >= 13 {
		if len(v) >= 16 && !strings.Contains(v, ".") {
			scale = 1000000
		} else {
			scale = 1000
		}
	}
	v = asciiDigits(v)
	intPart, frac, _ := strings.Cut(v, ".")
	n, err := strconv.ParseInt(intPart, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	// nanoseconds of the fraction
	fn := int64(0)
	if frac != "" {
		fn, err = strconv.ParseInt((frac + "000000000")[:9], 10, 64)
		if err != nil {
			return time.Time{}, false
		}
	}
	sec, rem := n/scale, n%scale
	return time.Unix(sec, rem*(int64(time.Second)/scale)+fn/scale), true
}

// newPatternTemplate builds a strptime pattern template as fail2ban's
// DatePatternRegex does: a leading {^LN-BEG} anchors it at the line begin
// (after at most two non-word characters), {UNB} drops the word
// boundaries, and otherwise the regex is wrapped in word boundaries unless
// it starts with ^ or ** (resp. ends with $, \b, \s or **).
func newPatternTemplate(pattern string, now time.Time) (*template, error) {
	wordBegin, wordEnd := "word", true
	p := pattern
	switch {
	case strings.HasPrefix(p, "{^LN-BEG}"):
		p = p[len("{^LN-BEG}"):]
		wordBegin = "start"
	case strings.HasPrefix(p, "{UNB}"):
		p = p[len("{UNB}"):]
		wordBegin, wordEnd = "", false
	}
	regex, name, alpha := expandDirectives(p, now)
	if alpha {
		regex = "(?iu)" + regex
	}
	t := &template{name: name, pattern: pattern, weight: 1, kind: kindPattern}
	t.setRegex(regex, wordBegin, wordEnd)
	if err := t.compile(); err != nil {
		return nil, fmt.Errorf("date pattern %q: %w", pattern, err)
	}
	return t, nil
}

// setRegex wraps regex in boundaries and a group, as fail2ban's
// DateTemplate.setRegex; wordBegin is "" (none), "word" or "start".
func (t *template) setRegex(regex, wordBegin string, wordEnd bool) {
	regex = strings.TrimSpace(regex)
	boundBegin := wordBegin != "" && !reNoWordBoundBeg.MatchString(regex)
	boundEnd := wordEnd && !noWordBoundEnd(regex)
	if !hasPlainGroup(regex) {
		regex = reGroupSplit.ReplaceAllString(regex, "${1}(${2})${3}")
	}
	t.flags = 0
	if boundBegin {
		if wordBegin == "start" {
			t.flags |= flagLineBegin
			flagsPrefix := ""
			if strings.HasPrefix(regex, "(?iu)") {
				flagsPrefix, regex = "(?iu)", regex[len("(?iu)"):]
			}
			regex = flagsPrefix + pyLineBegin + regex
			if !strings.HasPrefix(t.name, "{^LN-BEG}") {
				t.name = "{^LN-BEG}" + t.name
			}
		} else {
			t.flags |= flagWordBegin
			flagsPrefix := ""
			if strings.HasPrefix(regex, "(?iu)") {
				flagsPrefix, regex = "(?iu)", regex[len("(?iu)"):]
			}
			regex = flagsPrefix + pyWordBegin + regex
		}
	}
	if boundEnd {
		t.flags |= flagWordEnd
		regex += pyWordEnd
	}
	if reLineBoundBeg.MatchString(regex) {
		t.flags |= flagLineBegin
	}
	if lineBoundEnd(regex) {
		t.flags |= flagLineEnd
	}
	regex = reDelWordBoundB.ReplaceAllStringFunc(regex, func(s string) string { return strings.ReplaceAll(s, "**", "") })
	if trimmed := strings.TrimRight(regex, ")"); strings.HasSuffix(trimmed, "**") && !strings.HasSuffix(trimmed, `\**`) {
		regex = trimmed[:len(trimmed)-2] + regex[len(trimmed):]
	}
	t.pyRegex = regex
}

// noWordBoundEnd reports whether regex ends so that fail2ban adds no word
// end boundary: with $ (or "$)"), \b, \s, or ** followed by parentheses.
func noWordBoundEnd(regex string) bool {
	escapedAt := func(i int) bool { return i > 0 && regex[i-1] == '\\' }
	trimmed := strings.TrimRight(regex, ")")
	if strings.HasSuffix(trimmed, "**") && !escapedAt(len(trimmed)-2) {
		return true
	}
	for _, suf := range []string{"$)", "$", `\b`, `\s`} {
		if strings.HasSuffix(regex, suf) && !escapedAt(len(regex)-len(suf)) {
			return true
		}
	}
	return false
}

// lineBoundEnd reports whether regex ends with $ (or "$)") not preceded by
// a backslash or a bar.
func lineBoundEnd(regex string) bool {
	for _, suf := range []string{"$)", "$"} {
		if strings.HasSuffix(regex, suf) {
			i := len(regex) - len(suf)
			return i == 0 || (regex[i-1] != '\\' && regex[i-1] != '|')
		}
	}
	return false
}

// hasPlainGroup reports whether regex has a capturing group that is not
// named: a "(" not escaped, not followed by "?" and not right after "(?".
func hasPlainGroup(regex string) bool {
	for i := 0; i < len(regex); i++ {
		if regex[i] != '(' {
			continue
		}
		if i > 0 && regex[i-1] == '\\' {
			continue
		}
		if i >= 2 && regex[i-2:i] == "(?" {
			continue
		}
		if i+1 < len(regex) && regex[i+1] == '?' {
			continue
		}
		return true
	}
	return false
}

// compile translates the template's Python regex to Go and compiles it.
func (t *template) compile() error {
	goRE, err := translate(t.pyRegex)
	if err != nil {
		return err
	}
	re, err := regexp.Compile(goRE)
	if err != nil {
		return fmt.Errorf("compile %q: %w", goRE, err)
	}
	t.re = re
	t.markBeg, t.dateGroup, t.markEnd = 1, 2, re.NumSubexp()
	t.measure()
	t.fieldGroups = nil
	for i, n := range re.SubexpNames() {
		// Directives capture under their one-letter name; other names
		// (a datepattern's own groups) carry no date field.
		if len(n) != 1 || n[0] == '_' || n[0] >= 128 {
			continue
		}
		found := false
		for j := range t.fieldGroups {
			if t.fieldGroups[j].name == n[0] {
				t.fieldGroups[j].groups = append(t.fieldGroups[j].groups, i)
				found = true
			}
		}
		if !found {
			t.fieldGroups = append(t.fieldGroups, fieldGroup{name: n[0], groups: []int{i}})
		}
	}
	// toTime reads the fields in the order of their names.
	slices.SortFunc(t.fieldGroups, func(a, b fieldGroup) int { return cmp.Compare(a.name, b.name) })
	return nil
}

// measure sets cut, cutASCII and the date's reach from the compiled
// regex; dateGroup must be set.
func (t *template) measure() {
	t.cut, t.cutASCII = 0, 0
	p, err := syntax.Parse(t.re.String(), syntax.Perl)
	if err != nil {
		t.reachStart, t.reachEnd = -1, -1
		return
	}
	p = p.Simplify()
	if w, r := anchoredWidth(p); w >= 0 {
		t.cut, t.cutASCII = w+1, r+1
	}
	t.reachStart, t.reachEnd, t.lead = dateReach(p, t.dateGroup)
}

// epochRE and longEpochRE are the numbers EPOCH and LEPOCH match.
const (
	epochRE     = `\d{10,11}\b(?:\.\d{3,6})?`
	longEpochRE = `\d{10,11}(?:\d{3}(?:\.\d{1,6}|\d{3})?)?`
)

// newEpochTemplate builds fail2ban's DateEpoch template. Its Python regex
// uses look-behinds ("[" at line start, "audit(") and conditionals whose
// constraints cancel out (an unset conditional matches empty), so in Go the
// number may start at the line begin, after "[" at the line begin or after
// "audit(" at a word start.
func newEpochTemplate(lineBegin, long bool, name string) (*template, error) {
	num := epochRE
	k := kindEpoch
	if long {
		num, k = longEpochRE, kindLongEpoch
	}
	t := &template{name: name, weight: 1, kind: k}
	var goRE string
	if lineBegin {
		t.flags = flagLineBegin | flagWordEnd
		t.pyRegex = pyLineBegin + `((?P<square>(?<=^\[))?` + num + `)(?(square)(?=\]))` + pyWordEnd
		goRE = unicodeClasses(`()^(?:\W{0,2})?(` + num + `)()(?:\b|\W|$)`)
	} else {
		t.flags = flagWordEnd
		t.pyRegex = `((?:^|(?P<square>(?<=^\[))|(?P<selinux>(?<=\baudit\()))` + num + `)(?:(?(selinux)(?=:\d+\)))|(?(square)(?=\])))` + pyWordEnd
		goRE = unicodeClasses(`(?:^|^\[|\baudit\()()(` + num + `)()(?:\b|\W|$)`)
	}
	re, err := regexp.Compile(goRE)
	if err != nil {
		return nil, fmt.Errorf("epoch template: %w", err)
	}
	t.re, t.markBeg, t.dateGroup, t.markEnd = re, 1, 2, 3
	t.measure()
	return t, nil
}

// newEpochPatternTemplate builds a template from a pattern containing
// {EPOCH} or {LEPOCH}: the number replaces the placeholder, and the whole
// pattern is what the template matches.
func newEpochPatternTemplate(pattern string) (*template, error) {
	long := strings.Contains(strings.ToUpper(pattern), "LEPOCH")
	num := epochRE
	k := kindEpoch
	if long {
		num, k = longEpochRE, kindLongEpoch
	}
	t := &template{name: pattern, pattern: pattern, weight: 1, kind: k}
	regex := "(" + reEpochPattern.ReplaceAllLiteralString(pattern, "(?P<_epoch>"+num+")") + ")"
	t.setRegex(regex, "word", true)
	if err := t.compile(); err != nil {
		return nil, fmt.Errorf("date pattern %q: %w", pattern, err)
	}
	for i, n := range t.re.SubexpNames() {
		if n == "_epoch" {
			t.dateGroup = i
		}
	}
	t.measure() // the date is the number
	return t, nil
}

// newTAI64NTemplate builds fail2ban's DateTai64n template.
func newTAI64NTemplate(lineBegin bool) (*template, error) {
	t := &template{name: "TAI64N", weight: 1, kind: kindTAI64N}
	wb := ""
	if lineBegin {
		wb = "start"
	}
	t.setRegex("@[0-9a-f]{24}", wb, true)
	if err := t.compile(); err != nil {
		return nil, fmt.Errorf("TAI64N template: %w", err)
	}
	return t, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

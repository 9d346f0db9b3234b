package datetime

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Options configure a Detector.
type Options struct {
	// Location is the time zone of dates written without one: fail2ban's
	// logtimezone. Nil means time.Local.
	Location *time.Location
	// Now returns the current time; it decides the year of dates written
	// without one. Nil means time.Now.
	Now func() time.Time
}

// defaultPatterns are fail2ban's default date templates, in order
// (datedetector.py's DateDetectorCache.DEFAULT_TEMPLATES).
var defaultPatterns = []string{
	`%ExY(?P<_sep>[-/.])%m(?P=_sep)%d(?:T|  ?)%H:%M:%S(?:[.,]%f)?(?:\s*%z)?`,
	`(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?`,
	`(?:%a )?%b %d %ExY %k:%M:%S(?:\.%f)?`,
	`%d(?P<_sep>[-/])%m(?P=_sep)(?:%ExY|%Exy) %k:%M:%S`,
	`%d(?P<_sep>[-/])%b(?P=_sep)%ExY[ :]?%H:%M:%S(?:\.%f)?(?: %z)?`,
	`%m/%d/%ExY:%H:%M:%S`,
	`%m-%d-%ExY %k:%M:%S(?:\.%f)?`,
	`EPOCH`,
	`{^LN-BEG}%H:%M:%S`,
	`^<%m/%d/%Exy@%H:%M:%S>`,
	`%Exy%Exm%Exd  ?%H:%M:%S`,
	`%b %d, %ExY %I:%M:%S %p`,
	`^%b-%d-%Exy %k:%M:%S`,
	`%ExY%Exm%Exd(?:-|T|  ?)%ExH:?%ExM:?%ExS(?:[.,]%f)?(?:\s*%z)?`,
	`(?:%Z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?`,
	`(?:%z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?`,
	`TAI64N`,
}

var (
	reDatePrematch = regexp.MustCompile(`(?i)\{DATE\}`)
	reUnboundBeg   = regexp.MustCompile(`^\(\?:\^\|\\b\|\\W\)`)
	reUnboundEnd   = regexp.MustCompile(`\(\?=\\b\|\\W\|\$\)$`)
)

// entry is a template in a detector with its usage statistics
// (fail2ban's DateDetectorTemplate).
type entry struct {
	t        *template
	matches  int // regex matches, won or not (fail2ban counts them per process)
	hits     int
	lastUsed time.Time
	distance int
}

// find searches line with the entry's template and counts a match.
func (e *entry) find(line string) (match, bool) {
	m, ok := e.t.find(line)
	if ok {
		e.matches++
	}
	return m, ok
}

func (e *entry) weight() float64 {
	d := e.distance
	if d < 1 {
		d = 1
	}
	return float64(e.hits) * e.t.weight / float64(d)
}

// Detector finds dates in log lines with an ordered list of templates.
// It reorders them as it goes and is not safe for concurrent use; use one
// per filter.
type Detector struct {
	entries []*entry
	names   map[string]bool
	loc     *time.Location
	now     func() time.Time
	none    bool // {NONE}: no date in the lines, the time is now

	lastIdx     int
	lastStart   int
	lastEnd     int
	lastBefore  string // the character before the last match, "\x00" unset
	lastAfter   string // the character after the last match, "\x00" unset
	firstUnused int
}

const unsetChar = "\x00unset"

// unusedTime is how long a template must be unused before another may take
// its place without a better weight (fail2ban: 5 minutes).
const unusedTime = 5 * time.Minute

func newDetector(opts Options) *Detector {
	d := &Detector{
		names:      map[string]bool{},
		loc:        opts.Location,
		now:        opts.Now,
		lastIdx:    -1,
		lastStart:  1,
		lastEnd:    1<<31 - 1,
		lastBefore: unsetChar,
		lastAfter:  unsetChar,
	}
	if d.loc == nil {
		d.loc = time.Local
	}
	if d.now == nil {
		d.now = time.Now
	}
	return d
}

// Clone returns a copy of d in its current state, template order and
// counts included. The copy shares d's compiled templates, which are
// read-only, so it costs little; the two then go their own ways.
func (d *Detector) Clone() *Detector {
	c := *d
	c.entries = make([]*entry, len(d.entries))
	for i, e := range d.entries {
		ec := *e
		c.entries[i] = &ec
	}
	c.names = make(map[string]bool, len(d.names))
	for n := range d.names {
		c.names[n] = true
	}
	return &c
}

// NewDefault returns a detector with fail2ban's default templates: each
// default template not already anchored at the line begin is preceded, in
// a first block, by a copy anchored there ({^LN-BEG}) with weight 100, so
// that a date at the line begin is preferred.
func NewDefault(opts Options) *Detector {
	d := newDetector(opts)
	for _, t := range defaultTemplates(d.now()) {
		d.add(t, false)
	}
	return d
}

// New returns a detector for a filter's datepattern: one pattern per line.
// A line is a strptime pattern (optionally prefixed by {^LN-BEG} or {UNB}),
// EPOCH, LEPOCH, TAI64N (each optionally prefixed by {^LN-BEG} or ^), a
// pattern with {EPOCH} or {LEPOCH} in it, {^LN-BEG} (the default templates
// anchored at the line begin), {DEFAULT} (all default templates), a regex
// with {DATE} in it (each default template in place of {DATE}), or {NONE}
// (the lines carry no date: Find returns now). A pattern is a Python-style
// regex with %-directives; fail2ban wraps it in word boundaries unless it
// starts with ^ or ** (begin) or ends with $, \b, \s or ** (end), and the
// date is its first group, or the whole pattern when it has no unnamed
// group. An empty datepattern gives the default templates. Errors name the
// pattern; regex syntax RE2 cannot express (look-arounds other than
// fail2ban's own boundaries, back-references to more than one character)
// is reported as such.
func New(datepattern string, opts Options) (*Detector, error) {
	d := newDetector(opts)
	now := d.now()
	for _, line := range strings.Split(datepattern, "\n") {
		p := strings.TrimSpace(line)
		if p == "" {
			continue
		}
		key := p
		if !strings.Contains(p, "%") {
			key = strings.ToUpper(p)
		}
		switch {
		case key == "{NONE}":
			d.none = true
			continue
		case key == "{^LN-BEG}" || key == "{DEFAULT}":
			ignoreDup := len(d.entries) > 0
			for _, t := range defaultTemplates(now) {
				if key == "{^LN-BEG}" && t.flags&flagLineBegin == 0 {
					continue
				}
				if err := d.add(t, ignoreDup); err != nil {
					return nil, err
				}
			}
			continue
		case reDatePrematch.MatchString(p) && !strings.Contains(p, `\{DATE}`):
			ignoreDup := len(d.entries) > 0
			for _, base := range defaultPatterns {
				if base == "EPOCH" || base == "TAI64N" {
					continue
				}
				wrapped := reDatePrematch.ReplaceAllLiteralString(p, unboundPattern(base))
				t, err := newPatternTemplate(wrapped, now)
				if err != nil {
					return nil, fmt.Errorf("datepattern %q: %w", p, err)
				}
				if err := d.add(t, ignoreDup); err != nil {
					return nil, err
				}
			}
			continue
		}
		t, err := patternTemplate(p, key, now)
		if err != nil {
			return nil, fmt.Errorf("datepattern: %w", err)
		}
		if err := d.add(t, false); err != nil {
			return nil, err
		}
	}
	if len(d.entries) == 0 && !d.none {
		for _, t := range defaultTemplates(now) {
			d.add(t, false)
		}
	}
	return d, nil
}

// unboundPattern removes a pattern's line-begin and word boundaries.
func unboundPattern(p string) string {
	p = strings.TrimPrefix(p, "{^LN-BEG}")
	p = reUnboundBeg.ReplaceAllString(p, "")
	return reUnboundEnd.ReplaceAllString(p, "")
}

// patternTemplate makes the template of one datepattern line, as
// fail2ban's _getPatternTemplate.
func patternTemplate(p, key string, now time.Time) (*template, error) {
	if strings.Contains(key, "EPOCH") {
		if reEpochPattern.MatchString(p) && !strings.Contains(p, `\{`) {
			return newEpochPatternTemplate(p)
		}
		switch key {
		case "EPOCH", "{^LN-BEG}EPOCH", "^EPOCH":
			name := "Epoch"
			if key != "EPOCH" {
				name = "{^LN-BEG}Epoch"
			}
			return newEpochTemplate(key != "EPOCH", false, name)
		case "LEPOCH", "{^LN-BEG}LEPOCH", "^LEPOCH":
			name := "LongEpoch"
			if key != "LEPOCH" {
				name = "{^LN-BEG}LongEpoch"
			}
			return newEpochTemplate(key != "LEPOCH", true, name)
		}
	}
	switch key {
	case "TAI64N", "{^LN-BEG}TAI64N", "^TAI64N":
		return newTAI64NTemplate(key != "TAI64N")
	}
	return newPatternTemplate(p, now)
}

// defaultTemplates builds fail2ban's default template list: the anchored
// copies (weight 100) first, then the default templates.
func defaultTemplates(now time.Time) []*template {
	var anchored, plain []*template
	for _, p := range defaultPatterns {
		key := p
		if !strings.Contains(p, "%") {
			key = strings.ToUpper(p)
		}
		t, err := patternTemplate(p, key, now)
		if err != nil {
			panic(fmt.Sprintf("datetime: default template %q: %v", p, err))
		}
		if !strings.HasPrefix(t.name, "{^LN-BEG}") && !strings.HasPrefix(t.name, "^") {
			ap := "{^LN-BEG}" + p
			akey := ap
			if !strings.Contains(ap, "%") {
				akey = strings.ToUpper(ap)
			}
			a, err := patternTemplate(ap, akey, now)
			if err != nil {
				panic(fmt.Sprintf("datetime: default template %q: %v", ap, err))
			}
			if a.name != t.name {
				a.weight = 100
				anchored = append(anchored, a)
			}
		}
		plain = append(plain, t)
	}
	return append(anchored, plain...)
}

func (d *Detector) add(t *template, ignoreDup bool) error {
	if d.names[t.name] {
		if ignoreDup {
			return nil
		}
		return fmt.Errorf("datetime: there is already a template with name %q", t.name)
	}
	d.names[t.name] = true
	d.entries = append(d.entries, &entry{t: t, distance: 1<<31 - 1})
	return nil
}

// Templates returns the names of the detector's templates in their
// current order (fail2ban's names, e.g. "{^LN-BEG}MON Day %k:Minute:Second").
func (d *Detector) Templates() []string {
	names := make([]string, len(d.entries))
	for i, e := range d.entries {
		names[i] = e.t.name
	}
	return names
}

// charAt returns line[i:i+1] with Python's slicing: "" out of range, and
// for i == -1 the last character... as Python's line[-1:0], which is "".
func charAt(line string, i int) string {
	if i < 0 || i >= len(line) {
		return ""
	}
	return line[i : i+1]
}

// Find returns the date in line and where it is (line[start:end]); ok is
// false when no template matches, when the date matched is impossible, or
// when a template matched empty text (a datepattern line such as
// "^WARNING:()**" saying the line has no date); fail2ban then uses the
// previous line's date, which is the caller's to keep.
//
// It follows fail2ban's DateDetector.matchTime: the template that matched
// the previous line is tried first (when it is anchored at the line begin
// or end, or when the characters around the previous date are the same
// and the date is found at the same place); otherwise every template is
// tried in order, an anchored match or a match at the line start with a
// used template wins at once, a match further in the line than the
// template's previous one is kept in reserve while the others are tried,
// and the winner moves up the list.
func (d *Detector) Find(line string) (t time.Time, start, end int, ok bool) {
	r := d.Detect(line)
	if r.Status != Found {
		if r.Status == Empty {
			return time.Time{}, r.Start, r.End, false
		}
		return time.Time{}, 0, 0, false
	}
	return r.Time, r.Start, r.End, true
}

// Status says what Detect found.
type Status int

const (
	// NotFound: no template matched the line.
	NotFound Status = iota
	// Found: a date was found and read.
	Found
	// Empty: a template matched empty text, such as a datepattern
	// "^WARNING:()**" saying the line has no date. fail2ban then uses the
	// previous line's date when it is less than a minute old, or now.
	Empty
	// Invalid: a template matched text that is not a possible date (such
	// as February 30th); Start and End still say where it is.
	Invalid
)

// Result is what Detect found in one line.
type Result struct {
	Status     Status
	Time       time.Time // set when Status is Found
	Start, End int       // the date's place in the line (Found, Empty, Invalid)
}

// Detect is Find with the kinds of failure told apart, as fail2ban's
// filter needs them: the date's text is cut out of the line before the
// failregexes see it, whether or not it could be read.
func (d *Detector) Detect(line string) Result {
	return d.DetectAt(line, d.now())
}

// DetectAt is Detect with the current time given: it decides the year of
// a date written without one and when templates were last used. A scan
// of many lines may read the clock once for many of them.
func (d *Detector) DetectAt(line string, now time.Time) Result {
	if d.none {
		return Result{Status: Found, Time: now}
	}
	var (
		m     match
		found bool
		idx   = -1
	)
	ignore := -1
	if i := d.lastIdx; i >= 0 && i < len(d.entries) {
		tpl := d.entries[i].t
		if tpl.flags&(flagLineBegin|flagLineEnd) != 0 {
			m, found = d.entries[i].find(line)
			ignore = i
			idx = i
		} else if charAt(line, d.lastStart-1) == d.lastBefore && charAt(line, d.lastEnd) == d.lastAfter &&
			d.lastEnd <= len(line) {
			// Search where the last date was, as fail2ban's
			// search(line, distance, endpos); the character before it is
			// kept for the word-begin test.
			m, found = d.entries[i].t.findIn(line, max(0, d.lastStart-1), d.lastEnd)
			if found {
				d.entries[i].matches++
			}
			idx = i
			if found && (m.pyStart != d.lastStart || m.pyEnd != d.lastEnd) {
				found = false
			}
		}
	}
	if !found {
		var reserve match
		reserveIdx := -1
		for i, e := range d.entries {
			if i == ignore {
				continue
			}
			mm, ok := e.find(line)
			if !ok {
				continue
			}
			if i+1 >= len(d.entries) || e.t.flags&(flagLineBegin|flagLineEnd) != 0 {
				m, found, idx = mm, true, i
				break
			}
			if mm.pyStart == 0 && e.hits > 0 && d.entries[i+1].matches == 0 {
				m, found, idx = mm, true, i
				break
			}
			if mm.pyStart > e.distance || mm.pyStart > d.lastStart {
				if reserveIdx < 0 || mm.pyStart < reserve.pyStart {
					reserve, reserveIdx = mm, i
				}
				continue
			}
			m, found, idx = mm, true, i
			break
		}
		if !found && reserveIdx >= 0 {
			m, found, idx = reserve, true, reserveIdx
		}
	}
	if !found {
		return Result{}
	}
	e := d.entries[idx]
	e.hits++
	e.lastUsed = now
	e.distance = m.pyStart
	if d.firstUnused == idx {
		d.firstUnused++
	}
	d.lastStart, d.lastBefore = m.pyStart, charAt(line, m.pyStart-1)
	d.lastEnd, d.lastAfter = m.pyEnd, charAt(line, m.pyEnd)
	if idx != 0 && idx != d.lastIdx {
		idx = d.reorder(idx)
	}
	d.lastIdx = idx
	if m.start == m.end {
		// A template matching empty text, such as "^WARNING:()**", marks a
		// line without a date: fail2ban keeps the previous line's date.
		return Result{Status: Empty, Start: m.start, End: m.end}
	}
	tm, ok := e.t.time(line, m, d.loc, now)
	if !ok {
		return Result{Status: Invalid, Start: m.start, End: m.end}
	}
	return Result{Status: Found, Time: tm, Start: m.start, End: m.end}
}

// Reach is where in a line the dates a Detector finds can lie.
type Reach struct {
	// Start and End: a date starts at or before byte Start of the line
	// and ends at or before byte End; -1 when it may lie anywhere.
	Start, End int
	lead       byteSet // the bytes the text before a date may hold
}

// Lead returns how many of line's first bytes a date may come after: a
// date in line starts at or before that byte.
func (r Reach) Lead(line string) int {
	if r.Start < 0 {
		return len(line)
	}
	n := 0
	for n < r.Start && n < len(line) && r.lead.has(line[n]) {
		n++
	}
	return n
}

// Reach returns where the dates Detect cuts out of lines can lie. For
// {NONE}, which never cuts a date out, it is nowhere: Start and End are 0.
func (d *Detector) Reach() Reach {
	var r Reach
	if d.none {
		return r
	}
	for _, e := range d.entries {
		s, en, lead := e.t.reachStart, e.t.reachEnd, e.t.lead
		if s < 0 || r.Start < 0 {
			r.Start = -1
		} else {
			r.Start = max(r.Start, s)
		}
		if en < 0 || r.End < 0 {
			r.End = -1
		} else {
			r.End = max(r.End, en)
		}
		for i := range lead {
			r.lead[i] |= lead[i]
		}
	}
	return r
}

// TemplateHits is how many lines one template found a date in.
type TemplateHits struct {
	Name string
	Hits int
}

// Hits returns the templates in their current order with the number of
// lines each found a date in, for fail2ban-regex's "Date template hits".
func (d *Detector) Hits() []TemplateHits {
	out := make([]TemplateHits, len(d.entries))
	for i, e := range d.entries {
		out[i] = TemplateHits{Name: e.t.name, Hits: e.hits}
	}
	return out
}

// reorder moves the template at num up the list when its weight grew
// enough, as fail2ban's DateDetector._reorderTemplate, and returns its new
// index.
func (d *Detector) reorder(num int) int {
	es := d.entries
	e := es[num]
	untime := e.lastUsed.Add(-unusedTime)
	weight := e.weight()
	pos := num / 2
	if d.firstUnused < num {
		pos = d.firstUnused
	}
	movable := func() bool {
		return weight > es[pos].weight() || untime.After(es[pos].lastUsed)
	}
	if !movable() {
		if pos == num-1 {
			return num
		}
		pos = num - 1
		if !movable() {
			return num
		}
	}
	copy(es[pos+1:num+1], es[pos:num])
	es[pos] = e
	for d.firstUnused < len(es) && es[d.firstUnused].hits > 0 {
		d.firstUnused++
	}
	return pos
}

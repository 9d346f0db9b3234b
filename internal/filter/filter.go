package filter

import (
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/edgeban/edgeban/internal/datetime"
)

// Config configures a Filter beyond its Definition.
type Config struct {
	// Location is the zone of dates written without one (logtimezone).
	// Nil means time.Local.
	Location *time.Location
	// Now returns the current time: it decides the year of dates written
	// without one, and is the time of failures in lines without a date.
	// Nil means time.Now.
	Now func() time.Time
	// Clock is the wall clock of the multi-line failure cache (entries
	// expire five minutes after they were set). Nil means time.Now.
	Clock func() time.Time
	// DatePattern and MaxLines, when set, replace the definition's.
	DatePattern string
	MaxLines    int
	// UseDNS is the jail's usedns: "yes" (the default), "warn", "no" or
	// "raw". With "no", <HOST> matches addresses only.
	UseDNS string
	// Workers is how many goroutines Scan uses to read dates and run the
	// regexes of a single-line filter; 0 means one per CPU.
	Workers int
	// CheckAll tries every failregex on every line and reports each that
	// matches, as fail2ban-regex and fail2ban's sample tests do. Without
	// it the first failregex that matches wins, as in the daemon.
	CheckAll bool
}

// Failure is one failregex match.
type Failure struct {
	// Regex is the index of the failregex that matched.
	Regex int
	// ID is the failure id: the F-ID group if the regex has one, else the
	// address (ip4, then ip6) or the host name (dns), normalised as
	// fail2ban does (::ffff:1.2.3.4 is 1.2.3.4; an address with a CIDR
	// group is its network). A text that is not a valid address is kept
	// as it is. ID is "" when Pending.
	ID string
	// Host is the address or name matched when the regex has an F-ID
	// that differs from it (fail2ban's "ip"), else "".
	Host string
	// Resolve says the ID is a host name from the dns group, which the
	// daemon resolves according to usedns.
	Resolve bool
	// Time is the failure's time; zero when the line had none and no
	// recent date could stand in for it.
	Time time.Time
	// Fields holds the named groups that took part in the match, under
	// fail2ban's names (ip4, ip6, dns, fid, user, and F-NAME groups
	// lower-cased), merged with the prefregex's and, for multi-line
	// failures (mlfid), with the earlier lines' groups.
	Fields map[string]string
	// Users holds every user seen for a multi-line failure (fail2ban's
	// "users"), in the order first seen.
	Users []string
	// Matches holds the log lines that make up the failure.
	Matches []string
	// NoFail marks a helper match (F-NOFAIL, or F-MLFGAINED: success)
	// that is not a failure.
	NoFail bool
	// Pending marks a multi-line match that has no failure id yet.
	Pending bool
}

// Result is what one line brought.
type Result struct {
	// Failures holds every failregex match, helper and pending ones
	// included (see Failure.NoFail and Failure.Pending).
	Failures []Failure
	// Ignored is set when an ignoreregex matched.
	Ignored bool
	// IgnoreHits holds the indexes of the ignoreregexes that matched.
	IgnoreHits []int
	// Absorbed counts the earlier lines of a multi-line buffer that a
	// failregex match took in with this line (fail2ban-regex counts them
	// as matched instead of missed).
	Absorbed int
	// DateFound says whether a date was read from the line.
	DateFound bool
	// PrefMatched says whether the prefregex matched.
	PrefMatched bool
}

// Filter runs one filter over log lines. It keeps state between lines
// (the previous date, the multi-line buffer, the multi-line failure
// cache, the date detector's order) and is not safe for concurrent use.
type Filter struct {
	def      *Definition
	opts     Config
	pref     *Regex
	fail     []*compiled
	ignore   []*compiled
	dates    *datetime.Detector
	maxLines int
	// helpers are the detectors of a parallel Scan's workers.
	helpers   []*datetime.Detector
	dateReach datetime.Reach // where in a line a date may lie

	// prefAny: the prefregex matches every non-empty line; cands tells
	// which regexes a text holds literals of. Together they let most
	// lines skip every regex.
	prefAny  bool
	cands    *candSet // which failregexes (bits 0..) and ignoreregexes (after them) may match
	prefLits []string
	prefFast *Regex // the prefregex stopping at the content's first character (see prefixOnly)

	buf          []tupleLine
	seq          uint64
	lastDate     time.Time
	lastTimeText string
	ml           *mlCache
	// batchNow and batchClock, when set, stand for now() and clock()
	// while a parallel scan applies one batch of lines: the clock is read
	// once per batch.
	batchNow, batchClock time.Time
}

// compiled is a regex with the group names fail2ban merges.
type compiled struct {
	*Regex
	alt   [][2]string // alt_x group -> x, sorted
	tuple [][2]string // tuple_x group -> x, sorted
	skip  bool        // has <SKIPLINES> groups
	lits  []string    // literal prefilter: one of them is in every match (nil: none)
	// prefix: the bytes the first characters of a match may be (see
	// prefixSets); checked before the regex runs.
	prefix []*[256]bool
}

// tupleLine is a line split around its date, as fail2ban keeps it: the
// failregexes see pre+post.
type tupleLine struct {
	pre, date, post string
	seq             uint64
}

func (t tupleLine) text() string {
	if t.pre == "" {
		return t.post
	}
	return t.pre + t.post
}

func (t tupleLine) full() string { return t.pre + t.date + t.post }

// complName matches fail2ban's alt_ and tuple_ group names.
var complName = regexp.MustCompile(`^(alt_|tuple_)(.*?)(?:_\d+)?$`)

// tagOpt maps an F-tag name to its group name as fail2ban does.
func tagOpt(n string) string {
	switch n = strings.ToLower(n); n {
	case "id":
		return "fid"
	case "port":
		return "fport"
	}
	return n
}

func compileFor(pattern string, opts Options) (*compiled, error) {
	r, err := CompileOptions(pattern, opts)
	if err != nil {
		return nil, err
	}
	c := &compiled{Regex: r, lits: literalsOf(r), prefix: prefixSetsOf(r)}
	for _, k := range r.names {
		if len(k) <= len("alt_") {
			if strings.HasPrefix(k, "skiplines") {
				c.skip = true
			}
			continue
		}
		if strings.HasPrefix(k, "skiplines") {
			c.skip = true
		}
		if m := complName.FindStringSubmatch(k); m != nil {
			p := [2]string{k, tagOpt(m[2])}
			if m[1] == "alt_" {
				c.alt = append(c.alt, p)
			} else {
				c.tuple = append(c.tuple, p)
			}
		}
	}
	sort.Slice(c.alt, func(i, j int) bool { return c.alt[i][0] < c.alt[j][0] })
	sort.Slice(c.tuple, func(i, j int) bool { return c.tuple[i][0] < c.tuple[j][0] })
	return c, nil
}

// failureIDGroups may identify a failure; a failregex needs one of them
// (or its prefregex does).
var failureIDGroups = []string{"fid", "ip4", "ip6", "dns", "mlfid"}

// New compiles def into a Filter. Every pattern is translated once here;
// a pattern neither engine accepts, or a failregex without a failure id
// group, is an error naming the file, the option and the pattern.
func New(def *Definition, opts Config) (*Filter, error) {
	f := &Filter{def: def, opts: opts, maxLines: def.MaxLines, ml: newMLCache(100, 5*time.Minute)}
	if opts.MaxLines > 0 {
		f.maxLines = opts.MaxLines
	}
	if f.maxLines < 1 {
		f.maxLines = 1
	}
	useDNS := opts.UseDNS
	if useDNS == "" {
		useDNS = def.UseDNS
	}
	ro := Options{NoDNS: useDNS == "no"}
	if def.PrefRegex != "" {
		r, err := CompileOptions(def.PrefRegex, ro)
		if err != nil {
			return nil, fmt.Errorf("%s: option \"prefregex\": %w", def.Where("prefregex"), err)
		}
		f.pref = r
	}
	for i, p := range def.IgnoreRegex {
		c, err := compileFor(p, ro)
		if err != nil {
			return nil, fmt.Errorf("%s: option \"ignoreregex\" (pattern %d): %w", def.Where("ignoreregex"), i+1, err)
		}
		f.ignore = append(f.ignore, c)
	}
	fo := ro
	fo.Multiline = f.maxLines > 1
	for i, p := range def.FailRegex {
		c, err := compileFor(p, fo)
		if err != nil {
			return nil, fmt.Errorf("%s: option \"failregex\" (pattern %d): %w", def.Where("failregex"), i+1, err)
		}
		if !hasAny(c.Regex, failureIDGroups) && (f.pref == nil || !hasAny(f.pref, failureIDGroups)) {
			return nil, fmt.Errorf("%s: option \"failregex\" (pattern %d): no failure-id group (<HOST>, <ADDR>, <F-ID>...) in %q", def.Where("failregex"), i+1, p)
		}
		f.fail = append(f.fail, c)
	}
	f.prefAny = f.pref == nil || anyLineRegex(f.pref)
	if f.pref != nil {
		f.prefLits = literalsOf(f.pref)
		f.prefFast = prefixOnly(f.pref)
	}
	var all [][]string
	for _, c := range append(append([]*compiled(nil), f.fail...), f.ignore...) {
		all = append(all, c.lits)
	}
	f.cands = newCandSet(all)
	dp := def.DatePattern
	if opts.DatePattern != "" {
		dp = opts.DatePattern
	}
	dopts := datetime.Options{Location: opts.Location, Now: opts.Now}
	var err error
	if strings.TrimSpace(dp) == "" {
		f.dates = datetime.NewDefault(dopts)
	} else if f.dates, err = datetime.New(dp, dopts); err != nil {
		return nil, fmt.Errorf("%s: option \"datepattern\": %w", def.Where("datepattern"), err)
	}
	f.dateReach = f.dates.Reach()
	return f, nil
}

func hasAny(r *Regex, names []string) bool {
	for _, n := range names {
		if r.HasGroup(n) {
			return true
		}
	}
	return false
}

// Definition returns the filter's definition.
func (f *Filter) Definition() *Definition { return f.def }

// FailRegexes returns the compiled failregexes, in order.
func (f *Filter) FailRegexes() []*Regex {
	out := make([]*Regex, len(f.fail))
	for i, c := range f.fail {
		out[i] = c.Regex
	}
	return out
}

// IgnoreRegexes returns the compiled ignoreregexes, in order.
func (f *Filter) IgnoreRegexes() []*Regex {
	out := make([]*Regex, len(f.ignore))
	for i, c := range f.ignore {
		out[i] = c.Regex
	}
	return out
}

// PrefRegex returns the compiled prefregex, or nil.
func (f *Filter) PrefRegex() *Regex { return f.pref }

// DateHits returns the date templates with the lines each dated (by
// every detector a parallel Scan used).
func (f *Filter) DateHits() []datetime.TemplateHits {
	hits := f.dates.Hits()
	for _, d := range f.helpers {
		for _, h := range d.Hits() {
			found := false
			for i := range hits {
				if hits[i].Name == h.Name {
					hits[i].Hits += h.Hits
					found = true
					break
				}
			}
			if !found {
				hits = append(hits, h)
			}
		}
	}
	return hits
}

// MaxLines returns the size of the multi-line buffer.
func (f *Filter) MaxLines() int { return f.maxLines }

func (f *Filter) now() time.Time {
	if !f.batchNow.IsZero() {
		return f.batchNow
	}
	if f.opts.Now != nil {
		return f.opts.Now()
	}
	return time.Now()
}

// Process reads the date in line (one log line without its newline) and
// looks for failures in it, with the lines before it when the filter is
// multi-line.
func (f *Filter) Process(line string) Result {
	tl, date, found := f.dateLine(line, f.dates.Detect(line), f.now())
	res := f.find(tl, date)
	res.DateFound = found
	return res
}

// dateLine splits line around the date r found in it and decides the
// failure time as fail2ban does: a line without a date (or with an
// impossible one) takes the previous line's date when that is less than a
// minute old; a date template matching empty text means now.
func (f *Filter) dateLine(line string, r datetime.Result, now time.Time) (tl tupleLine, date time.Time, found bool) {
	noDate := false
	switch r.Status {
	case datetime.Found:
		tl = tupleLine{pre: line[:r.Start], date: line[r.Start:r.End], post: line[r.End:]}
		date, found = r.Time, true
		f.lastDate, f.lastTimeText = date, tl.date
	case datetime.Invalid:
		tl = tupleLine{pre: line[:r.Start], date: line[r.Start:r.End], post: line[r.End:]}
		noDate = true
	case datetime.Empty:
		tl = tupleLine{pre: line[:r.Start], post: line[r.End:]}
		if f.recentDate(now) {
			tl = tupleLine{date: f.lastTimeText, post: line}
			date = f.lastDate
		} else {
			date = now
		}
	default:
		tl = tupleLine{post: line}
		noDate = true
	}
	if noDate && f.recentDate(now) {
		tl = tupleLine{date: f.lastTimeText, post: line}
		date = f.lastDate
	}
	return tl, date, found
}

// splitText is the text the regexes see for a line whose date r found,
// before the previous line's date is taken into account.
func splitText(line string, r datetime.Result) string {
	switch r.Status {
	case datetime.Found, datetime.Invalid, datetime.Empty:
		if r.Start == 0 {
			return line[r.End:]
		}
		return line[:r.Start] + line[r.End:]
	}
	return line
}

// ProcessDated looks for failures in line whose time is already known,
// as for a journal entry: no date is read from the line.
func (f *Filter) ProcessDated(line string, t time.Time) Result {
	f.lastDate, f.lastTimeText = t, ""
	res := f.find(tupleLine{post: line}, t)
	res.DateFound = true
	return res
}

func (f *Filter) recentDate(now time.Time) bool {
	return !f.lastDate.IsZero() && f.lastDate.After(now.Add(-time.Minute))
}

// bufText joins lines as fail2ban's buffer: each line's text followed by
// "\n".
func bufText(lines []tupleLine) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.pre)
		b.WriteString(l.post)
		b.WriteByte('\n')
	}
	return b.String()
}

// search runs r over text, fail2ban's multi-line buffer (each line
// followed by "\n") and returns the match with the buffer lines it covers
// and those it leaves, as fail2ban's Regex.search.
func search(r *compiled, text string, org []tupleLine) (m Match, ok bool, matched, unmatched []tupleLine) {
	s := text
	if !r.multiline() {
		s = strings.TrimSuffix(text, "\n")
	}
	m, ok = r.Match(s)
	if !ok {
		return m, false, nil, nil
	}
	if len(org) <= 1 {
		return m, true, org, nil
	}
	first := strings.Count(text[:min(m.Start+1, len(text))], "\n")
	last := strings.Count(text[:max(m.End-1, 0)], "\n") + 1
	first, last = min(first, len(org)), min(max(last, first), len(org))
	matched = append([]tupleLine(nil), org[first:last]...)
	unmatched = append([]tupleLine(nil), org[:first]...)
	if r.skip {
		var skipped []string
		for i := 0; ; i++ {
			name := "skiplines" + strconv.Itoa(i)
			if !r.HasGroup(name) {
				break
			}
			if v, ok := m.Group(name); ok {
				skipped = append(skipped, splitLines(v)...)
			}
		}
		n := 0
		for _, sl := range skipped {
			for k := n; k < len(matched); k++ {
				if matched[k].text() == sl {
					unmatched = append(unmatched, matched[k])
					matched = append(matched[:k], matched[k+1:]...)
					n = k
					break
				}
			}
		}
	}
	unmatched = append(unmatched, org[last:]...)
	return m, true, matched, unmatched
}

// splitLines is Python's str.splitlines for the "\n"-joined text of a
// <SKIPLINES> group.
func splitLines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func (r *compiled) multiline() bool { return r.Regex.multiline }

// groups returns the match's groups with fail2ban's alt_ and tuple_
// merging.
func (r *compiled) groups(m Match) map[string]string {
	g := m.Groups()
	for _, p := range r.alt {
		if v := g[p[0]]; v != "" && g[p[1]] == "" {
			g[p[1]] = v
		}
	}
	if len(r.tuple) > 0 {
		tup := map[string][]*string{}
		for _, p := range r.tuple {
			var v *string
			if s, ok := g[p[0]]; ok {
				v = &s
			}
			t, ok := tup[p[1]]
			if !ok {
				var cur *string
				if s, ok := g[p[1]]; ok {
					cur = &s
				}
				t = []*string{cur}
			}
			tup[p[1]] = append(t, v)
			g[p[1]] = pyTuple(tup[p[1]])
		}
	}
	return g
}

// pyTuple writes a tuple of optional strings as Python's repr does.
func pyTuple(vs []*string) string {
	var b strings.Builder
	b.WriteByte('(')
	for i, v := range vs {
		if i > 0 {
			b.WriteString(", ")
		}
		if v == nil {
			b.WriteString("None")
		} else {
			b.WriteString(pyRepr(*v))
		}
	}
	if len(vs) == 1 {
		b.WriteByte(',')
	}
	b.WriteByte(')')
	return b.String()
}

func pyRepr(s string) string {
	q := "'"
	if strings.Contains(s, "'") && !strings.Contains(s, `"`) {
		q = `"`
	}
	r := strings.ReplaceAll(s, `\`, `\\`)
	if q == "'" {
		r = strings.ReplaceAll(r, "'", `\'`)
	}
	return q + r + q
}

// failState is fail2ban's failure dict while a match is merged.
type failState struct {
	g             map[string]string
	users         []string
	hasUsers      bool
	matches       []string
	nofailMatches []string
	pending       bool
	cached        bool // held by the multi-line cache: copied before it is handed out
}

func (s *failState) addUser(u string) []string {
	if !s.hasUsers {
		s.hasUsers = true
		s.users = nil
	}
	for _, x := range s.users {
		if x == u {
			return s.users
		}
	}
	s.users = append(s.users, strings.Clone(u))
	return s.users
}

func (s *failState) clone() *failState {
	c := *s
	c.g = make(map[string]string, len(s.g))
	for k, v := range s.g {
		c.g[k] = v
	}
	c.users = append([]string(nil), s.users...)
	c.matches = append([]string(nil), s.matches...)
	c.nofailMatches = append([]string(nil), s.nofailMatches...)
	return &c
}

func fullLines(ls []tupleLine) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		// Copied: the line may be a slice of a large read buffer, and
		// multi-line failures keep their lines for minutes.
		out[i] = strings.Clone(l.full())
	}
	return out
}

// find is fail2ban's findFailure: the buffer, ignoreregex, prefregex and
// failregex steps for one line.
func (f *Filter) find(tl tupleLine, date time.Time) Result {
	if f.maxLines <= 1 {
		return f.applySingle(tl, f.matchSingle(tl.text()), date)
	}
	return f.findMulti(tl, date)
}

// findMulti is find for a multi-line filter: the line joins the buffer of
// the last maxlines lines, which the regexes see as one text.
func (f *Filter) findMulti(tl tupleLine, date time.Time) (res Result) {
	f.seq++
	tl.seq = f.seq
	before := append([]tupleLine(nil), f.buf...)
	f.buf = append(f.buf, tl)
	if len(f.buf) > f.maxLines {
		f.buf = append([]tupleLine(nil), f.buf[len(f.buf)-f.maxLines:]...)
	}
	org := f.buf
	text := bufText(org)
	defer func() { res.Absorbed = f.absorbed(before) }()

	if len(f.ignore) > 0 && len(f.ignore) < len(f.fail)-2 {
		if f.ignoreLine(text, org, nil, nil, &res) {
			return res
		}
	}
	var pre Match
	if f.pref != nil {
		m, ok := f.pref.Match(strings.TrimSuffix(text, "\n"))
		if !ok {
			return res
		}
		res.PrefMatched = true
		pre = m
		if c, _ := m.Group("content"); c != "" {
			f.buf = []tupleLine{{post: c, seq: tl.seq}}
			text = ""
		}
	}
	for i, fr := range f.fail {
		if text == "" {
			text = bufText(f.buf)
		}
		m, ok, matched, unmatched := search(fr, text, org)
		if !ok {
			continue
		}
		g := fr.groups(m)
		if len(f.ignore) > 0 && f.ignoreLine(text, org, matched, unmatched, &res) {
			text = ""
			if !f.opts.CheckAll {
				break
			}
			continue
		}
		f.buf, text = unmatched, ""
		addPrefGroups(g, pre)
		if f.record(i, date, &failState{g: g}, matched, &res) {
			break
		}
	}
	return res
}

// lineMatch is what a single-line filter's regexes found in one line's
// text: the part of fail2ban's findFailure that depends on nothing but
// the line, so that it can run on several lines at once.
type lineMatch struct {
	preIgnored  bool // an ignoreregex matched before the failregexes ran
	ignored     bool
	prefMatched bool
	pre         Match // the prefregex's match, if it has one
	fails       []rawMatch
	ignoreHits  []int
}

type rawMatch struct {
	idx int
	g   map[string]string
}

// matchSingle runs the regexes of a single-line filter over text.
func (f *Filter) matchSingle(text string) lineMatch {
	return f.matchWith(text, f.candidates(text))
}

// candidates returns the regexes that may match s (a line, or its text
// without the date): bit i for failregex i, then the ignoreregexes.
func (f *Filter) candidates(s string) uint64 {
	if f.cands == nil {
		return ^uint64(0)
	}
	return f.cands.of(s)
}

// matchWith is matchSingle with the candidates known (from the text, or
// from the whole line, which may only add some).
func (f *Filter) matchWith(text string, cand uint64) (lm lineMatch) {
	if skip, pref := f.hopeless(cand, text); skip {
		lm.prefMatched = pref && text != ""
		return lm
	}
	nf := len(f.fail)
	if len(f.ignore) > 0 && len(f.ignore) < len(f.fail)-2 {
		for i, ir := range f.ignore {
			if cand&(1<<(nf+i)) == 0 && f.cands != nil {
				continue
			}
			if _, ok := ir.Match(text); ok {
				lm.preIgnored = true
				lm.ignoreHits = append(lm.ignoreHits, i)
				if !f.opts.CheckAll {
					break
				}
			}
		}
		if lm.preIgnored {
			return lm
		}
	}
	content := text
	if f.pref != nil {
		var (
			m  Match
			ok bool
		)
		if f.prefFast != nil {
			if m, ok = f.prefFast.Match(text); ok {
				m.extendTo("content", text)
			}
		} else {
			m, ok = f.pref.Match(text)
		}
		if !ok {
			return lm
		}
		lm.prefMatched = true
		lm.pre = m
		if c, _ := m.Group("content"); c != "" {
			content = c
		}
	}
	for i, fr := range f.fail {
		if f.cands != nil && cand&(1<<i) == 0 {
			continue
		}
		if !prefixOK(fr.prefix, content) {
			continue
		}
		m, ok := fr.Match(content)
		if !ok {
			continue
		}
		g := fr.groups(m)
		hit := false
		for j, ir := range f.ignore {
			if f.cands != nil && cand&(1<<(nf+j)) == 0 {
				continue
			}
			if _, ok := ir.Match(content); ok {
				hit = true
				lm.ignoreHits = append(lm.ignoreHits, j)
				if !f.opts.CheckAll {
					break
				}
			}
		}
		if hit {
			lm.ignored = true
			if !f.opts.CheckAll {
				break
			}
			continue
		}
		lm.fails = append(lm.fails, rawMatch{idx: i, g: g})
		if !f.opts.CheckAll {
			break
		}
	}
	return lm
}

// hopeless reports whether no regex of a single-line filter can match
// text (or a line holding it), given its candidates, and then whether the
// prefregex matches. It holds when the text holds no failregex or
// ignoreregex literal, and the prefregex either matches any non-empty
// line or lacks its literals.
func (f *Filter) hopeless(cand uint64, text string) (skip, prefMatched bool) {
	if f.cands == nil || cand != 0 {
		return false, false
	}
	if f.prefAny {
		return true, f.pref != nil
	}
	if f.prefLits != nil && !mayMatch(f.prefLits, text) {
		return true, false
	}
	return false, false
}

// applySingle turns what matchSingle found into failures: the part of
// findFailure that depends on earlier lines (multi-line failure ids).
func (f *Filter) applySingle(tl tupleLine, lm lineMatch, date time.Time) (res Result) {
	res.Ignored = lm.preIgnored || lm.ignored
	res.IgnoreHits = lm.ignoreHits
	res.PrefMatched = lm.prefMatched
	if lm.preIgnored || len(lm.fails) == 0 {
		return res
	}
	matched := []tupleLine{tl}
	for _, rm := range lm.fails {
		g := rm.g
		addPrefGroups(g, lm.pre)
		if f.record(rm.idx, date, &failState{g: g}, matched, &res) {
			break
		}
	}
	return res
}

// addPrefGroups adds the groups of the prefregex's match pre, but its
// content, to a failregex match's own map g; the failregex's win.
func addPrefGroups(g map[string]string, pre Match) {
	pre.eachGroup(func(k, v string) {
		if _, ok := g[k]; !ok && k != "content" {
			g[k] = v
		}
	})
}

// record turns failregex i's match (its groups in st, merged with the
// prefregex's) into a failure, merging it with the earlier lines of its
// multi-line id if it has one, and adds it to res. It reports whether
// the search of the line ends there: after the first failure unless
// every failregex is tried, and after a helper match of a multi-line id.
func (f *Filter) record(i int, date time.Time, st *failState, matched []tupleLine, res *Result) bool {
	mlfid, isML := st.g["mlfid"]
	if isML {
		st = f.mergeFailure(mlfid, st, matched)
		if st.g["nofail"] != "" && !f.opts.CheckAll {
			return true
		}
	} else {
		st.matches = append(st.matches, fullLines(matched)...)
	}
	fail, ok := f.identify(i, date, st, isML)
	if !ok {
		// No failure id took part: fail2ban reports it and goes on.
		return false
	}
	res.Failures = append(res.Failures, fail)
	return !f.opts.CheckAll
}

// identify finds the failure id of a merged match, as fail2ban does
// after merging.
func (f *Filter) identify(i int, date time.Time, st *failState, isML bool) (Failure, bool) {
	fid, hasFID := st.g["fid"]
	var (
		ip      string
		has     bool
		fam     = 0 // 4, 6, or 0 for a dns name or an id
		resolve bool
	)
	if ip, has = st.g["ip4"]; has {
		fam = 4
	} else if ip, has = st.g["ip6"]; has {
		fam = 6
	} else if ip, has = st.g["dns"]; has {
		resolve = true
	} else if hasFID {
		ip, has = fid, true
	} else if !isML {
		// A failregex whose failure id group did not take part: fail2ban
		// raises an error here and skips the match.
		return Failure{}, false
	}
	if !has {
		st.pending = true
		return f.failure(i, "", "", date, st, st.g["nofail"] != "", true, false), true
	}
	cidr := st.g["cidr"]
	var id, host string
	if fam != 0 || !resolve {
		resolve = false
		norm := ip
		if fam != 0 {
			norm = normalizeAddr(ip, fam, cidr)
		}
		if !hasFID || fid == ip {
			id = norm
		} else {
			host = norm
			id = fid
		}
	} else {
		// A name: fail2ban resolves it (usedns), or keeps it raw.
		if hasFID && fid != ip {
			host, id, resolve = ip, fid, false
		} else {
			id = ip
		}
	}
	return f.failure(i, id, host, date, st, st.g["nofail"] != "", false, resolve), true
}

func (f *Filter) failure(i int, id, host string, date time.Time, st *failState, nofail, pending, resolve bool) Failure {
	fl := Failure{Regex: i, ID: id, Host: host, Time: date, Fields: st.g, Matches: st.matches,
		NoFail: nofail, Pending: pending, Resolve: resolve}
	if st.hasUsers {
		fl.Users = st.users
	}
	if st.cached {
		c := st.clone()
		fl.Fields, fl.Matches = c.g, c.matches
		if st.hasUsers {
			fl.Users = c.users
		}
	}
	return fl
}

// normalizeAddr returns the address as fail2ban prints it: canonical,
// IPv4-mapped IPv6 as IPv4, masked to cidr when one was matched; text
// that is not an address of the family is returned as it is.
func normalizeAddr(s string, fam int, cidr string) string {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" || (fam == 4 && !a.Is4()) || (fam == 6 && !a.Is6()) {
		return s
	}
	bits := -1
	if cidr != "" {
		n, err := strconv.Atoi(cidr)
		if err != nil {
			return s
		}
		bits = n
	}
	if bits < 0 {
		if a.Is4In6() {
			a = a.Unmap()
		}
		return a.String()
	}
	if bits > a.BitLen() {
		return s
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return s
	}
	if bits == a.BitLen() || bits == 0 {
		return p.Addr().String()
	}
	return p.String()
}

// ignoreLine is fail2ban's _ignoreLine: it reports whether an
// ignoreregex matches the buffer (or, for a multi-line match, the lines
// the failregex matched), and drops the matched lines from the buffer.
func (f *Filter) ignoreLine(text string, org, matched, unmatched []tupleLine, res *Result) bool {
	lines := org
	if matched != nil {
		lines = matched
		text = bufText(matched)
	}
	hit := false
	for i, ir := range f.ignore {
		if _, ok, _, _ := search(ir, text, lines); !ok {
			continue
		}
		hit = true
		res.Ignored = true
		res.IgnoreHits = append(res.IgnoreHits, i)
		if matched != nil {
			f.buf = unmatched
		}
		if !f.opts.CheckAll {
			break
		}
	}
	return hit
}

// absorbed counts the lines of the buffer before this line, but for one
// that would have left it anyway, that are no longer in the buffer.
func (f *Filter) absorbed(before []tupleLine) int {
	if len(before) >= f.maxLines {
		before = before[1:]
	}
	n := 0
	for _, b := range before {
		in := false
		for _, c := range f.buf {
			if c.seq == b.seq {
				in = true
				break
			}
		}
		if !in {
			n++
		}
	}
	return n
}

// mergeFailure merges a match carrying a multi-line failure id (mlfid)
// with what earlier lines of the same id brought, as fail2ban's
// _mergeFailure does: users are collected, F-NOFAIL and F-MLFGAINED
// matches hold their lines back until a failure comes, F-MLFFORGET ends
// the id.
func (f *Filter) mergeFailure(mlfid string, st *failState, matched []tupleLine) *failState {
	const (
		nofail = 1
		forget = 2
		prevNF = 4
		gained = 8
	)
	cached := f.ml.get(mlfid, f.clock())
	flags := 0
	if st.g["mlfgained"] != "" {
		flags |= gained | nofail
		if st.g["nofail"] == "" {
			st.g["nofail"] = st.g["mlfgained"]
		}
	} else if st.g["nofail"] != "" {
		flags |= nofail
	}
	if v, ok := st.g["mlfforget"]; ok {
		delete(st.g, "mlfforget")
		if v != "" {
			flags |= forget
		}
	}
	var users []string
	hasUsers := false
	if cached != nil {
		users, hasUsers = cached.users, cached.hasUsers
		if u := st.g["user"]; u != "" {
			users, hasUsers = cached.addUser(u), true
		}
		if v, ok := cached.g["nofail"]; ok {
			delete(cached.g, "nofail")
			if v != "" {
				flags |= prevNF
			}
		}
		if v, ok := cached.g["mlfgained"]; ok {
			delete(cached.g, "mlfgained")
			if v != "" {
				flags |= prevNF
			}
		}
		if flags&gained != 0 {
			cached.pending = false
		}
		if flags&prevNF == 0 && !cached.pending {
			cached.matches = nil
		}
		for k, v := range st.g {
			cached.g[k] = strings.Clone(v) // kept past the line
		}
		st = cached
		st.cached = true
		if flags&forget != 0 {
			f.ml.unset(mlfid)
		}
	} else if flags&forget == 0 {
		if u := st.g["user"]; u != "" {
			users, hasUsers = st.addUser(u), true
		}
		st.cached = true
		for k, v := range st.g {
			st.g[k] = strings.Clone(v) // kept past the line
		}
		f.ml.set(mlfid, st, f.clock())
	}
	if st.pending || (hasUsers && len(users) > 1) {
		st.pending = false
		delete(st.g, "nofail")
		delete(st.g, "mlfgained")
		flags &^= gained | nofail
	}
	if flags&nofail == 0 {
		m := st.nofailMatches
		st.nofailMatches = nil
		m = append(m, st.matches...)
		if flags&gained == 0 {
			m = append(m, fullLines(matched)...)
		}
		st.matches = m
	} else if flags&(nofail|forget) == nofail {
		st.nofailMatches = append(st.nofailMatches, fullLines(matched)...)
	}
	return st
}

func (f *Filter) clock() time.Time {
	if !f.batchClock.IsZero() {
		return f.batchClock
	}
	if f.opts.Clock != nil {
		return f.opts.Clock()
	}
	return time.Now()
}

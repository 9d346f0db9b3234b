package filter

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"sort"
	"strings"
	"sync/atomic"
)

// Two Python-only constructs of fail2ban's filters can run on RE2 in the
// places they are used in, which spares those patterns most of the work
// of the slower regexp2 engine:
//
//   - a conditional (?(g)YES|NO) on a group g whose taking part is decided
//     by a `?` after it, or by its being the first branch of a group: the
//     rest of g's branch is written out twice, once with g and YES, once
//     without g and with NO, in the order Python tries them, so that the
//     same match is found first;
//   - the tempered dot (?:(?!S).)* with a literal S, when "$" follows it
//     (past the ends of groups), or lazily (?:(?!S).)*? when S follows it.
//     It is loosened to .* (or .*?) in a hidden group, and the match is
//     checked afterwards: no S may start inside the group's text (for the
//     lazy form: the S that follows is the first one). The loosened
//     pattern tries the same paths in the same order as Python, plus paths
//     Python rules out; so when RE2's first match passes the check it is
//     Python's match, and when it does not (a line with S twice, as in an
//     injection attempt) the line goes to regexp2 instead.
//
// Writing the rest out twice makes large programs, which Go's regexp runs
// on its slowest matcher. Most branches of such a pattern need literals
// that most lines lack (the YES branch of sshd's "Failed" regex needs ": "
// after the address), so the rewrite is compiled for each set of those
// literals a line holds, with the branches that need a missing one
// replaced by one that never matches: a branch that cannot match changes
// no match.

// maxRewrite bounds the rewritten pattern's growth.
const maxRewrite = 1 << 16

// maxPruneLits bounds the literals that select a variant (2^n variants).
const maxPruneLits = 4

// hiddenGroup starts the names of the groups the checks read; a pattern
// that already uses it is not rewritten.
const hiddenGroup = "zqxEdgebanTD"

// temperedCheck is a check a match must pass: no occurrence of lit may
// start inside the group's text (the one that follows it excepted, when
// lazy).
type temperedCheck struct {
	group string
	lit   string
	lazy  bool
}

// rewrite is the RE2 form of a pattern that needs regexp2.
type rewrite struct {
	py       string // the rewritten pattern (Python syntax)
	checks   []temperedCheck
	branches []branch // the branches that need literals
	lits     []string // the literals that choose a variant
	// variants, by the mask of lits a text holds, are compiled when a
	// text first needs them: most logs need few of them.
	variants []atomic.Pointer[variant]
}

// branch is a branch of an alternation of the rewritten pattern,
// py[start:end], that needs every one of lits.
type branch struct {
	start, end int
	lits       []string
}

// variant is the rewritten pattern compiled for one set of literals.
type variant struct {
	re     *regexp.Regexp // nil: it did not compile; regexp2 answers
	names  []string       // group names, hidden groups blanked
	checks []indexedCheck
}

type indexedCheck struct {
	group int // the hidden group's number in the variant
	temperedCheck
}

// never is a pattern that matches nothing, in the syntax of both Python
// and RE2: no place is both a word boundary and not one.
const never = `\b\B`

// newRewrite returns the RE2 form of the Python pattern p (with the IPv6
// lookbehind already rewritten), or nil when p has constructs it cannot
// rewrite exactly.
func newRewrite(p string) *rewrite {
	py, checks, ok := rewritePython(p)
	if !ok {
		return nil
	}
	w := &rewrite{py: py, checks: checks}
	for _, span := range pyBranches(py) {
		shape, err := shapeRE2(py[span[0]:span[1]])
		if err != nil {
			return nil
		}
		re, err := syntax.Parse(shape, syntax.Perl)
		if err != nil {
			return nil
		}
		lits := mustLiterals(re)
		if len(lits) == 0 {
			continue
		}
		w.branches = append(w.branches, branch{start: span[0], end: span[1], lits: lits})
		for _, l := range lits {
			if !contains(w.lits, l) && len(w.lits) < maxPruneLits {
				w.lits = append(w.lits, l)
			}
		}
	}
	w.variants = make([]atomic.Pointer[variant], 1<<len(w.lits))
	// With every literal present nothing is pruned: the whole pattern
	// must compile.
	if w.variant(len(w.variants)-1).re == nil {
		return nil
	}
	return w
}

// variant returns the variant for the literals in mask.
func (w *rewrite) variant(mask int) *variant {
	if v := w.variants[mask].Load(); v != nil {
		return v
	}
	// Two goroutines may build the same variant: either result will do.
	v := w.build(mask)
	w.variants[mask].Store(v)
	return v
}

// build compiles the pattern with the branches that need a literal
// outside mask replaced by one that never matches.
func (w *rewrite) build(mask int) *variant {
	var b strings.Builder
	at := 0
	for _, br := range w.branches {
		if br.start < at || w.present(br.lits, mask) {
			continue // inside a branch already removed, or alive
		}
		b.WriteString(w.py[at:br.start])
		b.WriteString(never)
		at = br.end
	}
	b.WriteString(w.py[at:])
	goPat, err := toRE2(b.String())
	if err != nil {
		return &variant{}
	}
	re, err := regexp.Compile(goPat)
	if err != nil {
		return &variant{}
	}
	v := &variant{re: re, names: append([]string(nil), re.SubexpNames()...)}
	for i, n := range v.names {
		if !strings.HasPrefix(n, hiddenGroup) {
			continue
		}
		for _, c := range w.checks {
			if c.group == n {
				v.checks = append(v.checks, indexedCheck{group: i, temperedCheck: c})
			}
		}
		v.names[i] = ""
	}
	return v
}

// present reports whether every literal of lits that chooses a variant is
// in mask.
func (w *rewrite) present(lits []string, mask int) bool {
	for i, l := range w.lits {
		if mask&(1<<i) == 0 && contains(lits, l) {
			return false
		}
	}
	return true
}

// match searches s. sure is false when RE2's match failed a check: the
// caller must ask regexp2.
func (w *rewrite) match(s string) (m Match, ok, sure bool) {
	mask := 0
	for i, l := range w.lits {
		if strings.Contains(s, l) {
			mask |= 1 << i
		}
	}
	v := w.variant(mask)
	if v.re == nil {
		return Match{}, false, false
	}
	loc := v.re.FindStringSubmatchIndex(s)
	if loc == nil {
		return Match{}, false, true
	}
	for _, c := range v.checks {
		if a, b := loc[2*c.group], loc[2*c.group+1]; a >= 0 && !c.holds(s, a, b) {
			return Match{}, false, false
		}
	}
	m = Match{Start: loc[0], End: loc[1], names: v.names, groups: make([]group, len(v.names))}
	for i := 1; i < len(v.names); i++ {
		if a := loc[2*i]; a >= 0 && v.names[i] != "" {
			m.groups[i] = group{s[a:loc[2*i+1]], true}
		}
	}
	return m, true, true
}

// pyBranches returns the branches of every alternation of the Python
// pattern p (of its groups, and of p itself), ordered by where they
// start, an enclosing branch before those within it.
func pyBranches(p string) [][2]int {
	type level struct {
		start int   // where the group's content starts
		bars  []int // its top-level "|"
	}
	var out [][2]int
	emit := func(l level, end int) {
		if len(l.bars) == 0 {
			return
		}
		from := l.start
		for _, bar := range l.bars {
			out = append(out, [2]int{from, bar})
			from = bar + 1
		}
		out = append(out, [2]int{from, end})
	}
	stack := []level{{start: 0}}
	scanPy(p, 0, func(i int) bool {
		switch p[i] {
		case '(':
			stack = append(stack, level{start: groupContentStart(p, i)})
		case ')':
			if len(stack) > 1 {
				emit(stack[len(stack)-1], i)
				stack = stack[:len(stack)-1]
			}
		case '|':
			top := &stack[len(stack)-1]
			top.bars = append(top.bars, i)
		}
		return true
	})
	emit(stack[0], len(p))
	sort.Slice(out, func(a, b int) bool {
		if out[a][0] != out[b][0] {
			return out[a][0] < out[b][0]
		}
		return out[a][1] > out[b][1]
	})
	return out
}

// groupContentStart returns where the content of the group opening at
// p[i] starts: past "(", "(?:", "(?P<name>" or "(?flags:".
func groupContentStart(p string, i int) int {
	if !strings.HasPrefix(p[i:], "(?") {
		return i + 1
	}
	if strings.HasPrefix(p[i:], "(?P<") {
		if j := strings.IndexByte(p[i:], '>'); j >= 0 {
			return i + j + 1
		}
	}
	for j := i + 2; j < len(p); j++ {
		if p[j] == ':' || p[j] == ')' {
			return j + 1
		}
	}
	return len(p)
}

// holds reports whether the group s[a:b] passes the check.
func (c temperedCheck) holds(s string, a, b int) bool {
	if c.lazy {
		// The literal follows the group: it must be the first one.
		return strings.Index(s[a:], c.lit) == b-a
	}
	return !strings.Contains(s[a:b], c.lit)
}

// mustLiterals returns literals that every match of re holds, each at
// least two bytes long.
func mustLiterals(re *syntax.Regexp) []string {
	var out []string
	add := func(l string) {
		if len(l) >= 2 && !contains(out, l) {
			out = append(out, l)
		}
	}
	switch re.Op {
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase == 0 {
			add(string(re.Rune))
		}
	case syntax.OpCapture, syntax.OpPlus:
		return mustLiterals(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return mustLiterals(re.Sub[0])
		}
	case syntax.OpConcat:
		var run strings.Builder
		for _, s := range re.Sub {
			if s.Op == syntax.OpLiteral && s.Flags&syntax.FoldCase == 0 {
				run.WriteString(string(s.Rune))
				continue
			}
			add(run.String())
			run.Reset()
			for _, l := range mustLiterals(s) {
				add(l)
			}
		}
		add(run.String())
	}
	return out
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

// rewritePython returns p with its conditionals written out and its
// tempered dots loosened, with the checks to make, or ok false when p
// has anything else that RE2 lacks.
func rewritePython(p string) (out string, checks []temperedCheck, ok bool) {
	if strings.Contains(p, hiddenGroup) {
		return "", nil, false
	}
	out = p
	for n := 0; n < 8 && strings.Contains(out, "(?("); n++ {
		r, ok := distributeConditional(out)
		if !ok || len(r) > maxRewrite {
			return "", nil, false
		}
		out = r
	}
	if strings.Contains(out, "(?(") {
		return "", nil, false
	}
	return rewriteTemperedDots(out)
}

// distributeConditional resolves the first conditional of p, on the
// definition of its group that it follows on the same path.
func distributeConditional(p string) (string, bool) {
	at := strings.Index(p, "(?(")
	name, _, ok := strings.Cut(p[at+3:], ")")
	if !ok || !isGroupName(name) {
		return "", false
	}
	if quantifiedAround(p, at) {
		// A repetition keeps the group's value from an earlier turn.
		return "", false
	}
	opener := "(?P<" + name + ">"
	for def := strings.LastIndex(p[:at], opener); def >= 0; def = strings.LastIndex(p[:def], opener) {
		if quantifiedAround(p, def) {
			return "", false
		}
		if out, ok := distributeAt(p, def, name, at); ok {
			return out, true
		}
	}
	return "", false
}

// distributeAt resolves the conditionals on group name that follow its
// definition at def, when the conditional at at is one of them.
func distributeAt(p string, def int, name string, at int) (string, bool) {
	end := groupEnd(p, def)
	// within checks that at lies in the continuation p[lo:hi] of the
	// definition, with no other definition of the group in it.
	within := func(lo, hi int) bool {
		return lo <= at && at < hi && !strings.Contains(p[lo:hi], "(?P<"+name+">")
	}
	switch {
	case end < len(p) && p[end] == '?' && (end+1 >= len(p) || !strings.ContainsRune("?+", rune(p[end+1]))):
		// (?P<g>X)? REST, REST running to the end of its branch: Python
		// tries X first, then nothing.
		stop := branchEnd(p, end+1)
		if !within(end+1, stop) {
			return "", false
		}
		x, rest := p[def:end], p[end+1:stop]
		return p[:def] + "(?:" + x + resolveConditional(rest, name, true) + "|" + resolveConditional(rest, name, false) + ")" + p[stop:], true
	case end < len(p) && p[end] == '|':
		// (G: (?P<g>X) | ALT) REST: g is taken exactly when G's first
		// branch is.
		open := strings.LastIndexByte(p[:def], '(')
		if open < 0 || !isGroupOpening(p[open:def]) {
			return "", false
		}
		gEnd := groupEnd(p, open)
		if gEnd > len(p) || p[gEnd-1] != ')' || (gEnd < len(p) && strings.ContainsRune("?*+{", rune(p[gEnd]))) {
			return "", false
		}
		stop := branchEnd(p, gEnd)
		if !within(end+1, stop) {
			return "", false
		}
		opening, a1, alt, rest := p[open:def], p[def:end], p[end+1:gEnd-1], p[gEnd:stop]
		return p[:open] + "(?:" + opening + a1 + ")" + resolveConditional(rest, name, true) +
			"|" + opening + resolveConditional(alt, name, false) + ")" + resolveConditional(rest, name, false) + ")" + p[stop:], true
	}
	return "", false
}

// branchEnd returns where the branch that p[i] is in ends: at the next
// "|" of its group (or of the whole pattern), or at the ")" closing the
// group, or at the end of p.
func branchEnd(p string, i int) int {
	depth, at := 0, len(p)
	scanPy(p, i, func(j int) bool {
		switch p[j] {
		case '(':
			depth++
		case ')':
			if depth == 0 {
				at = j
				return false
			}
			depth--
		case '|':
			if depth == 0 {
				at = j
				return false
			}
		}
		return true
	})
	return at
}

// isGroupOpening reports whether s opens a group with no other text: "(",
// "(?:" or "(?P<name>".
func isGroupOpening(s string) bool {
	if s == "(" || s == "(?:" {
		return true
	}
	name, ok := strings.CutPrefix(s, "(?P<")
	return ok && strings.HasSuffix(name, ">") && isGroupName(name[:len(name)-1])
}

func isGroupName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// resolveConditional replaces every (?(name)YES|NO) of s by YES when set,
// else by NO (empty when absent), kept in a group.
func resolveConditional(s, name string, set bool) string {
	head := "(?(" + name + ")"
	var b strings.Builder
	for {
		i := strings.Index(s, head)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		end := groupEnd(s, i)
		body := s[i+len(head) : end-1]
		yes, no := body, ""
		if bar := firstTopBar(body); bar >= 0 {
			yes, no = body[:bar], body[bar+1:]
		}
		b.WriteString(s[:i])
		b.WriteString("(?:")
		if set {
			b.WriteString(yes)
		} else {
			b.WriteString(no)
		}
		b.WriteString(")")
		s = s[end:]
	}
}

// firstTopBar returns the index of the first "|" of s outside its
// groups, or -1.
func firstTopBar(s string) int {
	depth, at := 0, -1
	scanPy(s, 0, func(j int) bool {
		switch s[j] {
		case '(':
			depth++
		case ')':
			depth--
		case '|':
			if depth == 0 {
				at = j
				return false
			}
		}
		return true
	})
	return at
}

// rewriteTemperedDots replaces the tempered dots of p that have an exact
// RE2 form; it fails if any look-around is left.
func rewriteTemperedDots(p string) (string, []temperedCheck, bool) {
	var b strings.Builder
	var checks []temperedCheck
	orig, offset := p, 0 // offset: of p in orig
	for {
		i := strings.Index(p, "(?:(?!")
		if i < 0 {
			b.WriteString(p)
			break
		}
		la := i + 3 // the look-ahead
		laEnd := groupEnd(p, la)
		lit, ok := plainLiteral(p[la+3 : laEnd-1])
		if !ok || !strings.HasPrefix(p[laEnd:], ".)*") {
			return "", nil, false
		}
		after := laEnd + 3
		lazy := after < len(p) && p[after] == '?'
		if lazy {
			after++
		}
		rest := strings.TrimLeft(p[after:], ")")
		switch {
		case lazy && strings.HasPrefix(rest, p[la+3:laEnd-1]):
			// The literal itself follows.
		case !lazy && strings.HasPrefix(rest, "$") && !strings.HasPrefix(orig, "(?m)"):
			// The dot runs to the end of the line, whatever follows.
		default:
			return "", nil, false
		}
		if quantifiedAround(orig, offset+i) {
			return "", nil, false
		}
		c := temperedCheck{group: fmt.Sprintf("%s%d", hiddenGroup, len(checks)), lit: lit, lazy: lazy}
		checks = append(checks, c)
		b.WriteString(p[:i])
		if lazy {
			b.WriteString("(?P<" + c.group + ">.*?)")
		} else {
			b.WriteString("(?P<" + c.group + ">.*)")
		}
		offset += after
		p = p[after:]
	}
	out := b.String()
	if f, _ := pyOnly(out); f != "" {
		return "", nil, false
	}
	return out, checks, true
}

// quantifiedAround reports whether the position i of p lies inside a
// group that repeats (a group's capture then holds only its last turn).
func quantifiedAround(p string, i int) bool {
	quantified := false
	var open []int
	scanPy(p, 0, func(j int) bool {
		switch p[j] {
		case '(':
			open = append(open, j)
		case ')':
			if len(open) == 0 {
				return true
			}
			start := open[len(open)-1]
			open = open[:len(open)-1]
			if start < i && i < j && j+1 < len(p) && strings.ContainsRune("*+?{", rune(p[j+1])) {
				quantified = true
				return false
			}
		}
		return true
	})
	return quantified
}

// plainLiteral returns the text a pattern of literal characters only
// (escaped punctuation allowed) stands for.
func plainLiteral(p string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\\':
			if i+1 >= len(p) || !strings.ContainsRune(`.-:/[](){}*+?|^$\ `, rune(p[i+1])) {
				return "", false
			}
			i++
			b.WriteByte(p[i])
		case strings.ContainsRune(`.[](){}*+?|^$`, rune(c)) || c >= 0x80 || c == '\n':
			return "", false
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), b.Len() > 0
}

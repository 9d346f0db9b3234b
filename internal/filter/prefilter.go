package filter

import (
	"regexp"
	"regexp/syntax"
	"strings"

	"github.com/edgeban/edgeban/internal/datetime"
)

// A literal prefilter lets most lines skip a regex without running it:
// from the RE2 program's syntax tree we take a set of literal strings at
// least one of which occurs in every text the regex matches. A text that
// contains none of them cannot match. Patterns matched by regexp2, and
// patterns for which no such set is found, have no prefilter.

// minLiteral is the shortest literal worth a prefilter: shorter ones
// occur in too many lines to reject any.
const minLiteral = 3

// requiredLiterals returns a set of literals one of which every match of
// re contains, or nil when there is none worth using.
func requiredLiterals(re *syntax.Regexp) []string {
	lits, ok := required(re)
	if !ok || len(lits) == 0 || len(lits) > 16 {
		return nil
	}
	for _, l := range lits {
		if len(l) < minLiteral {
			return nil
		}
	}
	return dedupe(lits)
}

// required computes the set for one node.
func required(re *syntax.Regexp) ([]string, bool) {
	switch re.Op {
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 {
			return nil, false
		}
		return []string{string(re.Rune)}, true
	case syntax.OpCapture, syntax.OpPlus:
		return required(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min < 1 {
			return nil, false
		}
		return required(re.Sub[0])
	case syntax.OpConcat:
		// Adjacent children that each match one of a few exact texts
		// make longer literals (their cross product): literals split by
		// a capture group, a small class such as [aA] or a short
		// alternation such as (?:failure|error). Otherwise the child
		// with the best set wins.
		var best []string
		score := -1
		consider := func(lits []string) {
			if s := minLen(lits); s > score {
				best, score = lits, s
			}
		}
		var run []string // nil: no run
		for _, sub := range re.Sub {
			if ex, ok := exact(sub); ok {
				if run == nil {
					run = ex
				} else if r, ok := crossProduct(run, ex); ok {
					run = r
				} else {
					consider(run)
					run = ex
				}
				continue
			}
			if run != nil {
				consider(run)
				run = nil
			}
			if lits, ok := required(sub); ok {
				consider(lits)
			}
		}
		if run != nil {
			consider(run)
		}
		return best, score >= 0
	case syntax.OpAlternate:
		var all []string
		for _, sub := range re.Sub {
			lits, ok := required(sub)
			if !ok {
				return nil, false
			}
			all = append(all, lits...)
		}
		return all, true
	}
	return nil, false
}

// maxExact bounds the texts an exact set may hold.
const maxExact = 16

// exact returns the texts re matches when they are few (at most
// maxExact): each match of re is one of them. Assertions, which match
// no text, give "".
func exact(re *syntax.Regexp) ([]string, bool) {
	switch re.Op {
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 {
			return nil, false
		}
		return []string{string(re.Rune)}, true
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText,
		syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return []string{""}, true
	case syntax.OpCapture:
		return exact(re.Sub[0])
	case syntax.OpCharClass:
		// Pairs of rune bounds, lo and hi.
		var out []string
		for i := 0; i+1 < len(re.Rune); i += 2 {
			for r := re.Rune[i]; r <= re.Rune[i+1]; r++ {
				if len(out) == 4 {
					return nil, false
				}
				out = append(out, string(r))
			}
		}
		return out, len(out) > 0
	case syntax.OpConcat:
		run := []string{""}
		for _, sub := range re.Sub {
			ex, ok := exact(sub)
			if !ok {
				return nil, false
			}
			if run, ok = crossProduct(run, ex); !ok {
				return nil, false
			}
		}
		return run, true
	case syntax.OpAlternate:
		var all []string
		for _, sub := range re.Sub {
			ex, ok := exact(sub)
			if !ok || len(all)+len(ex) > maxExact {
				return nil, false
			}
			all = append(all, ex...)
		}
		return all, true
	}
	return nil, false
}

// crossProduct returns each text of a followed by each of b, unless there
// would be more than maxExact.
func crossProduct(a, b []string) ([]string, bool) {
	if len(a)*len(b) > maxExact {
		return nil, false
	}
	out := make([]string, 0, len(a)*len(b))
	for _, x := range a {
		for _, y := range b {
			out = append(out, x+y)
		}
	}
	return out, true
}

func minLen(lits []string) int {
	m := -1
	for _, l := range lits {
		if m < 0 || len(l) < m {
			m = len(l)
		}
	}
	return m
}

func dedupe(lits []string) []string {
	var out []string
	for _, l := range lits {
		dup := false
		for _, o := range out {
			if strings.Contains(l, o) {
				// Any text holding l holds o: o alone is enough.
				dup = true
				break
			}
		}
		if !dup {
			// Drop those that contain l.
			kept := out[:0]
			for _, o := range out {
				if !strings.Contains(o, l) {
					kept = append(kept, o)
				}
			}
			out = append(kept, l)
		}
	}
	return out
}

// mayMatch reports whether s contains one of lits (always true without
// a prefilter).
func mayMatch(lits []string, s string) bool {
	if lits == nil {
		return true
	}
	for _, l := range lits {
		if strings.Contains(s, l) {
			return true
		}
	}
	return false
}

// matchesAnyLine reports whether re, a prefregex, matches every
// non-empty line: an anchored sequence of parts that can all match
// nothing, followed by a group capturing `.+` up to the end. fail2ban's
// common prefix lines (optional host, daemon, pid...) are of that form;
// such a prefregex needs to run only on lines a failregex may match.
func matchesAnyLine(re *syntax.Regexp) bool {
	if re.Op != syntax.OpConcat || len(re.Sub) < 3 {
		return false
	}
	subs := re.Sub
	first, last := subs[0], subs[len(subs)-1]
	if first.Op != syntax.OpBeginText && first.Op != syntax.OpBeginLine {
		return false
	}
	if last.Op != syntax.OpEndText && last.Op != syntax.OpEndLine {
		return false
	}
	content := subs[len(subs)-2]
	if content.Op != syntax.OpCapture || content.Name != "content" {
		return false
	}
	body := content.Sub[0]
	if body.Op != syntax.OpPlus || body.Sub[0].Op != syntax.OpAnyCharNotNL {
		return false
	}
	for _, s := range subs[1 : len(subs)-2] {
		if !nullable(s) {
			return false
		}
	}
	return true
}

// nullable reports whether re always can match the empty string, with
// no assertion that could fail.
func nullable(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpEmptyMatch, syntax.OpStar, syntax.OpQuest:
		return true
	case syntax.OpRepeat:
		return re.Min == 0 || nullable(re.Sub[0])
	case syntax.OpCapture, syntax.OpPlus:
		return nullable(re.Sub[0])
	case syntax.OpConcat:
		for _, s := range re.Sub {
			if !nullable(s) {
				return false
			}
		}
		return true
	case syntax.OpAlternate:
		for _, s := range re.Sub {
			if nullable(s) {
				return true
			}
		}
	}
	return false
}

// literalsOf returns the prefilter of r, nil for none.
func literalsOf(r *Regex) []string {
	var pattern string
	if r.re != nil {
		p, err := shapeRE2(r.python())
		if err != nil {
			return nil
		}
		pattern = p
	} else {
		// A regexp2 pattern: the literals of a looser RE2 pattern are
		// required by it too.
		p, err := shapeRE2(relaxPython(r.expanded))
		if err != nil {
			if l := leadingLiteral(r.expanded); len(l) >= minLiteral {
				return []string{l}
			}
			return nil
		}
		if r.multiline {
			p = "(?m)" + p
		}
		pattern = p
	}
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil
	}
	return requiredLiterals(re.Simplify())
}

// relaxPython rewrites the Python-only parts of a pattern so that the
// result matches at least what p matches, as far as the literals it must
// contain go: look-arounds match nothing, a back-reference any text (so
// that no literal is joined across it), and a conditional group
// (?(name)yes|no) becomes (?:|yes|no).
func relaxPython(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\\' && i+1 < len(p):
			if d := p[i+1]; d >= '1' && d <= '9' {
				b.WriteString("(?s:.*)")
				i++
				for i+1 < len(p) && p[i+1] >= '0' && p[i+1] <= '9' {
					i++
				}
				continue
			}
			b.WriteString(p[i : i+2])
			i++
		case c == '[':
			j := classEnd(p, i)
			b.WriteString(p[i:j])
			i = j - 1
		case c == '(' && strings.HasPrefix(p[i:], "(?P="):
			j := strings.IndexByte(p[i:], ')')
			if j < 0 {
				b.WriteString(p[i:])
				return b.String()
			}
			b.WriteString("(?s:.*)")
			i += j
		case c == '(' && (strings.HasPrefix(p[i:], "(?=") || strings.HasPrefix(p[i:], "(?!") ||
			strings.HasPrefix(p[i:], "(?<=") || strings.HasPrefix(p[i:], "(?<!")):
			b.WriteString("(?:)")
			i = groupEnd(p, i) - 1
		case c == '(' && strings.HasPrefix(p[i:], "(?("):
			j := strings.IndexByte(p[i+3:], ')')
			if j < 0 {
				b.WriteString(p[i:])
				return b.String()
			}
			b.WriteString("(?:|")
			i += 3 + j
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// classEnd returns the index just past the character class starting at
// p[i] == '['.
func classEnd(p string, i int) int {
	n, _, _ := classOpening(p, i)
	j := i + n
	for ; j < len(p); j++ {
		switch p[j] {
		case '\\':
			j++
		case ']':
			return j + 1
		}
	}
	return len(p)
}

// groupEnd returns the index just past the group starting at p[i] == '('.
func groupEnd(p string, i int) int {
	depth, end := 0, len(p)
	scanPy(p, i, func(j int) bool {
		switch p[j] {
		case '(':
			depth++
		case ')':
			if depth--; depth == 0 {
				end = j + 1
				return false
			}
		}
		return true
	})
	return end
}

// anyLineRegex reports whether r matches every non-empty line (see
// matchesAnyLine).
func anyLineRegex(r *Regex) bool {
	if r.re == nil {
		return false
	}
	re, err := r.shape()
	if err != nil {
		return false
	}
	return matchesAnyLine(re.Simplify())
}

// leadingLiteral returns the literal text a Python pattern anchored with
// "^" starts with, for patterns RE2 cannot parse: the characters up to
// the first metacharacter, less the last one when a quantifier follows.
func leadingLiteral(p string) string {
	if !strings.HasPrefix(p, "^") {
		return ""
	}
	var b strings.Builder
	for i := 1; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\\' && i+1 < len(p) && strings.IndexByte(` .-:/[](){}*+?|^$`, p[i+1]) >= 0:
			i++
			c = p[i]
		case strings.IndexByte(`\.^$|?*+()[]{}`, c) >= 0:
			return trimQuantified(b.String(), p[i:])
		case c >= 0x80:
			return trimQuantified(b.String(), p[i:])
		}
		b.WriteByte(c)
	}
	return b.String()
}

// trimQuantified drops the last character of lit when rest starts with
// a quantifier, which makes it optional.
func trimQuantified(lit, rest string) string {
	if rest != "" && strings.IndexByte("?*{", rest[0]) >= 0 && lit != "" {
		return lit[:len(lit)-1]
	}
	return lit
}

// prefixOnly returns, for a prefregex of the form ^PREFIX(?P<content>.+)$,
// an equivalent for single lines that stops one character into the
// content: ^PREFIX(?P<content>.). On a line without "\n", ".+$" holds
// exactly when at least one character is left, so both choose the same
// PREFIX, and the content runs from the group's start to the end of the
// line. The shorter match spares the matcher a step per character of the
// message. It returns nil for other shapes.
func prefixOnly(r *Regex) *Regex {
	const tail = "(?P<content>.+)$"
	if r.re == nil || r.multiline || !strings.HasSuffix(r.expanded, tail) {
		return nil
	}
	re, err := r.shape()
	if err != nil || re.Op != syntax.OpConcat || len(re.Sub) < 3 {
		return nil
	}
	subs := re.Sub
	last, content := subs[len(subs)-1], subs[len(subs)-2]
	if last.Op != syntax.OpEndText || content.Op != syntax.OpCapture || content.Name != "content" {
		return nil
	}
	if body := content.Sub[0]; body.Op != syntax.OpPlus || body.Sub[0].Op != syntax.OpAnyCharNotNL {
		return nil
	}
	head := strings.ReplaceAll(r.expanded[:len(r.expanded)-len(tail)], reIP6, reIP6RE2)
	goPat, err := toRE2(head + "(?P<content>.)")
	if err != nil {
		return nil
	}
	fast, err := regexp.Compile(goPat)
	if err != nil || fast.NumSubexp() != r.re.NumSubexp() {
		return nil
	}
	return &Regex{source: r.source, expanded: r.expanded, re: fast, names: fast.SubexpNames()}
}

// prefixSets returns, for a regex anchored at the start of the text, the
// ASCII bytes each of its first characters may be, as far as they are
// fixed: a text whose first bytes fall outside them cannot match. A
// position stops the list as soon as it could hold a non-ASCII character
// (so a byte is a character up to there).
func prefixSets(re *syntax.Regexp) []*[256]bool {
	var sets []*[256]bool
	var walk func(re *syntax.Regexp, anchored bool) (anchoredOut, more bool)
	add := func(set *[256]bool) bool {
		if len(sets) >= 8 {
			return false
		}
		sets = append(sets, set)
		return true
	}
	walk = func(re *syntax.Regexp, anchored bool) (bool, bool) {
		switch re.Op {
		case syntax.OpBeginText:
			return true, true
		case syntax.OpCapture:
			return walk(re.Sub[0], anchored)
		case syntax.OpConcat:
			for _, s := range re.Sub {
				var more bool
				anchored, more = walk(s, anchored)
				if !more {
					return anchored, false
				}
			}
			return anchored, true
		case syntax.OpLiteral:
			if !anchored {
				return false, false
			}
			for _, r := range re.Rune {
				if r >= 0x80 {
					return true, false
				}
				var set [256]bool
				set[r] = true
				if re.Flags&syntax.FoldCase != 0 {
					if r == 'k' || r == 'K' || r == 's' || r == 'S' {
						return true, false // also folds to a non-ASCII letter
					}
					if 'a' <= r && r <= 'z' {
						set[r-'a'+'A'] = true
					} else if 'A' <= r && r <= 'Z' {
						set[r-'A'+'a'] = true
					}
				}
				if !add(&set) {
					return true, false
				}
			}
			return true, true
		case syntax.OpCharClass:
			if !anchored {
				return false, false
			}
			var set [256]bool
			for i := 0; i+1 < len(re.Rune); i += 2 {
				lo, hi := re.Rune[i], re.Rune[i+1]
				if hi >= 0x80 {
					return true, false
				}
				for c := lo; c <= hi; c++ {
					set[c] = true
				}
			}
			return true, add(&set)
		}
		return anchored, false
	}
	walk(re, false)
	return sets
}

// prefixOK reports whether s may start as sets say.
func prefixOK(sets []*[256]bool, s string) bool {
	for i, set := range sets {
		if i >= len(s) || !set[s[i]] {
			return false
		}
	}
	return true
}

// prefixSetsOf returns the prefix sets of an RE2 regex (nil for regexp2
// ones and unanchored ones).
func prefixSetsOf(r *Regex) []*[256]bool {
	if r.re == nil || r.multiline {
		return nil
	}
	re, err := syntax.Parse(r.re.String(), syntax.Perl)
	if err != nil {
		return nil
	}
	return prefixSets(re.Simplify())
}

// candSet tells, in one pass over a text, which regexes of a filter may
// match it: bit i stands for regex i, set when the text holds one of its
// literals or when the regex has none.
type candSet struct {
	// near is a small first sieve (it stays in the CPU's first-level
	// cache): bit c&63 of near[b] is set when a literal starts with the
	// bytes b, c.
	near   [256]uint64
	byPair [1 << 16]uint8 // 1 + index into lists, 0 for none
	lists  [][]candLit
	always uint64
}

type candLit struct {
	lit   string
	mask  uint64
	bytes byteSet // the bytes lit is made of
}

// byteSet is a set of byte values.
type byteSet [4]uint64

func (b *byteSet) add(c byte) { b[c>>6] |= 1 << (c & 63) }

func (b *byteSet) has(c byte) bool { return b[c>>6]&(1<<(c&63)) != 0 }

// within reports whether every byte of b is in o.
func (b *byteSet) within(o *byteSet) bool {
	return b[0]&^o[0] == 0 && b[1]&^o[1] == 0 && b[2]&^o[2] == 0 && b[3]&^o[3] == 0
}

// joinable reports whether one of the literals could appear in s with a
// piece of s cut out, as the text a regex sees is a line with its date
// cut out: whether some literal splits into a head that s contains and a
// tail that s contains. A literal with a byte s lacks cannot. r is where
// the detector's dates lie: a head ends where the date starts, a tail
// starts where it ends.
func (cs *candSet) joinable(s string, r datetime.Reach) bool {
	heads := s[:r.Lead(s)]
	if heads == "" || len(s) < 2 {
		return false
	}
	var present byteSet
	for i := 0; i < len(heads); i++ {
		present.add(heads[i])
	}
	for _, list := range cs.lists {
		for _, c := range list {
			if r.Start < 0 {
				// heads is s: every byte of a literal is in it.
				if !c.bytes.within(&present) {
					continue
				}
			} else if !present.has(c.lit[0]) {
				continue
			}
			tails := s
			if r.End >= 0 && r.End+len(c.lit) < len(s) {
				tails = s[:r.End+len(c.lit)]
			}
			if c.splits(heads, tails) {
				return true
			}
		}
	}
	return false
}

// splits reports whether c's literal splits into a head that heads
// contains and a tail that tails contains.
func (c *candLit) splits(heads, tails string) bool {
	l := c.lit
	if !strings.Contains(heads, l[:1]) {
		return false
	}
	head := 1 // the longest head of l that heads contains
	for head < len(l)-1 && strings.Contains(heads, l[:head+1]) {
		head++
	}
	// A tail is at least len(l)-head long, and holds the shortest one.
	return strings.Contains(tails, l[head:])
}

// newCandSet builds the set for regexes with the given literal sets (nil:
// no prefilter); it returns nil for more than 64 regexes.
func newCandSet(lits [][]string) *candSet {
	if len(lits) > 64 {
		return nil
	}
	cs := &candSet{}
	for i, ls := range lits {
		if ls == nil {
			cs.always |= 1 << i
			continue
		}
		for _, l := range ls {
			k := uint16(l[0])<<8 | uint16(l[1])
			cs.near[l[0]] |= 1 << (l[1] & 63)
			if cs.byPair[k] == 0 {
				if len(cs.lists) == 255 {
					return nil
				}
				cs.lists = append(cs.lists, nil)
				cs.byPair[k] = uint8(len(cs.lists))
			}
			j := cs.byPair[k] - 1
			var bs byteSet
			for k := 0; k < len(l); k++ {
				bs.add(l[k])
			}
			cs.lists[j] = append(cs.lists[j], candLit{lit: l, mask: 1 << i, bytes: bs})
		}
	}
	return cs
}

// of returns the regexes that may match s.
func (cs *candSet) of(s string) uint64 {
	mask := cs.always
	if len(s) < 2 {
		return mask
	}
	for i := 1; i < len(s); i++ {
		if cs.near[s[i-1]]&(1<<(s[i]&63)) == 0 {
			continue
		}
		if j := cs.byPair[uint16(s[i-1])<<8|uint16(s[i])]; j != 0 {
			rest := s[i-1:]
			for _, c := range cs.lists[j-1] {
				if mask&c.mask == 0 && len(rest) >= len(c.lit) && rest[:len(c.lit)] == c.lit {
					mask |= c.mask
				}
			}
		}
	}
	return mask
}

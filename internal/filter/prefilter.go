package filter

import (
	"regexp/syntax"
	"strings"
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
		// Adjacent literals make a longer one; otherwise the child with
		// the best set wins.
		var best []string
		score := -1
		var run strings.Builder
		flush := func() {
			if run.Len() > 0 {
				if s := run.Len(); s > score {
					best, score = []string{run.String()}, s
				}
				run.Reset()
			}
		}
		for _, sub := range re.Sub {
			if sub.Op == syntax.OpLiteral && sub.Flags&syntax.FoldCase == 0 {
				run.WriteString(string(sub.Rune))
				continue
			}
			flush()
			if lits, ok := required(sub); ok {
				if s := minLen(lits); s > score {
					best, score = lits, s
				}
			}
		}
		flush()
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
	if r.re == nil {
		if l := leadingLiteral(r.expanded); len(l) >= minLiteral {
			return []string{l}
		}
		return nil
	}
	re, err := syntax.Parse(r.re.String(), syntax.Perl)
	if err != nil {
		return nil
	}
	return requiredLiterals(re.Simplify())
}

// anyLineRegex reports whether r matches every non-empty line (see
// matchesAnyLine).
func anyLineRegex(r *Regex) bool {
	if r.re == nil {
		return false
	}
	re, err := syntax.Parse(r.re.String(), syntax.Perl)
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

// litSet finds whether a text holds one of a set of literals in one pass:
// a bitmap of the literals' first two bytes marks where to compare.
type litSet struct {
	lits  []string
	pairs [1 << 16 / 64]uint64
}

func newLitSet(lits []string) *litSet {
	if len(lits) == 0 {
		return nil
	}
	ls := &litSet{lits: lits}
	for _, l := range lits {
		k := uint16(l[0])<<8 | uint16(l[1])
		ls.pairs[k>>6] |= 1 << (k & 63)
	}
	return ls
}

// in reports whether s contains one of the literals.
func (ls *litSet) in(s string) bool {
	for i := 0; i+1 < len(s); i++ {
		k := uint16(s[i])<<8 | uint16(s[i+1])
		if ls.pairs[k>>6]&(1<<(k&63)) == 0 {
			continue
		}
		rest := s[i:]
		for _, l := range ls.lits {
			if strings.HasPrefix(rest, l) {
				return true
			}
		}
	}
	return false
}

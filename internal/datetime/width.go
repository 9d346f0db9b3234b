package datetime

import (
	"regexp/syntax"
	"unicode"
	"unicode/utf8"
)

// anchoredWidth returns, for a regex anchored at the start of the text
// whose matches are at most n bytes long, n; otherwise -1. Such a regex
// gives the same match on line[:n+1] as on the whole line (every
// assertion it makes at or before byte n sees the same neighbours), which
// spares the matcher the rest of a long line.
func anchoredWidth(p *syntax.Regexp) (bytes, runes int) {
	if !beginAnchored(p) {
		return -1, -1
	}
	return maxWidth(p, false), maxWidth(p, true)
}

// dateReach returns, for a regex anchored at the start of the text, the
// furthest byte at which its group number group can start and end (the
// widths of what comes before the group, and with the group; -1 when
// unbounded), and the bytes that the text before the group can hold. The
// reach is unbounded when the group is not at the regex's top level.
func dateReach(p *syntax.Regexp, group int) (start, end int, lead byteSet) {
	if !beginAnchored(p) || p.Op != syntax.OpConcat {
		return -1, -1, lead
	}
	off := 0
	for _, s := range p.Sub {
		w := maxWidth(s, false)
		if s.Op == syntax.OpCapture && s.Cap == group {
			if w < 0 {
				return off, -1, lead
			}
			return off, off + w, lead
		}
		if w < 0 {
			return -1, -1, lead
		}
		off += w
		addBytes(&lead, s)
	}
	return -1, -1, lead
}

// byteSet is a set of byte values.
type byteSet [4]uint64

func (b *byteSet) add(c byte) { b[c>>6] |= 1 << (c & 63) }

func (b *byteSet) has(c byte) bool { return b[c>>6]&(1<<(c&63)) != 0 }

// addBytes adds to set every byte that a match of re may hold.
func addBytes(set *byteSet, re *syntax.Regexp) {
	addRune := func(lo, hi rune) {
		for c := lo; c <= hi && c < utf8.RuneSelf; c++ {
			set.add(byte(c))
		}
		if hi >= utf8.RuneSelf {
			for c := 0x80; c <= 0xff; c++ {
				set.add(byte(c))
			}
		}
	}
	switch re.Op {
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			addRune(r, r)
			if re.Flags&syntax.FoldCase != 0 {
				for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
					addRune(f, f)
				}
			}
		}
	case syntax.OpCharClass:
		for i := 0; i+1 < len(re.Rune); i += 2 {
			addRune(re.Rune[i], re.Rune[i+1])
		}
	case syntax.OpAnyCharNotNL, syntax.OpAnyChar:
		addRune(0, utf8.MaxRune)
	default:
		for _, s := range re.Sub {
			addBytes(set, s)
		}
	}
}

func beginAnchored(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpBeginText:
		return true
	case syntax.OpCapture:
		return beginAnchored(re.Sub[0])
	case syntax.OpConcat:
		// Empty groups (fail2ban's position markers) may come first.
		for _, s := range re.Sub {
			if beginAnchored(s) {
				return true
			}
			if maxWidth(s, false) != 0 {
				return false
			}
		}
		return false
	case syntax.OpAlternate:
		for _, s := range re.Sub {
			if !beginAnchored(s) {
				return false
			}
		}
		return len(re.Sub) > 0
	}
	return false
}

// maxWidth is the longest match of re in bytes (in characters when runes
// is set), or -1 when unbounded.
func maxWidth(re *syntax.Regexp, runes bool) int {
	switch re.Op {
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText,
		syntax.OpEndText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return 0
	case syntax.OpLiteral:
		if runes {
			return len(re.Rune)
		}
		n := 0
		for _, r := range re.Rune {
			if re.Flags&syntax.FoldCase != 0 {
				n += utf8.UTFMax
			} else {
				n += utf8.RuneLen(r)
			}
		}
		return n
	case syntax.OpCharClass:
		if runes {
			return 1
		}
		hi := rune(0)
		for i := 1; i < len(re.Rune); i += 2 {
			hi = max(hi, re.Rune[i])
		}
		if hi > utf8.MaxRune || hi < 0 {
			return utf8.UTFMax
		}
		return max(utf8.RuneLen(hi), 1)
	case syntax.OpAnyCharNotNL, syntax.OpAnyChar:
		if runes {
			return 1
		}
		return utf8.UTFMax
	case syntax.OpCapture, syntax.OpQuest:
		return maxWidth(re.Sub[0], runes)
	case syntax.OpRepeat:
		if re.Max < 0 {
			return -1
		}
		w := maxWidth(re.Sub[0], runes)
		if w < 0 {
			return -1
		}
		return w * re.Max
	case syntax.OpConcat:
		n := 0
		for _, s := range re.Sub {
			w := maxWidth(s, runes)
			if w < 0 {
				return -1
			}
			n += w
		}
		return n
	case syntax.OpAlternate:
		n := 0
		for _, s := range re.Sub {
			w := maxWidth(s, runes)
			if w < 0 {
				return -1
			}
			n = max(n, w)
		}
		return n
	}
	return -1
}

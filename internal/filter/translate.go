package filter

import (
	"fmt"
	"strconv"
	"strings"
)

// Python 3 str patterns are Unicode-aware. These are the RE2 spellings of
// Python's \d, \w and \s (\s per str.isspace for the code points Python's
// re treats as whitespace).
const (
	uniDigit = `\p{Nd}`
	uniWord  = `\p{L}\p{N}_`
	uniSpace = `\t\n\v\f\r \x{1c}-\x{1f}\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}`
)

// pyOnly names the first Python regex feature in p that RE2 cannot
// express (lookaround, backreference, conditional, atomic group,
// possessive quantifier, verbose or ASCII flag), with its byte offset, or
// returns "" when there is none. p must already have the IPv6 lookbehind
// rewritten.
func pyOnly(p string) (feature string, pos int) {
	pos = -1
	scanPy(p, 0, func(i int) bool {
		c := p[i]
		switch {
		case c == '\\':
			if i+1 < len(p) && p[i+1] >= '1' && p[i+1] <= '9' {
				feature, pos = "backreference", i
			}
		case c == '(' && strings.HasPrefix(p[i:], "(?"):
			r := p[i+2:]
			switch {
			case strings.HasPrefix(r, "="), strings.HasPrefix(r, "!"):
				feature, pos = "lookahead", i
			case strings.HasPrefix(r, "<=") || strings.HasPrefix(r, "<!"):
				feature, pos = "lookbehind", i
			case strings.HasPrefix(r, "P="):
				feature, pos = "backreference", i
			case strings.HasPrefix(r, "("):
				feature, pos = "conditional", i
			case strings.HasPrefix(r, ">"):
				feature, pos = "atomic group", i
			}
			// inline flags RE2 lacks
			for k := 0; k < len(r) && r[k] >= 'a' && r[k] <= 'z' && pos < 0; k++ {
				if r[k] == 'x' || r[k] == 'a' || r[k] == 'L' {
					feature, pos = "flag (?"+string(r[k])+")", i
				}
			}
		case c == '+' && i > 0 && strings.ContainsRune("*+?}", rune(p[i-1])) && (i < 2 || p[i-2] != '\\'):
			feature, pos = "possessive quantifier", i
		}
		return pos < 0
	})
	return feature, pos
}

// scanPy walks the Python pattern p from byte i and calls fn at each
// position outside character classes, backslashes included (the escaped
// character is skipped after fn returns), until fn returns false.
func scanPy(p string, i int, fn func(i int) bool) {
	for ; i < len(p); i++ {
		if p[i] == '[' {
			i = classEnd(p, i) - 1
			continue
		}
		if !fn(i) {
			return
		}
		if p[i] == '\\' {
			i++
		}
	}
}

// toRE2 rewrites a Python pattern without Python-only features into RE2
// syntax with Python's meaning:
//
//   - \d \D \w \W \s \S become their Unicode forms (inside a character
//     class \W and \S keep Go's ASCII complement: they differ from Python
//     only on non-ASCII letters, digits and spaces);
//   - \Z becomes \z, \uXXXX and \UXXXXXXXX become \x{...};
//   - {,n} becomes {0,n};
//   - (?#...) comments are dropped.
//
// \b and \B stay ASCII word boundaries in RE2 (Python's are Unicode); they
// differ only next to non-ASCII letters or digits.
func toRE2(p string) (string, error) {
	return translatePy(p, false)
}

// shapeRE2 is toRE2 with ASCII classes for \d, \w and \s: a pattern with
// the same literals and structure, much cheaper to parse, for analyses
// that look at nothing else.
func shapeRE2(p string) (string, error) {
	return translatePy(p, true)
}

func translatePy(p string, ascii bool) (string, error) {
	var b strings.Builder
	inClass := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '\\' {
			if i+1 >= len(p) {
				return "", fmt.Errorf("trailing backslash at offset %d", i)
			}
			e := p[i+1]
			i++
			if ascii && strings.IndexByte("dDwWsS", e) >= 0 {
				b.WriteString(`\` + string(e))
				continue
			}
			switch e {
			case 'd':
				b.WriteString(uniDigit)
			case 'D':
				b.WriteString(`\P{Nd}`)
			case 'w', 'W', 's', 'S':
				// Python 3's Unicode classes; a negation inside a class
				// keeps Go's (ASCII) form.
				set, neg := uniWord, e == 'W' || e == 'S'
				if e == 's' || e == 'S' {
					set = uniSpace
				}
				switch {
				case inClass && neg:
					b.WriteString(`\` + string(e))
				case inClass:
					b.WriteString(set)
				case neg:
					b.WriteString("[^" + set + "]")
				default:
					b.WriteString("[" + set + "]")
				}
			case 'Z':
				b.WriteString(`\z`)
			case 'u', 'U':
				n := 4
				if e == 'U' {
					n = 8
				}
				if i+n >= len(p) {
					return "", fmt.Errorf("truncated \\%c escape at offset %d", e, i-1)
				}
				b.WriteString(`\x{` + p[i+1:i+1+n] + `}`)
				i += n
			default:
				b.WriteByte('\\')
				b.WriteByte(e)
			}
			continue
		}
		if inClass {
			if c == ']' {
				inClass = false
			}
			b.WriteByte(c)
			continue
		}
		switch {
		case c == '[':
			inClass = true
			i += writeClassOpening(&b, p, i) - 1
		case c == '{' && strings.HasPrefix(p[i:], "{,"):
			j := i + 2
			for j < len(p) && p[j] >= '0' && p[j] <= '9' {
				j++
			}
			if j > i+2 && j < len(p) && p[j] == '}' {
				b.WriteString("{0," + p[i+2:j] + "}")
				i = j
			} else {
				b.WriteString(`\{`) // Python: literal brace
			}
		case c == '(' && strings.HasPrefix(p[i:], "(?#"):
			j := strings.IndexByte(p[i:], ')')
			if j < 0 {
				return "", fmt.Errorf("unterminated comment at offset %d", i)
			}
			i += j
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// pyGroups lists the capturing groups of a Python pattern in Python's
// numbering (index 0 unused): the name of a named group, "" for an
// unnamed one.
func pyGroups(p string) []string {
	groups := []string{""}
	scanPy(p, 0, func(i int) bool {
		switch {
		case strings.HasPrefix(p[i:], "(?P<"):
			if j := strings.IndexByte(p[i:], '>'); j > 0 {
				groups = append(groups, p[i+4:i+j])
			}
		case p[i] == '(' && !strings.HasPrefix(p[i:], "(?"):
			groups = append(groups, "")
		}
		return true
	})
	return groups
}

// dotnetRef returns how regexp2 refers to Python's group n: by name for a
// named group, else by its number among unnamed groups (.NET numbers the
// unnamed groups first, then the named ones), or "" if there is no group n.
func dotnetRef(groups []string, n int) string {
	if n <= 0 || n >= len(groups) {
		return ""
	}
	if groups[n] != "" {
		return groups[n]
	}
	k := 0
	for _, g := range groups[1 : n+1] {
		if g == "" {
			k++
		}
	}
	return strconv.Itoa(k)
}

// leadingNumber parses up to two decimal digits (not starting with 0) at
// the start of s, as Python reads a group reference.
func leadingNumber(s string) (n, width int) {
	for width < len(s) && width < 2 && s[width] >= '0' && s[width] <= '9' {
		if width == 0 && s[0] == '0' {
			return 0, 0
		}
		n = n*10 + int(s[width]-'0')
		width++
	}
	return n, width
}

// toRegexp2 rewrites Python-only syntax into the .NET syntax regexp2 reads
// outside its RE2 mode: (?P<name> → (?<name>, (?P=name) → \k<name>,
// {,n} → {0,n}, \Z → \z, \s and \S with Python's separators \x1c-\x1f,
// and numbered backreferences and conditionals
// renumbered for .NET's order of groups (unnamed first, then named).
func toRegexp2(p string) string {
	groups := pyGroups(p)
	var b strings.Builder
	inClass := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\\' && i+1 < len(p):
			n, w := leadingNumber(p[i+1:])
			switch {
			case p[i+1] == 'Z' && !inClass:
				b.WriteString(`\z`)
			case p[i+1] == 's' || p[i+1] == 'S':
				// .NET's \s lacks the separators \x1c-\x1f that Python's
				// has (str.isspace); a negation inside a class keeps .NET's
				// form, as toRE2 keeps Go's.
				switch {
				case inClass && p[i+1] == 's':
					b.WriteString(`\s\x1c-\x1f`)
				case inClass:
					b.WriteString(`\S`)
				case p[i+1] == 's':
					b.WriteString(`[\s\x1c-\x1f]`)
				default:
					b.WriteString(`[^\s\x1c-\x1f]`)
				}
			case p[i+1] == 'w' || p[i+1] == 'W':
				// .NET's \w also takes the marks (Mn) and every connector
				// (Pc), which Python's (str.isalnum, and _) does not, and
				// lacks the letter-like and other numbers (Nl, No) that
				// Python's has: the same set as toRE2's. A negation inside
				// a class keeps .NET's form.
				switch {
				case inClass && p[i+1] == 'w':
					b.WriteString(uniWord)
				case inClass:
					b.WriteString(`\W`)
				case p[i+1] == 'w':
					b.WriteString("[" + uniWord + "]")
				default:
					b.WriteString("[^" + uniWord + "]")
				}
			case w > 0 && !inClass && dotnetRef(groups, n) != "":
				b.WriteString(`\k<` + dotnetRef(groups, n) + `>`)
				i += w - 1
			default:
				b.WriteString(p[i : i+2])
			}
			i++
		case inClass:
			if c == ']' {
				inClass = false
			}
			b.WriteByte(c)
		case c == '[':
			inClass = true
			i += writeClassOpening(&b, p, i) - 1
		case strings.HasPrefix(p[i:], "(?P<"):
			b.WriteString("(?<")
			i += 3
		case strings.HasPrefix(p[i:], "(?P="):
			j := strings.IndexByte(p[i:], ')')
			if j < 0 {
				b.WriteByte(c)
				continue
			}
			b.WriteString(`\k<` + p[i+4:i+j] + `>`)
			i += j
		case strings.HasPrefix(p[i:], "(?("):
			n, w := leadingNumber(p[i+3:])
			if ref := dotnetRef(groups, n); w > 0 && i+3+w < len(p) && p[i+3+w] == ')' && ref != "" {
				b.WriteString("(?(" + ref)
				i += 2 + w
				continue
			}
			b.WriteByte(c)
		case c == '{' && strings.HasPrefix(p[i:], "{,"):
			b.WriteString("{0,")
			i++
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// classOpening measures the opening of the character class at p[i] ==
// '[': "[", then "^" if negated, then a "]" that Python takes as a
// literal when it comes first.
func classOpening(p string, i int) (n int, negated, literalBracket bool) {
	n = 1
	if i+n < len(p) && p[i+n] == '^' {
		negated = true
		n++
	}
	if i+n < len(p) && p[i+n] == ']' {
		literalBracket = true
		n++
	}
	return n, negated, literalBracket
}

// writeClassOpening writes the opening of the class at p[i] in Go's
// syntax (a leading literal "]" escaped) and returns its length in p.
func writeClassOpening(b *strings.Builder, p string, i int) int {
	n, neg, lb := classOpening(p, i)
	b.WriteByte('[')
	if neg {
		b.WriteByte('^')
	}
	if lb {
		b.WriteString(`\]`)
	}
	return n
}

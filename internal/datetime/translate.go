package datetime

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// errUnsupported is wrapped by translate for Python regex syntax that has
// no RE2 equivalent here.
var errUnsupported = errors.New("unsupported in Go's RE2")

var reBackref = regexp.MustCompile(`\(\?P=(\w+)\)`)

// translate turns a template regex as fail2ban builds it (Python syntax)
// into an equivalent Go regex with two empty marker groups, the first
// (group 1) where Python's match starts and the last where it ends; the
// date, fail2ban's group 1, becomes group 2.
//
// The rewrites:
//
//   - the inline flags (?iu) become (?i) (Go folds case by Unicode rules too);
//
//   - the word-begin look-ahead (?=^|\b|\W) becomes the consuming
//     (?:^|\b|\W) before the marker: Python lets the date start at p when p
//     is the line start, a word boundary or a non-word character, Go lets it
//     start at p when p is the line start, a word boundary or after a
//     non-word character; the two differ only when p is not a boundary,
//     where the characters on both sides are of one class, so they accept
//     the same positions, in the same order;
//
//   - the word-end look-ahead (?=\b|\W|$) becomes the consuming (?:\b|\W|$)
//     after the marker: the same condition, and as RE2 keeps Perl's
//     leftmost-first priorities, the same date is chosen;
//
//   - a back-reference (?P=name) to a group matching one character of a
//     class, such as (?P<_sep>[-/.]), is expanded into an alternation with
//     one branch per character of the class, each repeating that literal
//     character where the back-reference was;
//
//   - \w \W \d \s (and their negations) become their Unicode forms, as
//     Python 3 matches them in str patterns; \b stays ASCII, the one
//     remaining difference (a non-ASCII letter or digit right next to a
//     date).
//
// Any other look-around, conditional or back-reference is an error
// wrapping errUnsupported.
func translate(py string) (string, error) {
	var flags string
	for _, f := range []string{"(?iu)", "(?ui)", "(?i)", "(?u)"} {
		if strings.HasPrefix(py, f) {
			py = py[len(f):]
			if strings.Contains(f, "i") {
				flags = "(?i)"
			}
			break
		}
	}
	begin := "()"
	if strings.HasPrefix(py, pyWordBegin) {
		py = py[len(pyWordBegin):]
		begin = `(?:^|\b|\W)()`
	}
	end := "()"
	if strings.HasSuffix(py, pyWordEnd) && !strings.HasSuffix(py, `\`+pyWordEnd) {
		py = py[:len(py)-len(pyWordEnd)]
		end = `()(?:\b|\W|$)`
	}
	body, err := expandBackrefs(py)
	if err != nil {
		return "", err
	}
	for _, bad := range []string{"(?=", "(?!", "(?<=", "(?<!", "(?(", "(?x", "(?P="} {
		if i := strings.Index(body, bad); i >= 0 && (i == 0 || body[i-1] != '\\') {
			return "", fmt.Errorf("%q in %q: %w", bad, py, errUnsupported)
		}
	}
	return unicodeClasses(flags + begin + body + end), nil
}

// expandBackrefs expands each back-reference to a one-character group.
func expandBackrefs(re string) (string, error) {
	for {
		loc := reBackref.FindStringSubmatchIndex(re)
		if loc == nil {
			return re, nil
		}
		name := re[loc[2]:loc[3]]
		open := "(?P<" + name + ">"
		gs := strings.LastIndex(re[:loc[0]], open)
		if gs < 0 {
			return "", fmt.Errorf("back-reference to unknown group %q: %w", name, errUnsupported)
		}
		ce := gs + len(open)
		chars, n, ok := parseOneCharClass(re[ce:])
		if !ok || ce+n >= len(re) || re[ce+n] != ')' {
			return "", fmt.Errorf("back-reference to group %q that is not one character class: %w", name, errUnsupported)
		}
		ge := ce + n + 1 // after the group
		between := re[ge:loc[0]]
		if !balanced(between) {
			return "", fmt.Errorf("back-reference to group %q at another nesting level: %w", name, errUnsupported)
		}
		var alts []string
		for _, c := range chars {
			lit := regexp.QuoteMeta(string(c))
			alts = append(alts, open+lit+")"+between+lit)
		}
		re = re[:gs] + "(?:" + strings.Join(alts, "|") + ")" + re[loc[1]:]
	}
}

// parseOneCharClass parses a character class "[...]" (no negation, ranges
// of at most 64 characters) or one literal character at the start of s and
// returns its characters and length.
func parseOneCharClass(s string) ([]rune, int, bool) {
	if s == "" {
		return nil, 0, false
	}
	if s[0] != '[' {
		if s[0] == '\\' && len(s) > 1 && strings.ContainsRune(`.-/\|:_ `, rune(s[1])) {
			return []rune{rune(s[1])}, 2, true
		}
		if strings.ContainsRune(`()[]{}*+?|^$.\`, rune(s[0])) {
			return nil, 0, false
		}
		return []rune{rune(s[0])}, 1, true
	}
	var out []rune
	i := 1
	if i < len(s) && s[i] == '^' {
		return nil, 0, false
	}
	for i < len(s) && (s[i] != ']' || i == 1) {
		c := rune(s[i])
		if c == '\\' {
			if i+1 >= len(s) || !strings.ContainsRune(`.-/\|:_ []`, rune(s[i+1])) {
				return nil, 0, false
			}
			c = rune(s[i+1])
			i++
		}
		if i+2 < len(s) && s[i+1] == '-' && s[i+2] != ']' {
			hi := rune(s[i+2])
			if hi < c || hi-c > 64 {
				return nil, 0, false
			}
			for r := c; r <= hi; r++ {
				out = append(out, r)
			}
			i += 3
			continue
		}
		out = append(out, c)
		i++
	}
	if i >= len(s) {
		return nil, 0, false
	}
	return out, i + 1, len(out) > 0
}

// balanced reports whether the parentheses of the regex fragment s are
// balanced (ignoring escaped ones and those in character classes).
func balanced(s string) bool {
	depth, inClass := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			i++
		case inClass:
			if c == ']' {
				inClass = false
			}
		case c == '[':
			inClass = true
			if i+1 < len(s) && s[i+1] == ']' {
				i++
			}
		case c == '(':
			depth++
		case c == ')':
			depth--
			if depth < 0 {
				return false
			}
		}
	}
	return depth == 0 && !inClass
}

// Unicode forms of Python 3's \w, \W, \d and \s (str patterns are Unicode
// by default there; Go's are ASCII).
const (
	uniWordClass  = `\p{L}\p{N}_`
	uniDigitClass = `\p{Nd}`
	uniSpaceClass = `\t\n\v\f\r\x1c-\x1f\p{Z}\x{85}`
)

// unicodeClasses rewrites \w \W \d \s \S \D outside character classes, and
// \w \d \s inside them, to their Unicode forms, as Python 3 matches them.
// \b stays ASCII (RE2 has no Unicode word boundary).
func unicodeClasses(re string) string {
	var b strings.Builder
	inClass := false
	for i := 0; i < len(re); i++ {
		c := re[i]
		if c == '\\' && i+1 < len(re) {
			n := re[i+1]
			i++
			if inClass {
				switch n {
				case 'w':
					b.WriteString(uniWordClass)
				case 'd':
					b.WriteString(uniDigitClass)
				case 's':
					b.WriteString(uniSpaceClass)
				default:
					b.WriteByte(c)
					b.WriteByte(n)
				}
				continue
			}
			switch n {
			case 'w':
				b.WriteString("[" + uniWordClass + "]")
			case 'W':
				b.WriteString("[^" + uniWordClass + "]")
			case 'd':
				b.WriteString(uniDigitClass)
			case 'D':
				b.WriteString(`\P{Nd}`)
			case 's':
				b.WriteString("[" + uniSpaceClass + "]")
			case 'S':
				b.WriteString("[^" + uniSpaceClass + "]")
			default:
				b.WriteByte(c)
				b.WriteByte(n)
			}
			continue
		}
		switch {
		case inClass && c == ']':
			inClass = false
		case !inClass && c == '[':
			inClass = true
			// a ] right after [ or [^ is literal
			if i+1 < len(re) && re[i+1] == '^' {
				b.WriteByte(c)
				i++
				c = re[i]
			}
			if i+1 < len(re) && re[i+1] == ']' {
				b.WriteByte(c)
				i++
				c = re[i]
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Time abbreviations, in the order fail2ban replaces them: each stands
// for its number of seconds when it follows a digit or a space. "m" is a
// minute; a month is "mo" or "mon".
var secondsUnits = []struct {
	re  *regexp.Regexp
	mul string
}{
	{regexp.MustCompile(`(?i)([\d\s])(days?|da|dd?)\b`), "*86400"},
	{regexp.MustCompile(`(?i)([\d\s])(weeks?|wee?|ww?)\b`), "*604800"},
	{regexp.MustCompile(`(?i)([\d\s])(months?|mon?)\b`), "*2629800"},
	{regexp.MustCompile(`(?i)([\d\s])(years?|yea?|yy?)\b`), "*31557600"},
	{regexp.MustCompile(`(?i)([\d\s])(seconds?|sec?|ss?)\b`), "*1"},
	{regexp.MustCompile(`(?i)([\d\s])(minutes?|min?|mm?)\b`), "*60"},
	{regexp.MustCompile(`(?i)([\d\s])(hours?|hou?|hh?)\b`), "*3600"},
}

var (
	// letterDigitRE finds a digit right after a letter ("1h30m"): the two
	// groups are apart.
	letterDigitRE = regexp.MustCompile(`([A-Za-z])(\d)`)
	// spacedDigitsRE finds two numbers with only space between: they add.
	spacedDigitsRE = regexp.MustCompile(`(\d)\s+(\d)`)
)

// Seconds reads a time as fail2ban's jail options write it (bantime,
// findtime, dbpurgeage...): a number of seconds, or an expression of
// numbers with abbreviations and arithmetic, such as "10m", "1d12h",
// "1h 30m", "1hour+30min", "2*60*60", "-1". Groups written side by side
// add up. The result may have a fraction.
func Seconds(s string) (float64, error) {
	expr := strings.TrimSpace(s)
	if expr == "" {
		return 0, fmt.Errorf("empty time")
	}
	if v, err := strconv.ParseFloat(expr, 64); err == nil {
		return v, nil
	}
	expr = letterDigitRE.ReplaceAllString(expr, "$1 $2")
	for _, u := range secondsUnits {
		// A replacement consumes the character before the unit, so two
		// passes cover units that share it ("1d d").
		for i := 0; i < 2; i++ {
			expr = u.re.ReplaceAllString(expr, "${1}"+u.mul)
		}
	}
	for i := 0; i < 2; i++ {
		expr = spacedDigitsRE.ReplaceAllString(expr, "$1+$2")
	}
	p := &arith{s: expr}
	v, err := p.sum()
	if err == nil {
		p.space()
		if p.i < len(p.s) {
			err = fmt.Errorf("unexpected %q", p.s[p.i:])
		}
	}
	if err != nil {
		return 0, fmt.Errorf("time %q: %w", s, err)
	}
	return v, nil
}

// arith evaluates + - * / and parentheses over numbers.
type arith struct {
	s     string
	i     int
	depth int
}

func (p *arith) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *arith) sum() (float64, error) {
	v, err := p.product()
	if err != nil {
		return 0, err
	}
	for {
		p.space()
		if p.i >= len(p.s) || (p.s[p.i] != '+' && p.s[p.i] != '-') {
			return v, nil
		}
		op := p.s[p.i]
		p.i++
		w, err := p.product()
		if err != nil {
			return 0, err
		}
		if op == '+' {
			v += w
		} else {
			v -= w
		}
	}
}

func (p *arith) product() (float64, error) {
	v, err := p.unary()
	if err != nil {
		return 0, err
	}
	for {
		p.space()
		if p.i >= len(p.s) || (p.s[p.i] != '*' && p.s[p.i] != '/') {
			return v, nil
		}
		op := p.s[p.i]
		p.i++
		w, err := p.unary()
		if err != nil {
			return 0, err
		}
		if op == '*' {
			v *= w
		} else if w == 0 {
			return 0, fmt.Errorf("division by zero")
		} else {
			v /= w
		}
	}
}

func (p *arith) unary() (float64, error) {
	p.space()
	if p.i < len(p.s) && (p.s[p.i] == '-' || p.s[p.i] == '+') {
		neg := p.s[p.i] == '-'
		p.i++
		if p.depth++; p.depth > 32 {
			return 0, fmt.Errorf("too deeply nested")
		}
		v, err := p.unary()
		p.depth--
		if neg {
			v = -v
		}
		return v, err
	}
	if p.i < len(p.s) && p.s[p.i] == '(' {
		if p.depth++; p.depth > 32 {
			return 0, fmt.Errorf("too deeply nested")
		}
		p.i++
		v, err := p.sum()
		if err != nil {
			return 0, err
		}
		p.space()
		if p.i >= len(p.s) || p.s[p.i] != ')' {
			return 0, fmt.Errorf("missing )")
		}
		p.i++
		p.depth--
		return v, nil
	}
	start := p.i
	for p.i < len(p.s) && (p.s[p.i] >= '0' && p.s[p.i] <= '9' || p.s[p.i] == '.') {
		p.i++
	}
	if start == p.i {
		if p.i < len(p.s) {
			return 0, fmt.Errorf("unexpected %q", p.s[p.i:])
		}
		return 0, fmt.Errorf("missing a number")
	}
	return strconv.ParseFloat(p.s[start:p.i], 64)
}

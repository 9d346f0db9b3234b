package config

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Spec is a reference to a filter or an action with its parameters, as
// written in a jail: `sshd[mode=aggressive]`,
// `iptables[name=SSH, port="22,2222", protocol='tcp']`.
type Spec struct {
	Name string
	// Options in the order their keys first appear; a key given twice
	// keeps its first place and takes its last value, as in fail2ban.
	Options []SpecOption
}

// SpecOption is one key=value parameter of a Spec.
type SpecOption struct {
	Key   string
	Value string
}

// Option returns the value of key (case-sensitive) and whether the spec
// has it.
func (s Spec) Option(key string) (string, bool) {
	for _, o := range s.Options {
		if o.Key == key {
			return o.Value, true
		}
	}
	return "", false
}

// ErrSpec is wrapped by the errors of ParseSpec.
var ErrSpec = errors.New("invalid filter/action specification")

// ParseSpec parses one specification, `name` or `name[key=value, ...]`,
// following fail2ban's rules (helpers.extractOptions):
//
//   - the name runs to the first "["; the options run from there to the
//     last "]", after which only whitespace may follow;
//   - options are separated by "," or by "][" (so `a[x=1][y=2]` is
//     `a[x=1, y=2]`); keys are letters, digits, "_", "-" and ".", with no
//     space before "=";
//   - a value is `"..."` or `'...'` when that quote follows "=" directly
//     and is closed (it may then hold "," and "]", and must be followed
//     by a separator or the end), or else everything up to the next ","
//     or "]"; values are trimmed of whitespace, even quoted ones; there are
//     no escapes.
//
// Unlike fail2ban, the name is trimmed of surrounding whitespace.
func ParseSpec(s string) (Spec, error) {
	name, body, hasBody := strings.Cut(s, "[")
	spec := Spec{Name: strings.TrimFunc(name, isSpace)}
	if spec.Name == "" {
		return Spec{}, fmt.Errorf("%w %q: no name", ErrSpec, truncate(s))
	}
	if !hasBody {
		return spec, nil
	}
	body = strings.TrimRightFunc(body, isSpace)
	if !strings.HasSuffix(body, "]") {
		return Spec{}, fmt.Errorf("%w %q: options do not end with \"]\"", ErrSpec, truncate(s))
	}
	body = body[:len(body)-1]
	for p := 0; ; {
		q := p + strings.IndexFunc(body[p:], func(r rune) bool { return !isSpace(r) })
		if q < p {
			q = len(body)
		}
		k := q + keyLen(body[q:])
		if k > q && k < len(body) && body[k] == '=' {
			key := body[q:k]
			v, after := specValue(body, k+1)
			spec.set(key, strings.TrimFunc(v, isSpace))
			rest := body[after:]
			switch {
			case rest == "" || rest == "\n":
				return spec, nil
			case rest[0] == ',':
				p = after + 1
				continue
			case rest[0] == ']':
				r := strings.TrimLeftFunc(rest[1:], isSpace)
				if strings.HasPrefix(r, "[") {
					p = len(body) - len(r) + 1
					continue
				}
			}
			return Spec{}, fmt.Errorf("%w %q: unexpected %q after option %q", ErrSpec, truncate(s), truncate(rest), key)
		}
		rest := strings.TrimPrefix(body[p:], ",")
		if strings.TrimLeftFunc(rest, isSpace) == "" {
			return spec, nil
		}
		return Spec{}, fmt.Errorf("%w %q: expected key=value at %q", ErrSpec, truncate(s), truncate(body[p:]))
	}
}

// specValue returns the value starting at i of body and the index after
// it: a closed quoted string, or the text up to the next "," or "]".
func specValue(body string, i int) (string, int) {
	if i < len(body) && (body[i] == '"' || body[i] == '\'') {
		if e := strings.IndexByte(body[i+1:], body[i]); e >= 0 {
			return body[i+1 : i+1+e], i + e + 2
		}
	}
	e := strings.IndexAny(body[i:], ",]")
	if e < 0 {
		e = len(body) - i
	}
	return body[i : i+e], i + e
}

// keyLen returns the length of the option key at the start of s.
func keyLen(s string) int {
	n := 0
	for n < len(s) {
		r, size := utf8.DecodeRuneInString(s[n:])
		if !(unicode.IsLetter(r) || unicode.IsNumber(r) || r == '_' || r == '-' || r == '.') {
			break
		}
		n += size
	}
	return n
}

func (s *Spec) set(key, value string) {
	for i := range s.Options {
		if s.Options[i].Key == key {
			s.Options[i].Value = value
			return
		}
	}
	s.Options = append(s.Options, SpecOption{Key: key, Value: value})
}

// SplitSpecs splits a value holding several specifications, such as a
// jail's multi-line action, into the specifications, trimmed:
// specifications are separated by whitespace, and whitespace (newlines
// included) inside the [...] of a well-formed specification — quoted or
// not — does not split it. A name may be separated from its "[" by
// whitespace. Text that does not form a well-formed name[...] is split
// at whitespace, and ParseSpec then reports what is wrong with it.
func SplitSpecs(s string) []string {
	var out []string
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if isSpace(r) {
			i += size
			continue
		}
		end := specEnd(s, i)
		if end < 0 {
			end = i + strings.IndexFunc(s[i:], isSpace)
			if end < i {
				end = len(s)
			}
		}
		out = append(out, strings.TrimRightFunc(s[i:end], isSpace))
		i = end
	}
	return out
}

// specEnd returns the end of the well-formed specification starting at
// i, followed by whitespace or the end of s, or -1.
func specEnd(s string, i int) int {
	j := i
	for j < len(s) {
		r, size := utf8.DecodeRuneInString(s[j:])
		if isSpace(r) || r == '[' {
			break
		}
		j += size
	}
	if j == i {
		return -1
	}
	k := j + (len(s[j:]) - len(strings.TrimLeftFunc(s[j:], isSpace)))
	if k < len(s) && s[k] == '[' {
		if e := groupEnd(s, k); e >= 0 && followedBySpace(s, e) {
			return e
		}
	}
	if followedBySpace(s, j) {
		return j
	}
	return -1
}

// groupEnd returns the index after the "]" closing the option group that
// starts with the "[" at k, or -1 when it is not well formed.
func groupEnd(s string, k int) int {
	i := k + 1
	skip := func() { i += len(s[i:]) - len(strings.TrimLeftFunc(s[i:], isSpace)) }
	skip()
	if strings.HasPrefix(s[i:], "]") {
		return i + 1
	}
	for {
		n := keyLen(s[i:])
		if n == 0 || i+n >= len(s) || s[i+n] != '=' {
			return -1
		}
		_, i = specValue(s, i+n+1)
		skip()
		switch {
		case strings.HasPrefix(s[i:], ","):
			i++
			skip()
		case strings.HasPrefix(s[i:], "]"):
			i++
			save := i
			skip()
			if !strings.HasPrefix(s[i:], "[") {
				return save
			}
			i++
			skip()
		case i >= len(s):
			return -1
		}
		if strings.HasPrefix(s[i:], "]") {
			return i + 1
		}
	}
}

func followedBySpace(s string, i int) bool {
	if i >= len(s) {
		return true
	}
	r, _ := utf8.DecodeRuneInString(s[i:])
	return isSpace(r)
}

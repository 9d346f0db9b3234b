package config

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// MaxInterpolationDepth is how deeply %(name)s references may nest, as
// in Python's ConfigParser.
const MaxInterpolationDepth = 10

// MaxResolvedSize bounds the length of one resolved value and
// maxReferences the references followed to build it, so that a few
// lines referring to each other many times cannot make Get run for ever
// (fail2ban has no such bound).
const (
	MaxResolvedSize = 1 << 20
	maxReferences   = 10000
)

// Errors of lookup and interpolation (wrapped in an *Error), for errors.Is.
var (
	ErrUnknownSection    = errors.New("no such section")
	ErrUnknownOption     = errors.New("no such option")
	ErrBadInterpolation  = errors.New("bad interpolation")
	ErrMissingReference  = errors.New("reference to a missing option")
	ErrInterpolationLoop = errors.New("interpolation too deep")
	ErrResolvedTooLarge  = errors.New("resolved value too large")
)

// sectionRef matches a reference to another section's option, such as
// "known/failregex", "default/action_" or "lt_short/__prefix_line".
var sectionRef = regexp.MustCompile(`^([\w\-]+)/([^)]+)$`)

// Get returns option name of section with its %(...)s references
// resolved. Names in references are case-insensitive and resolved, in
// this order:
//
//   - %(__name__)s is the section's name;
//   - an option of the section, then of [DEFAULT];
//   - %(default/x)s is x of [DEFAULT];
//   - %(known/x)s is the value x of this section had before the file that
//     last set it was read, or x of [DEFAULT] when it was never
//     overridden;
//   - %(sec/x)s is x of section sec (falling back to x of [DEFAULT]);
//     because fail2ban lower-cases the reference but not the section
//     names, only sections with lower-case names can be reached so.
//
// A referenced value is itself resolved in the context of section (not of
// the section it came from). "%%" is a literal "%"; any other "%" not
// starting a %(name)s reference is an error, as in fail2ban.
func (c *Config) Get(section, name string) (string, error) {
	return c.GetVars(section, name, nil)
}

// GetVars is Get with vars (keys in lower case) taking precedence over
// the options of the section and of [DEFAULT], both for name itself and
// for every %(x)s reference, as Python's ConfigParser.get(section, name,
// vars=...) does. fail2ban passes a jail's filter and action parameters
// (`sshd[mode=aggressive]`) so.
func (c *Config) GetVars(section, name string, vars map[string]string) (string, error) {
	if v, ok := vars[strings.ToLower(name)]; ok && c.HasSection(section) {
		return c.resolveVars(section, Option{Name: strings.ToLower(name), Value: v, Pos: Pos{File: "<parameter>"}}, vars)
	}
	o, err := c.lookup(section, name)
	if err != nil {
		return "", err
	}
	return c.resolveVars(section, o, vars)
}

func (c *Config) lookup(section, name string) (Option, error) {
	if !c.HasSection(section) {
		return Option{}, &Error{Section: section, Option: strings.ToLower(name),
			Err: fmt.Errorf("%w [%s]", ErrUnknownSection, section)}
	}
	o, ok := c.Raw(section, name)
	if !ok {
		return Option{}, &Error{Section: section, Option: strings.ToLower(name),
			Err: fmt.Errorf("%w in [%s] or [DEFAULT]", ErrUnknownOption, section)}
	}
	return o, nil
}

// Section returns every option visible in section name (its own, then
// those of [DEFAULT] it does not override), resolved, with the position
// of the line that set each. The first option that cannot be resolved
// makes it fail.
func (c *Config) Section(name string) (*Section, error) {
	if !c.HasSection(name) {
		return nil, &Error{Section: name, Err: fmt.Errorf("%w [%s]", ErrUnknownSection, name)}
	}
	out := &Section{Name: name}
	names := c.OptionNames(name)
	if s, ok := c.sections[name]; ok {
		out.Pos = s.pos
	} else {
		out.Pos = c.defaults.pos
	}
	for _, n := range names {
		o, _ := c.Raw(name, n)
		v, err := c.resolve(name, o)
		if err != nil {
			return nil, err
		}
		out.Options = append(out.Options, Option{Name: n, Value: v, Pos: o.Pos})
	}
	return out, nil
}

// OptionNames returns the names of the options visible in section: its
// own in the order they were first set, then those of [DEFAULT] it does
// not set. It returns nil for a missing section.
func (c *Config) OptionNames(section string) []string {
	if !c.HasSection(section) {
		return nil
	}
	var names []string
	s, ok := c.sections[section]
	if ok {
		names = append(names, s.names...)
	}
	for _, n := range c.defaults.names {
		if ok {
			if _, dup := s.get(n); dup {
				continue
			}
		}
		names = append(names, n)
	}
	return names
}

// resolve interpolates o's value in the context of section.
func (c *Config) resolve(section string, o Option) (string, error) {
	return c.resolveVars(section, o, nil)
}

// resolveVars interpolates o's value in the context of section, with
// vars before the section's options.
func (c *Config) resolveVars(section string, o Option, vars map[string]string) (string, error) {
	if !strings.Contains(o.Value, "%") {
		return o.Value, nil
	}
	st := &interpolation{c: c, section: section, vars: vars}
	if err := st.interpolate(o.Value, []string{o.Name}); err != nil {
		return "", &Error{Pos: o.Pos, Section: section, Option: o.Name, Err: err}
	}
	return st.b.String(), nil
}

// interpolation is the state of resolving one value.
type interpolation struct {
	c       *Config
	section string
	vars    map[string]string
	b       strings.Builder
	refs    int // references followed so far
}

// interpolate appends raw to b with its references resolved. chain holds
// the names being resolved, outermost first.
func (st *interpolation) interpolate(raw string, chain []string) error {
	b, c, section := &st.b, st.c, st.section
	if len(chain) > MaxInterpolationDepth {
		return fmt.Errorf("%w (over %d levels): %s", ErrInterpolationLoop, MaxInterpolationDepth, describeChain(chain))
	}
	for raw != "" {
		i := strings.IndexByte(raw, '%')
		if i < 0 {
			b.WriteString(raw)
			return nil
		}
		b.WriteString(raw[:i])
		raw = raw[i:]
		switch {
		case strings.HasPrefix(raw, "%%"):
			b.WriteByte('%')
			raw = raw[2:]
		case strings.HasPrefix(raw, "%("):
			end := strings.IndexByte(raw, ')')
			if end <= 2 || !strings.HasPrefix(raw[end:], ")s") {
				return fmt.Errorf("%w: bad reference %q", ErrBadInterpolation, truncate(raw))
			}
			ref := raw[2:end]
			raw = raw[end+2:]
			if st.refs++; st.refs > maxReferences || b.Len() > MaxResolvedSize {
				return fmt.Errorf("%w (over %d bytes or %d references)", ErrResolvedTooLarge, MaxResolvedSize, maxReferences)
			}
			v, ok := st.vars[strings.ToLower(ref)]
			if !ok {
				v, ok = c.reference(section, ref)
			}
			if !ok {
				return fmt.Errorf("%w %q (in [%s] or [DEFAULT]): %s", ErrMissingReference,
					strings.ToLower(ref), section, describeChain(append(chain, strings.ToLower(ref))))
			}
			if !strings.Contains(v, "%") {
				b.WriteString(v)
				continue
			}
			if err := st.interpolate(v, append(chain, strings.ToLower(ref))); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: %q: '%%' must be followed by '%%' or '('", ErrBadInterpolation, truncate(raw))
		}
	}
	return nil
}

// reference returns the raw value the reference text ref (the part
// between "%(" and ")s") names in section.
func (c *Config) reference(section, ref string) (string, bool) {
	key := strings.ToLower(ref)
	if key == "__name__" {
		return section, true
	}
	if o, ok := c.Raw(section, key); ok {
		return o.Value, true
	}
	// fail2ban maps section references under their original spelling but
	// looks them up lower-cased: a reference with capitals is missing.
	if key != ref {
		return "", false
	}
	m := sectionRef.FindStringSubmatch(ref)
	if m == nil {
		return "", false
	}
	sec, opt := m[1], m[2]
	switch strings.ToLower(sec) {
	case "default":
	case "known":
		if o, ok := c.known[section][opt]; ok {
			return o.Value, true
		}
	default:
		s, ok := c.sections[sec]
		if !ok {
			return "", false
		}
		if o, ok := s.get(opt); ok {
			return o.Value, true
		}
	}
	o, ok := c.defaults.get(opt)
	return o.Value, ok
}

func describeChain(chain []string) string {
	return strings.Join(chain, " -> ")
}

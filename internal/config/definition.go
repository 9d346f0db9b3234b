package config

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Sections of filter and action definition files.
const (
	DefinitionSection = "Definition"
	InitSection       = "Init"
)

// conditionalName matches an option meant for one condition only, such
// as "blocktype?family=inet6".
var conditionalName = regexp.MustCompile(`^(\w+)(\?.+)$`)

// Definition is a filter or an action file resolved for one use in a
// jail: its options with the jail's parameters applied and every <tag>
// that can be resolved replaced.
type Definition struct {
	// Name is the definition's name, such as "filter.d/sshd".
	Name string
	// Options holds the requested [Definition] options that are set,
	// the [Init] options, their "known/" forms and the parameters.
	Options *Tags
	// Pos tells where each requested option was set (absent for those
	// given as parameters).
	Pos map[string]Pos

	cfg    *Config
	params map[string]string
}

// Config returns the configuration the definition was read from.
func (d *Definition) Config() *Config { return d.cfg }

// Get returns the resolved value of option name and whether it is set.
func (d *Definition) Get(name string) (string, bool) { return d.Options.Get(name) }

// Lookup returns the [Definition] option name resolved with the jail's
// parameters, whether or not it was among the requested options, as
// fail2ban's getCombOption does.
func (d *Definition) Lookup(name string) (string, bool) {
	if m := sectionRef.FindStringSubmatch(name); m != nil {
		sec, opt := m[1], m[2]
		var secs []string
		switch {
		case strings.EqualFold(sec, "known"):
			if o, ok := d.cfg.known[DefinitionSection][opt]; ok {
				if v, err := d.cfg.resolve(DefinitionSection, o); err == nil {
					return v, true
				}
			}
			secs = []string{DefinitionSection}
		case strings.EqualFold(sec, "default"):
			secs = []string{DefaultSection}
		default:
			secs = []string{sec}
		}
		for _, s := range secs {
			if !d.cfg.HasSection(s) {
				continue
			}
			if _, ok := d.cfg.Raw(s, opt); !ok {
				continue
			}
			if v, err := d.cfg.Get(s, opt); err == nil {
				return v, true
			}
		}
	}
	v, err := d.cfg.GetVars(DefinitionSection, name, d.params)
	if err != nil {
		return "", false
	}
	return v, true
}

// ReadDefinition resolves the definition cfg (a filter.d or action.d
// file read with Read) for one use, as fail2ban's definition reader does:
//
//   - each option in keys is taken from [Definition] (or [DEFAULT]) with
//     its %(x)s references resolved, the jail's params taking precedence
//     over the file's options in those references; a key given in params
//     takes the parameter's value instead;
//   - every option of [Init] is added as it is and as "known/<name>",
//     unless params sets it;
//   - params are added;
//   - then <tag> references are replaced in all of them, a reference to
//     a name not among them being looked up among all the [Definition]
//     options.
//
// name is used in errors only. Names in params are case-sensitive, as in
// fail2ban; keys are lower case.
func ReadDefinition(cfg *Config, name string, keys []string, params map[string]string) (*Definition, error) {
	d := &Definition{Name: name, Options: NewTags(), Pos: map[string]Pos{}, cfg: cfg, params: map[string]string{}}
	for k, v := range params {
		d.params[k] = v
	}
	hasDef := cfg.HasSection(DefinitionSection)
	for _, k := range keys {
		if _, ok := params[k]; ok || !hasDef {
			continue
		}
		o, ok := cfg.Raw(DefinitionSection, k)
		if !ok {
			continue
		}
		v, err := cfg.GetVars(DefinitionSection, k, d.params)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		d.Options.Set(k, v)
		d.Pos[k] = o.Pos
	}
	// fail2ban merges the jail's parameters over the [Init] defaults, so
	// the parameters come last and win.
	init := NewTags()
	if cfg.HasSection(InitSection) {
		s := cfg.sections[InitSection]
		for _, opt := range s.names {
			if opt == "__name__" {
				continue
			}
			v, err := cfg.Get(InitSection, opt)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			if len(opt) < 6 || opt[:6] != "known/" {
				init.Set("known/"+opt, v)
			}
			if _, ok := params[opt]; !ok {
				init.Set(opt, v)
			}
		}
	}
	for _, k := range init.names {
		d.Options.Set(k, init.values[k])
	}
	for _, k := range sortedKeys(params) {
		d.Options.Set(k, params[k])
	}
	var ignore []string
	for _, n := range d.Options.names {
		if m := conditionalName.FindStringSubmatch(n); m != nil {
			ignore = append(ignore, m[1])
		}
	}
	out, err := SubstituteTags(d.Options, SubstituteOptions{Ignore: ignore, Lookup: d.Lookup})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	d.Options = out
	return d, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

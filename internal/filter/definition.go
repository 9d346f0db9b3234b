package filter

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/edgeban/edgeban/internal/config"
)

// definitionKeys are the [Definition] options a filter takes, as
// fail2ban's filter reader lists them.
var definitionKeys = []string{"usedns", "prefregex", "ignoreregex", "failregex", "maxlines", "datepattern", "journalmatch", "mode"}

// Definition is a filter as read from filter.d: its options resolved for
// one use, with the jail's parameters (`sshd[mode=aggressive]`) applied.
type Definition struct {
	// Name is the filter's name ("sshd") or, for a literal regex, "".
	Name string
	// Params are the parameters it was read with.
	Params map[string]string

	PrefRegex   string
	FailRegex   []string
	IgnoreRegex []string
	// DatePattern is fail2ban's datepattern, one pattern per line, or ""
	// for the default detectors.
	DatePattern string
	// MaxLines is the size of the multi-line buffer (1: single line).
	MaxLines int
	// JournalMatch holds the journalmatch groups: a failure source must
	// match every term of one group (terms such as "_SYSTEMD_UNIT=sshd.service").
	JournalMatch [][]string
	// UseDNS is the filter's usedns, if it sets one.
	UseDNS string
	// Mode is the value of the filter's mode option, if any.
	Mode string

	pos map[string]config.Pos
}

// Where returns where option name was set, for error messages: the file
// and line of the option, or a description of the parameter.
func (d *Definition) Where(name string) string {
	if p, ok := d.pos[name]; ok && p.File != "" {
		return p.String()
	}
	if d.Name != "" {
		return fmt.Sprintf("filter %s parameter", d.Name)
	}
	return "command line"
}

// LoadOptions change how Load reads a filter.
type LoadOptions struct {
	// Backend is the jail's backend ("auto", "polling", "systemd", ...).
	// As in fail2ban, a filter that sets no logtype gets "journal" for
	// systemd backends and "file" for the others; "" leaves logtype alone.
	Backend string
}

// Load reads a filter the way fail2ban reads a jail's filter option or
// fail2ban-regex its FILTER argument. spec is `name` or `name[key=value,
// ...]`; name is a filter in dir/filter.d (sshd, sshd.conf), or a path to
// a filter file. A file inside a directory named filter.d is read with
// its .local and .d overrides relative to that directory's parent, as
// fail2ban does; any other file is read on its own, with its includes.
func Load(dir, spec string, opts LoadOptions) (*Definition, error) {
	s, err := config.ParseSpec(spec)
	if err != nil {
		return nil, fmt.Errorf("filter %q: %w", spec, err)
	}
	params := map[string]string{}
	for _, o := range s.Options {
		params[o.Key] = o.Value
	}
	path, base, err := findFilter(dir, s.Name)
	if err != nil {
		return nil, err
	}
	name := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(path), ".conf"), ".local")
	var cfg *config.Config
	if base != "" {
		cfg, err = config.Read(base, "filter.d/"+name)
	} else {
		cfg, err = config.ReadFiles(path)
	}
	if err != nil {
		return nil, fmt.Errorf("filter %q: %w", s.Name, err)
	}
	if opts.Backend != "" {
		if _, ok := params["logtype"]; !ok {
			// As fail2ban: a logtype that [Definition] itself sets stays;
			// one from [DEFAULT] (common.conf's "file") gives way.
			if !cfg.Sets(config.DefinitionSection, "logtype") {
				params["logtype"] = "file"
				if strings.HasPrefix(opts.Backend, "systemd") {
					params["logtype"] = "journal"
				}
			}
		}
	}
	return FromConfig(cfg, name, params)
}

// findFilter locates the file of filter name: a path, or a name looked
// up in dir/filter.d with ".conf" or ".local" appended when it has no
// extension. base is the directory to read it from with fail2ban's
// override rules, or "" for a file read on its own.
func findFilter(dir, name string) (path, base string, err error) {
	tries := []string{name}
	if !strings.Contains(filepath.Base(name), ".") {
		tries = append(tries, name+".conf", name+".local")
	}
	for _, t := range tries {
		p := t
		if !strings.Contains(t, "/") {
			p = filepath.Join(dir, "filter.d", t)
			if filepath.Base(dir) == "filter.d" {
				p = filepath.Join(dir, t)
			}
		}
		fi, err := os.Stat(p)
		if err != nil || fi.IsDir() {
			continue
		}
		if filepath.Base(filepath.Dir(p)) == "filter.d" {
			return p, filepath.Dir(filepath.Dir(p)), nil
		}
		return p, "", nil
	}
	return "", "", fmt.Errorf("filter %q: no such filter (looked for %s)", name, strings.Join(lookedAt(dir, tries), ", "))
}

func lookedAt(dir string, tries []string) []string {
	var out []string
	for _, t := range tries {
		if strings.Contains(t, "/") {
			out = append(out, t)
		} else {
			out = append(out, filepath.Join(dir, "filter.d", t))
		}
	}
	return out
}

// FromConfig resolves a filter read with config.Read for one use, as
// fail2ban's filter reader does: [Definition] options with params taking
// precedence in %(x)s references, [Init] options, then <tag> substitution
// (see config.ReadDefinition). name is the filter's name.
func FromConfig(cfg *config.Config, name string, params map[string]string) (*Definition, error) {
	rd, err := config.ReadDefinition(cfg, "filter "+name, definitionKeys, params)
	if err != nil {
		return nil, err
	}
	d := &Definition{Name: name, Params: params, MaxLines: 1, pos: rd.Pos}
	get := func(k string) string { v, _ := rd.Get(k); return v }
	d.PrefRegex = get("prefregex")
	d.FailRegex = splitRegexes(get("failregex"))
	d.IgnoreRegex = splitRegexes(get("ignoreregex"))
	d.DatePattern = get("datepattern")
	d.UseDNS = get("usedns")
	d.Mode = get("mode")
	if v, ok := rd.Get("maxlines"); ok && strings.TrimSpace(v) != "" {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%s: option \"maxlines\": %q is not an integer greater than zero", d.Where("maxlines"), v)
		}
		d.MaxLines = n
	}
	for _, line := range strings.Split(get("journalmatch"), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		terms, err := shellSplit(line)
		if err != nil {
			return nil, fmt.Errorf("%s: option \"journalmatch\": %w", d.Where("journalmatch"), err)
		}
		d.JournalMatch = append(d.JournalMatch, splitJournalGroups(terms)...)
	}
	return d, nil
}

// splitJournalGroups splits journalctl-style terms at "+" (OR) into
// groups whose terms must all match.
func splitJournalGroups(terms []string) [][]string {
	var out [][]string
	var cur []string
	for _, t := range terms {
		if t == "+" {
			if len(cur) > 0 {
				out = append(out, cur)
			}
			cur = nil
			continue
		}
		cur = append(cur, t)
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// splitRegexes splits a multi-line failregex or ignoreregex value into
// its patterns, one per non-empty line, as fail2ban does.
func splitRegexes(v string) []string {
	var out []string
	for _, l := range strings.Split(v, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// Literal returns the definition of a filter given as a regex on the
// command line, as fail2ban-regex takes one: each line of failregex is a
// pattern.
func Literal(failregex string) *Definition {
	return &Definition{FailRegex: splitRegexes(failregex), MaxLines: 1}
}

var errUnterminated = errors.New("unterminated quote")

// shellSplit splits s into words as POSIX shell quoting does (Python's
// shlex.split): whitespace separates words, single quotes keep
// everything, double quotes keep everything but a backslash before
// `\`, `"`, `$` or a backquote, and a backslash outside quotes escapes
// the next character.
func shellSplit(s string) ([]string, error) {
	var (
		words []string
		cur   strings.Builder
		in    bool // inside a word
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		case c == '\\':
			in = true
			if i+1 < len(s) {
				i++
				cur.WriteByte(s[i])
			}
		case c == '\'':
			in = true
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errUnterminated
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
		case c == '"':
			in = true
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\\\"$`", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errUnterminated
			}
		default:
			in = true
			cur.WriteByte(c)
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}

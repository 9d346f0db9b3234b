package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// IncludesSection is the section naming the files to read before and
// after the file that has it.
const IncludesSection = "INCLUDES"

// Config is the merged result of reading one named configuration with
// everything it includes. Later files override earlier ones key by key;
// the value a key had before its latest override stays reachable as
// %(known/key)s.
type Config struct {
	files    []string
	defaults optionSet
	sections map[string]*optionSet
	order    []string
	known    map[string]map[string]Option // section -> key -> value before the last override
}

// optionSet is an ordered set of raw options.
type optionSet struct {
	pos   Pos // the first header of the section
	names []string
	m     map[string]Option
}

func (s *optionSet) set(o Option) {
	if s.m == nil {
		s.m = map[string]Option{}
	}
	if _, ok := s.m[o.Name]; !ok {
		s.names = append(s.names, o.Name)
	}
	s.m[o.Name] = o
}

func (s *optionSet) get(name string) (Option, bool) {
	o, ok := s.m[name]
	return o, ok
}

// conditionalSection matches fail2ban's conditional section names such as
// "Init?family=inet6": the options go to section "Init" with the
// condition appended to their names ("blocktype?family=inet6").
var conditionalSection = regexp.MustCompile(`^(\w+)(\?.+)$`)

// NewConfig merges parsed files, in order, as fail2ban does: [DEFAULT]
// options are collected into the defaults, other sections are merged by
// name, and conditional sections "Name?cond" are merged into "Name" with
// "?cond" appended to each key. Includes are not followed.
func NewConfig(files ...*File) *Config {
	c := &Config{sections: map[string]*optionSet{}, known: map[string]map[string]Option{}}
	for _, f := range files {
		c.merge(f)
	}
	return c
}

func (c *Config) merge(f *File) {
	c.files = append(c.files, f.Name)
	for _, s := range f.Sections {
		if s.Name == DefaultSection {
			if c.defaults.pos == (Pos{}) {
				c.defaults.pos = s.Pos
			}
			for _, o := range s.Options {
				c.defaults.set(o)
			}
			continue
		}
		name, opts := s.Name, s.Options
		if m := conditionalSection.FindStringSubmatch(name); m != nil {
			name = m[1]
			opts = make([]Option, len(s.Options))
			for i, o := range s.Options {
				o.Name += m[2]
				opts[i] = o
			}
		}
		dst, ok := c.sections[name]
		if !ok {
			dst = &optionSet{pos: s.Pos}
			c.sections[name] = dst
			c.order = append(c.order, name)
		}
		for _, o := range opts {
			if prev, ok := dst.get(o.Name); ok {
				if c.known[name] == nil {
					c.known[name] = map[string]Option{}
				}
				c.known[name][o.Name] = prev
			}
		}
		for _, o := range opts {
			dst.set(o)
		}
	}
}

// Read reads the configuration name (such as "jail", "filter.d/sshd")
// under the directory dir the way fail2ban does: name.conf, then
// name.d/*.conf (sorted), name.local, name.d/*.local; each file preceded
// by the files its [INCLUDES] "before" option names and followed by those
// of "after". Those are given one per line, relative to the including
// file's directory, and are themselves followed by their .local and read
// with their own includes. As in fail2ban, a missing included file is
// skipped, and so is a file that includes one of the files including it
// (a file including itself is read twice). Positions and errors name
// files relative to dir.
//
// It is an error when none of the four kinds of files exists.
func Read(dir, name string) (*Config, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("config directory: %w", err)
	}
	base := filepath.Join(dir, filepath.FromSlash(name))
	var cands []string
	cands = append(cands, base+".conf")
	cands = append(cands, globNoDot(base+".d", ".conf")...)
	cands = append(cands, base+".local")
	cands = append(cands, globNoDot(base+".d", ".local")...)
	var paths []string
	for _, p := range cands {
		if _, err := os.Stat(p); err == nil {
			paths = append(paths, p)
		}
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("config %q: no %s.conf, %[2]s.local or %[2]s.d/ under %s: %w", name, name, dir, fs.ErrNotExist)
	}
	r := reader{dir: dir}
	return r.read(paths)
}

// ReadFiles reads the given files, in order, with their includes and
// their .local files, as Read does for the files it finds. Positions and
// errors name the files as given.
func ReadFiles(paths ...string) (*Config, error) {
	r := reader{}
	return r.read(paths)
}

// reader holds the state of one Read: the base directory used to shorten
// file names and a cache of parsed files.
type reader struct {
	dir    string
	parsed map[string]*File
	reads  int // files visited, bounded by maxIncludes
}

// maxIncludes bounds the files one Read visits, counting a file again
// each time it is included, so that files including each other many
// times over cannot make it run for ever.
const maxIncludes = 10000

func (r *reader) read(paths []string) (*Config, error) {
	var order []string
	for _, p := range withLocals(paths) {
		list, err := r.includes(p, nil)
		if err != nil {
			return nil, err
		}
		order = append(order, list...)
	}
	c := NewConfig()
	for _, p := range order {
		f, err := r.parse(p)
		if err != nil {
			return nil, err
		}
		if f != nil {
			c.merge(f)
		}
	}
	return c, nil
}

// includes returns the files to read for path: its "before" includes,
// itself, its "after" includes. seen holds the files including it.
func (r *reader) includes(path string, seen []string) ([]string, error) {
	if r.reads++; r.reads > maxIncludes {
		return nil, fmt.Errorf("config: more than %d files included (at %s)", maxIncludes, r.display(path))
	}
	f, err := r.parse(path)
	if err != nil || f == nil {
		return nil, err
	}
	var before, after []string
	if inc := f.Section(IncludesSection); inc != nil {
		single := NewConfig(f)
		for _, which := range []struct {
			key  string
			list *[]string
		}{{"before", &before}, {"after", &after}} {
			o, ok := inc.Option(which.key)
			if !ok {
				continue
			}
			v, err := single.Get(IncludesSection, which.key)
			if err != nil {
				return nil, err
			}
			for _, entry := range strings.Split(v, "\n") {
				if entry == "" {
					continue
				}
				p := filepath.FromSlash(entry)
				if !filepath.IsAbs(p) {
					p = filepath.Join(filepath.Dir(path), p)
				}
				p = filepath.Clean(p)
				if slices.Contains(seen, p) {
					// An include cycle. Like fail2ban, only the files
					// including path count, so a file including itself is
					// read twice.
					continue
				}
				chain := append(slices.Clip(seen), filepath.Clean(path))
				if len(chain) > 64 {
					return nil, &Error{Pos: o.Pos, Section: IncludesSection, Option: which.key,
						Err: errors.New("includes nested too deeply")}
				}
				for _, q := range withLocals([]string{p}) {
					list, err := r.includes(q, chain)
					if err != nil {
						return nil, err
					}
					*which.list = append(*which.list, list...)
				}
			}
		}
	}
	out := append(before, path)
	return append(out, after...), nil
}

// parse parses path once; it returns nil, nil for a file that does not
// exist (fail2ban skips those silently).
func (r *reader) parse(path string) (*File, error) {
	key := filepath.Clean(path)
	if f, ok := r.parsed[key]; ok {
		return f, nil
	}
	if r.parsed == nil {
		r.parsed = map[string]*File{}
	}
	fh, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		r.parsed[key] = nil
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer fh.Close()
	if st, err := fh.Stat(); err == nil && st.IsDir() {
		r.parsed[key] = nil
		return nil, nil
	}
	f, err := Parse(fh, r.display(path))
	if err != nil {
		return nil, err
	}
	r.parsed[key] = f
	return f, nil
}

// display returns path relative to the base directory when it is inside
// it, with forward slashes.
func (r *reader) display(path string) string {
	if r.dir == "" {
		return path
	}
	rel, err := filepath.Rel(r.dir, path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return path
	}
	return filepath.ToSlash(rel)
}

// withLocals follows each path with its .local sibling when that exists
// and is not in paths already.
func withLocals(paths []string) []string {
	var out []string
	for _, p := range paths {
		out = append(out, p)
		local := strings.TrimSuffix(p, filepath.Ext(p)) + ".local"
		if slices.Contains(paths, local) {
			continue
		}
		if st, err := os.Stat(local); err == nil && !st.IsDir() {
			out = append(out, local)
		}
	}
	return out
}

// globNoDot returns the sorted files of dir ending in ext, leaving out
// hidden ones as Python's glob does.
func globNoDot(dir, ext string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, ".") || !strings.HasSuffix(n, ext) {
			continue
		}
		out = append(out, filepath.Join(dir, n))
	}
	slices.Sort(out)
	return out
}

// Files returns the files merged into c, in the order they were read.
func (c *Config) Files() []string { return slices.Clone(c.files) }

// SectionNames returns the names of c's sections other than [DEFAULT],
// in the order they first appeared.
func (c *Config) SectionNames() []string { return slices.Clone(c.order) }

// HasSection reports whether c has the section name ([DEFAULT] always
// exists).
func (c *Config) HasSection(name string) bool {
	_, ok := c.sections[name]
	return ok || name == DefaultSection
}

// Sets reports whether section itself sets option name, not counting
// [DEFAULT] (Python configparser's has_option without defaults).
func (c *Config) Sets(section, name string) bool {
	s, ok := c.sections[section]
	if !ok {
		return false
	}
	for _, n := range []string{name, strings.ToLower(name)} {
		if _, ok := s.get(n); ok {
			return true
		}
	}
	return false
}

// Raw returns the uninterpolated option name of section, looking in
// [DEFAULT] when the section does not set it. Names are matched as given,
// then lower-cased: the options of a conditional section keep the
// spelling of their condition ("blocktype?family=inet6").
func (c *Config) Raw(section, name string) (Option, bool) {
	for _, n := range []string{name, strings.ToLower(name)} {
		if s, ok := c.sections[section]; ok {
			if o, ok := s.get(n); ok {
				return o, true
			}
		}
		if o, ok := c.defaults.get(n); ok {
			return o, true
		}
	}
	return Option{}, false
}

// SetDefault sets option name of [DEFAULT] to value, replacing any value
// read from a file, as fail2ban's jail reader does with fail2ban_version
// and fail2ban_confpath before it resolves a jail.
func (c *Config) SetDefault(name, value string) {
	c.defaults.set(Option{Name: strings.ToLower(name), Value: value, Pos: Pos{File: "<set by program>"}})
}

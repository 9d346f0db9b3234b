package config

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Jail is one jail of jail.conf and its overrides (jail.d/*.conf,
// jail.local, jail.d/*.local), with the options fail2ban's jail reader
// takes from it resolved: its own section first, then [DEFAULT], with
// %(x)s references and %(__name__)s, the jail's name, interpolated.
// The filter and the actions are named here; reading their files is
// the filter's and the action's business.
type Jail struct {
	Name    string
	Enabled bool
	// Backend is as written ("auto", "polling", "systemd",
	// "systemd[journalpath=/srv/journal]"...).
	Backend string
	// BackendSpec is Backend parsed: its name and its options (see
	// Journal for the systemd backend's).
	BackendSpec Spec
	// Filter is the filter option, name and parameters (its Name is ""
	// when the jail sets no filter).
	Filter Spec
	// Actions are the action option's specifications, in order.
	Actions []Spec
	// LogPath holds the logpath option's entries: a path or a glob each,
	// optionally followed by " head" or " tail" as fail2ban allows.
	LogPath []string
	// MaxRetry and MaxMatches are 0 when unset.
	MaxRetry, MaxMatches int
	// Options holds every option the jail sets or inherits that fail2ban's
	// jail reader knows, resolved; times (findtime, bantime...) are kept
	// as written ("10m", "1d12h", "-1").
	Options map[string]string
	// Pos tells where each option of Options was set.
	Pos map[string]Pos
}

// JailOptions are the options fail2ban's jail reader takes from a jail
// section; the filter options (failregex, prefregex...) may be set in a
// jail too and are the filter's to read.
var JailOptions = []string{
	"enabled", "backend", "maxretry", "maxmatches", "findtime", "bantime",
	"bantime.increment", "bantime.factor", "bantime.formula", "bantime.multipliers",
	"bantime.maxtime", "bantime.rndtime", "bantime.overalljails",
	"ignorecommand", "ignoreself", "ignoreip", "ignorecache", "usedns",
	"filter", "logtimezone", "logencoding", "logpath", "action",
}

// ReadJails reads dir/jail.conf with its overrides and returns every
// jail section, enabled or not, in the order the sections first appear.
// An error names the file, the line and the option.
func ReadJails(dir string) ([]*Jail, error) {
	cfg, err := Read(dir, "jail")
	if err != nil {
		return nil, err
	}
	// fail2ban's own default: where its configuration is.
	cfg.SetDefault("fail2ban_confpath", dir)
	return JailsFrom(cfg)
}

// JailsFrom returns the jails of a jail configuration read with Read.
func JailsFrom(cfg *Config) ([]*Jail, error) {
	var jails []*Jail
	for _, name := range cfg.SectionNames() {
		if name == DefaultSection || name == "INCLUDES" {
			continue
		}
		j, err := readJail(cfg, name)
		if err != nil {
			return nil, err
		}
		jails = append(jails, j)
	}
	return jails, nil
}

func readJail(cfg *Config, name string) (*Jail, error) {
	j := &Jail{Name: name, Backend: "auto", Options: map[string]string{}, Pos: map[string]Pos{}}
	for _, opt := range JailOptions {
		o, ok := cfg.Raw(name, opt)
		if !ok {
			continue
		}
		v, err := cfg.Get(name, opt)
		if err != nil {
			return nil, fmt.Errorf("jail %q: %w", name, err)
		}
		j.Options[opt] = v
		j.Pos[opt] = o.Pos
	}
	where := func(opt string) string {
		if p, ok := j.Pos[opt]; ok {
			return p.String()
		}
		return "jail " + strconv.Quote(name)
	}
	if v, ok := j.Options["enabled"]; ok {
		b, err := ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("%s: jail %q: option \"enabled\": %w", where("enabled"), name, err)
		}
		j.Enabled = b
	}
	if v := strings.TrimSpace(j.Options["backend"]); v != "" {
		j.Backend = v
	}
	bs, err := ParseSpec(j.Backend)
	if err != nil {
		return nil, fmt.Errorf("%s: jail %q: option \"backend\": %w", where("backend"), name, err)
	}
	j.BackendSpec = bs
	for _, o := range []struct {
		name string
		dst  *int
	}{{"maxretry", &j.MaxRetry}, {"maxmatches", &j.MaxMatches}} {
		v, ok := j.Options[o.name]
		if !ok || strings.TrimSpace(v) == "" {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("%s: jail %q: option %q: %q is not an integer", where(o.name), name, o.name, v)
		}
		*o.dst = n
	}
	if v := strings.TrimSpace(j.Options["filter"]); v != "" {
		s, err := ParseSpec(v)
		if err != nil {
			return nil, fmt.Errorf("%s: jail %q: option \"filter\": %w", where("filter"), name, err)
		}
		j.Filter = s
	}
	for _, a := range SplitSpecs(j.Options["action"]) {
		s, err := ParseSpec(a)
		if err != nil {
			return nil, fmt.Errorf("%s: jail %q: option \"action\": %w", where("action"), name, err)
		}
		j.Actions = append(j.Actions, s)
	}
	for _, line := range strings.Split(j.Options["logpath"], "\n") {
		if line = strings.TrimSpace(line); line != "" {
			j.LogPath = append(j.LogPath, line)
		}
	}
	return j, nil
}

// LogFiles expands the jail's logpath entries (globs, with fail2ban's
// optional " head" or " tail" after them): the files that exist, and the
// patterns that matched none.
func (j *Jail) LogFiles() (files, missing []string, err error) {
	for _, lp := range j.LogPath {
		pattern := strings.Fields(lp)[0]
		m, err := filepath.Glob(pattern)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: jail %q: option \"logpath\": %q: %w", j.Pos["logpath"], j.Name, pattern, err)
		}
		if len(m) == 0 {
			missing = append(missing, pattern)
		}
		files = append(files, m...)
	}
	return files, missing, nil
}

// Tail reports whether path, one of LogFiles' files or missing patterns,
// is to be read from its end when no position is stored for it, as
// fail2ban reads "logpath = PATH tail"; "head" (the default) reads it
// from its start.
func (j *Jail) Tail(path string) bool {
	for _, lp := range j.LogPath {
		f := strings.Fields(lp)
		if ok, _ := filepath.Match(f[0], path); ok || f[0] == path {
			return len(f) > 1 && f[1] == "tail"
		}
	}
	return false
}

// JournalBackend holds the options of fail2ban's systemd backend,
// backend = systemd[journalpath=DIR, journalfiles="GLOB GLOB", journalflags=N, rotated=BOOL].
type JournalBackend struct {
	// Path is journalpath: a directory of journal files to read instead
	// of the system's journal.
	Path string
	// Files is journalfiles: journal files or globs to read instead of
	// the system's journal, separated by commas or white space as in
	// fail2ban.
	Files []string
	// Flags is journalflags, sd_journal_open's flags; FlagsSet tells
	// whether the jail sets it.
	Flags    int
	FlagsSet bool
	// Rotated is rotated: read the archived journal files too.
	Rotated bool
}

// journalBackendOptions are the options of the systemd backend.
var journalBackendOptions = []string{"journalpath", "journalfiles", "journalflags", "rotated"}

// Journal returns the options of the jail's systemd backend; an error
// names the file and line of the backend option and the option at
// fault. It is for a jail whose BackendSpec names systemd.
func (j *Jail) Journal() (JournalBackend, error) {
	var jb JournalBackend
	fail := func(format string, args ...any) (JournalBackend, error) {
		where := "jail " + strconv.Quote(j.Name)
		if p, ok := j.Pos["backend"]; ok {
			where = p.String()
		}
		return JournalBackend{}, fmt.Errorf("%s: jail %q: option \"backend\": %s", where, j.Name, fmt.Sprintf(format, args...))
	}
	for _, o := range j.BackendSpec.Options {
		v := strings.TrimSpace(o.Value)
		switch o.Key {
		case "journalpath":
			jb.Path = v
		case "journalfiles":
			jb.Files = strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
		case "journalflags":
			n, err := strconv.Atoi(v)
			if err != nil {
				return fail("journalflags %q is not an integer", o.Value)
			}
			jb.Flags, jb.FlagsSet = n, true
		case "rotated":
			b, err := ParseBool(v)
			if err != nil {
				return fail("rotated: %v", err)
			}
			jb.Rotated = b
		default:
			return fail("%s has no option %q (it takes %s)", j.BackendSpec.Name, o.Key, strings.Join(journalBackendOptions, ", "))
		}
	}
	return jb, nil
}

// ParseBool reads a boolean as fail2ban does: true, yes, on, 1 and
// false, no, off, 0, in any case.
func ParseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "yes", "on", "1":
		return true, nil
	case "false", "no", "off", "0":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (true, yes, on, 1, false, no, off, 0)", s)
}

// EnabledJails returns the jails that are enabled, in order.
func EnabledJails(jails []*Jail) []*Jail {
	return slices.DeleteFunc(slices.Clone(jails), func(j *Jail) bool { return !j.Enabled })
}

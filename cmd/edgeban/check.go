package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/edgeban/edgeban/internal/config"
	"github.com/edgeban/edgeban/internal/daemon"
	"github.com/edgeban/edgeban/internal/filter"
	"github.com/edgeban/edgeban/internal/source"
)

const checkUsage = `usage: edgeban check [-c CONFDIR]

Reads a fail2ban configuration as edgeban serve would (fail2ban.conf and
edgeban.conf, jail.conf, jail.d, jail.local, the filters and the actions
of the enabled jails), as
fail2ban-client -t does, and prints one line per enabled jail, or the
errors, each naming its file, line and option. Exits 1 on errors.

Flags:
`

// runCheck is edgeban check.
func runCheck(_ context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), checkUsage)
		fs.PrintDefaults()
	}
	confDir := fs.String("c", "/etc/fail2ban", "fail2ban configuration `dir`ectory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return usageError{"check takes no arguments"}
	}
	return checkConfig(*confDir, c.stdout, c.stderr)
}

// checkConfig checks the configuration in dir, writing a line per
// enabled jail to out and warnings and errors to errOut.
func checkConfig(dir string, out, errOut io.Writer) error {
	srv, err := config.ReadServer(dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "server: loglevel %s, logtarget %s, socket %s, dbfile %s, dbpurgeage %v\n",
		srv.LogLevel, srv.LogTarget, srv.Socket, srv.DBFile, srv.DBPurgeAge)
	jails, err := config.ReadJails(dir)
	if err != nil {
		return err
	}
	enabled := config.EnabledJails(jails)
	var errs []error
	for _, j := range enabled {
		line, warnings, err := checkJail(dir, j)
		for _, w := range warnings {
			fmt.Fprintln(errOut, "warning:", w)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintln(out, line)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	fmt.Fprintf(out, "OK: %d jails enabled of %d, configuration read from %s\n", len(enabled), len(jails), dir)
	return nil
}

// checkJail reads and compiles what one enabled jail needs, and returns
// its summary line.
func checkJail(dir string, j *config.Jail) (line string, warnings []string, err error) {
	var parts []string
	parts = append(parts, "backend "+j.Backend)
	if j.Filter.Name == "" {
		warnings = append(warnings, fmt.Sprintf("jail %q: no filter set", j.Name))
	} else {
		def, err := filter.Load(dir, j.Options["filter"], filter.LoadOptions{Backend: j.Backend})
		if err != nil {
			return "", warnings, fmt.Errorf("jail %q: %w", j.Name, err)
		}
		if _, err := filter.New(def, filter.Config{}); err != nil {
			return "", warnings, fmt.Errorf("jail %q: %w", j.Name, err)
		}
		parts = append(parts, fmt.Sprintf("filter %s (%d failregex)", j.Filter.Name, len(def.FailRegex)))
		journal, w, err := checkLogPaths(j, def)
		warnings = append(warnings, w...)
		if err != nil {
			return "", warnings, err
		}
		if journal != nil {
			// The filter reads journal lines (its logtype is journal):
			// compile it as the daemon will.
			if def, err = filter.Load(dir, j.Options["filter"], filter.LoadOptions{Backend: "systemd"}); err != nil {
				return "", warnings, fmt.Errorf("jail %q: %w", j.Name, err)
			}
			if _, err := filter.New(def, filter.Config{}); err != nil {
				return "", warnings, fmt.Errorf("jail %q: %w", j.Name, err)
			}
			parts = append(parts, "journal "+describeJournal(journal))
		}
	}
	// Each action is built as serve builds it, natively or from its
	// action.d file; none starts, so nothing is touched.
	built, err := daemon.CheckActions(dir, j, daemon.Options{})
	if err != nil {
		return "", warnings, err
	}
	var actions []string
	for _, a := range built {
		actions = append(actions, a.Name())
	}
	if len(actions) == 0 {
		warnings = append(warnings, fmt.Sprintf("jail %q: no actions", j.Name))
	}
	parts = append(parts, "actions "+strings.Join(actions, ","),
		fmt.Sprintf("maxretry %d", j.MaxRetry), "findtime "+j.Options["findtime"], "bantime "+j.Options["bantime"])
	if len(j.LogPath) > 0 {
		parts = append(parts, "logpath "+strings.Join(j.LogPath, ","))
	}
	return j.Name + ": " + strings.Join(parts, ", "), warnings, nil
}

// checkLogPaths looks for the jail's log files, or checks what it reads
// of the journal, as the daemon does: a systemd backend reads the
// journal (journalctl must be installed), and so does, as in fail2ban
// 1.1, a backend = auto jail without log files whose filter has a
// journalmatch (a warning says so); any other backend needs a log file.
// journal is what the jail reads of the journal, nil for files.
func checkLogPaths(j *config.Jail, def *filter.Definition) (journal *source.JournalOptions, warnings []string, err error) {
	if j.BackendSpec.Name == "systemd" {
		journal, err := daemon.JournalSource(j, def)
		return journal, nil, err
	}
	var files, missing []string
	if len(j.LogPath) > 0 {
		if files, missing, err = j.LogFiles(); err != nil {
			return nil, nil, err
		}
		if len(files) > 0 {
			return nil, nil, nil
		}
	}
	if j.BackendSpec.Name == "auto" && len(def.JournalMatch) > 0 {
		_, jerr := source.Journalctl()
		if jerr == nil {
			journal, err := daemon.JournalSource(j, def)
			if err != nil {
				return nil, nil, err
			}
			what := "no logpath"
			if len(j.LogPath) > 0 {
				what = "no log file found for " + strings.Join(missing, ", ")
			}
			return journal, []string{fmt.Sprintf("jail %q: %s; backend = auto with the filter's journalmatch: the jail reads the systemd journal instead", j.Name, what)}, nil
		}
		warnings = append(warnings, fmt.Sprintf("jail %q: backend = auto would read the systemd journal instead of missing log files, but: %v", j.Name, jerr))
	}
	if len(j.LogPath) == 0 {
		return nil, warnings, fmt.Errorf("jail %q: option \"logpath\" is not set, and backend %q needs log files", j.Name, j.Backend)
	}
	return nil, warnings, fmt.Errorf("%s: jail %q: have not found any log file for %s", j.Pos["logpath"], j.Name, strings.Join(missing, ", "))
}

// describeJournal says which journal a jail reads and what of it.
func describeJournal(o *source.JournalOptions) string {
	var parts []string
	switch {
	case len(o.Files) > 0:
		parts = append(parts, "files "+strings.Join(o.Files, " "))
		if o.Rotated {
			parts = append(parts, "rotated")
		}
	case o.Path != "":
		parts = append(parts, "path "+o.Path)
	default:
		parts = append(parts, "of the system")
	}
	if o.Flags != 0 {
		parts = append(parts, fmt.Sprintf("flags %d", o.Flags))
	}
	var groups []string
	for _, g := range o.Match {
		groups = append(groups, strings.Join(g, " "))
	}
	if len(groups) > 0 {
		parts = append(parts, "match "+strings.Join(groups, " + "))
	} else {
		parts = append(parts, "every entry (no journalmatch)")
	}
	return strings.Join(parts, " ")
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/edgeban/edgeban/internal/action"
	"github.com/edgeban/edgeban/internal/config"
	"github.com/edgeban/edgeban/internal/filter"
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
		w, err := checkLogPaths(j, def)
		warnings = append(warnings, w...)
		if err != nil {
			return "", warnings, err
		}
	}
	var actions []string
	for _, a := range j.Actions {
		d, err := action.Load(dir, j.Name, a)
		if err != nil {
			return "", warnings, fmt.Errorf("%s: %w", j.Pos["action"], err)
		}
		actions = append(actions, d.Name)
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

// checkLogPaths looks for the jail's log files. A file backend needs at
// least one; fail2ban 1.1 switches a backend = auto jail without log
// files to the systemd journal when its filter has a journalmatch, and so
// does edgeban: that is a warning, not an error.
func checkLogPaths(j *config.Jail, def *filter.Definition) (warnings []string, err error) {
	if strings.HasPrefix(j.Backend, "systemd") {
		return nil, nil
	}
	if len(j.LogPath) == 0 {
		if j.Backend == "auto" && len(def.JournalMatch) > 0 {
			return []string{fmt.Sprintf("jail %q: no logpath; backend = auto with the filter's journalmatch: the jail reads the systemd journal instead", j.Name)}, nil
		}
		return nil, fmt.Errorf("jail %q: option \"logpath\" is not set, and backend %q needs log files", j.Name, j.Backend)
	}
	files, missing, err := j.LogFiles()
	if err != nil {
		return nil, err
	}
	if len(files) > 0 {
		return nil, nil
	}
	if j.Backend == "auto" && len(def.JournalMatch) > 0 {
		return []string{fmt.Sprintf("jail %q: no log file found for %s; backend = auto with the filter's journalmatch: the jail reads the systemd journal instead",
			j.Name, strings.Join(missing, ", "))}, nil
	}
	return nil, fmt.Errorf("%s: jail %q: have not found any log file for %s", j.Pos["logpath"], j.Name, strings.Join(missing, ", "))
}

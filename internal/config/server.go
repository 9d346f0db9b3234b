package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Server holds the daemon's own settings, from fail2ban.conf (with its
// .d and .local overrides) and then edgeban.conf (likewise), which wins.
type Server struct {
	LogLevel     string // CRITICAL, ERROR, WARNING, NOTICE, INFO, DEBUG
	LogTarget    string // a file, STDOUT, STDERR, SYSLOG or SYSTEMD-JOURNAL
	SyslogSocket string
	// Socket is edgeban's control socket. As with DBFile, only
	// edgeban.conf sets it: fail2ban.conf's socket is fail2ban-server's.
	Socket  string
	PidFile string
	// DBFile is edgeban's database. Only edgeban.conf sets it:
	// fail2ban.conf's dbfile is fail2ban's own database, in fail2ban's
	// format, which edgeban reads (import-fail2ban-db) but never writes;
	// it is kept in Fail2banDBFile.
	DBFile         string
	Fail2banDBFile string
	DBPurgeAge     time.Duration
	DBMaxMatches   int
	// Pos tells where each setting was read.
	Pos map[string]Pos
}

// serverDefaults are fail2ban's own defaults, used where no file sets an
// option.
var serverDefaults = map[string]string{
	"loglevel":       "INFO",
	"logtarget":      "STDERR",
	"syslogsocket":   "auto",
	"socket":         "/var/run/fail2ban/fail2ban.sock",
	"pidfile":        "/var/run/fail2ban/fail2ban.pid",
	"dbfile":         "/var/lib/fail2ban/fail2ban.sqlite3",
	"edgeban/dbfile": "/var/lib/edgeban/edgeban.db",
	"edgeban/socket": "/run/edgeban/edgeban.sock",
	"dbpurgeage":     "1d",
	"dbmaxmatches":   "10",
}

var logLevels = []string{"CRITICAL", "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG", "TRACEDEBUG", "HEAVYDEBUG"}

// ReadServer reads the daemon's settings from dir: fail2ban.conf and
// edgeban.conf, each with its overrides, the [Definition] section (and
// [DEFAULT]) of each. Either file may be missing.
func ReadServer(dir string) (*Server, error) {
	values := map[string]string{}
	pos := map[string]Pos{}
	for _, name := range []string{"fail2ban", "edgeban"} {
		if !exists(dir, name) {
			continue
		}
		cfg, err := Read(dir, name)
		if err != nil {
			return nil, err
		}
		sec := DefinitionSection
		if !cfg.HasSection(sec) {
			sec = DefaultSection
		}
		for opt := range serverDefaults {
			if strings.HasPrefix(opt, "edgeban/") {
				continue
			}
			o, ok := cfg.Raw(sec, opt)
			if !ok {
				continue
			}
			v, err := cfg.Get(sec, opt)
			if err != nil {
				return nil, err
			}
			key := opt
			if name == "edgeban" && (opt == "dbfile" || opt == "socket") {
				key = "edgeban/" + opt
			}
			values[key], pos[key] = strings.TrimSpace(v), o.Pos
		}
	}
	get := func(opt string) string {
		if v, ok := values[opt]; ok {
			return v
		}
		return serverDefaults[opt]
	}
	where := func(opt string) string {
		if p, ok := pos[opt]; ok {
			return p.String() + ": "
		}
		return ""
	}
	s := &Server{
		LogLevel: strings.ToUpper(get("loglevel")), LogTarget: get("logtarget"),
		SyslogSocket: get("syslogsocket"), Socket: get("edgeban/socket"), PidFile: get("pidfile"),
		DBFile: get("edgeban/dbfile"), Fail2banDBFile: get("dbfile"), Pos: pos,
	}
	known := false
	for _, l := range logLevels {
		known = known || s.LogLevel == l
	}
	if _, err := strconv.Atoi(s.LogLevel); err != nil && !known {
		return nil, fmt.Errorf("%soption \"loglevel\": %q is not one of %s", where("loglevel"), s.LogLevel, strings.Join(logLevels, ", "))
	}
	age, err := Seconds(get("dbpurgeage"))
	if err != nil {
		return nil, fmt.Errorf("%soption \"dbpurgeage\": %w", where("dbpurgeage"), err)
	}
	s.DBPurgeAge = time.Duration(age * float64(time.Second))
	n, err := strconv.Atoi(get("dbmaxmatches"))
	if err != nil || n < 0 {
		return nil, fmt.Errorf("%soption \"dbmaxmatches\": %q is not a whole number", where("dbmaxmatches"), get("dbmaxmatches"))
	}
	s.DBMaxMatches = n
	return s, nil
}

// exists reports whether dir holds name.conf, name.local or name.d.
func exists(dir, name string) bool {
	for _, p := range []string{name + ".conf", name + ".local", name + ".d"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err == nil || !errors.Is(err, fs.ErrNotExist) {
			return true
		}
	}
	return false
}

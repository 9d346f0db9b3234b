package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
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
	// Cloudflare sizes the daemon's Cloudflare worker. Only edgeban.conf
	// sets it.
	Cloudflare CloudflareSettings
	// MetricsListen is the host:port where the daemon serves its
	// Prometheus metrics and its health (metricslisten); "" for none.
	// Only edgeban.conf sets it.
	MetricsListen string
	// Pos tells where each setting was read.
	Pos map[string]Pos
}

// CloudflareSettings size the request budget and the concurrency of the
// worker that delivers the native Cloudflare actions' bans. A zero field
// keeps the worker's default: 1,150 requests per 5 minutes per
// credential (Cloudflare allows 1,200) in bursts of 50, and 4 access-rule
// requests in flight. They are edgeban.conf's cfratelimit, cfratewindow,
// cfrateburst and cfconcurrency, the --rate-limit, --rate-window,
// --rate-burst and --concurrency of edgeban cloudflare serve. Raise the
// budget only when Cloudflare has raised the credential's limit: going
// over locks it out for five minutes.
type CloudflareSettings struct {
	RateLimit   int           // requests per RateWindow, all callers of a credential together
	RateWindow  time.Duration // the budget's window
	RateBurst   int           // requests that may go at once before the rest are spaced out
	Concurrency int           // access-rule requests in flight
}

// serverDefaults are fail2ban's own defaults, used where no file sets an
// option; "" is no value (the option is edgeban's, and its zero value
// means the default of the code that uses it).
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

	"edgeban/cfratelimit":   "",
	"edgeban/cfratewindow":  "",
	"edgeban/cfrateburst":   "",
	"edgeban/cfconcurrency": "",
	"edgeban/metricslisten": "",
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
		for key := range serverDefaults {
			// An "edgeban/" key is read from edgeban.conf only; there it
			// takes the place of fail2ban's option of the same name
			// (dbfile, socket), which is fail2ban-server's.
			opt, own := strings.CutPrefix(key, "edgeban/")
			_, shadowed := serverDefaults["edgeban/"+opt]
			if own != (name == "edgeban" && shadowed) {
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
	// The Cloudflare worker's settings: whole numbers above zero, and a
	// time as fail2ban writes one ("5m", "300").
	for _, o := range []struct {
		opt string
		to  *int
	}{{"cfratelimit", &s.Cloudflare.RateLimit}, {"cfrateburst", &s.Cloudflare.RateBurst}, {"cfconcurrency", &s.Cloudflare.Concurrency}} {
		v := get("edgeban/" + o.opt)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%soption %q: %q is not a whole number above 0", where("edgeban/"+o.opt), o.opt, v)
		}
		*o.to = n
	}
	if v := get("edgeban/cfratewindow"); v != "" {
		w, err := Seconds(v)
		if err == nil && w <= 0 {
			err = errors.New("it must be above 0")
		}
		if err != nil {
			return nil, fmt.Errorf("%soption \"cfratewindow\": %q: %w", where("edgeban/cfratewindow"), v, err)
		}
		s.Cloudflare.RateWindow = time.Duration(w * float64(time.Second))
	}
	if v := get("edgeban/metricslisten"); v != "" {
		if err := checkListen(v); err != nil {
			return nil, fmt.Errorf("%soption \"metricslisten\": %q: %w", where("edgeban/metricslisten"), v, err)
		}
		s.MetricsListen = v
	}
	return s, nil
}

// checkListen checks an address to listen on: host:port, the host
// possibly empty (every address) and the port a number (0: any free
// one).
func checkListen(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want host:port, e.g. 127.0.0.1:9191")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	return nil
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

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/edgeban/edgeban/internal/action"
	"github.com/edgeban/edgeban/internal/cloudflare"
	"github.com/edgeban/edgeban/internal/config"
	"github.com/edgeban/edgeban/internal/control"
	"github.com/edgeban/edgeban/internal/daemon"
	"github.com/edgeban/edgeban/internal/jail"
	"github.com/edgeban/edgeban/internal/logtarget"
	"github.com/edgeban/edgeban/internal/metrics"
	"github.com/edgeban/edgeban/internal/store"
)

// defaultSocket is where the client commands look for the daemon, the
// default of edgeban.conf's socket.
const defaultSocket = "/run/edgeban/edgeban.sock"

const serveUsage = `usage: edgeban serve [-c CONFDIR] [--socket PATH] [--db PATH] [--metrics-listen ADDR] [--foreground]

Runs the jails of a fail2ban configuration (the fail2ban-server of
edgeban): follows their logs, bans through their actions, keeps the bans
in its database, and answers edgeban status, set, unban... on its control
socket. It refuses to start on a configuration error. SIGHUP or
"edgeban reload" reads the configuration again and restarts the jails
that changed (a configuration error then changes nothing). SIGTERM or
"edgeban stop" stops it, stopping the actions as fail2ban does; the bans
stay in the database and are restored at the next start.

edgeban.conf's [Definition] sets the daemon's dbfile, socket and
logtarget, and the worker that delivers the native Cloudflare actions'
bans: cfratelimit, cfratewindow and cfrateburst (the credential's request
budget, default 1150 per 5m in bursts of 50, under Cloudflare's 1,200;
raise it only when Cloudflare raised the limit) and cfconcurrency
(access-rule requests in flight, default 4), and metricslisten.

With --metrics-listen (or metricslisten), it serves Prometheus metrics at
http://ADDR/metrics and its health at http://ADDR/healthz: 200 when every
jail runs, the database answers and the bans reach Cloudflare, else 503
with the problems. Port 0 picks a free port, which the log names.

Flags:
`

func runServe(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), serveUsage)
		fs.PrintDefaults()
	}
	confDir := fs.String("c", "/etc/fail2ban", "configuration `dir`ectory")
	socket := fs.String("socket", "", "control socket `path` (default: edgeban.conf's socket, else "+defaultSocket+")")
	dbPath := fs.String("db", "", "database `path` (default: edgeban.conf's dbfile)")
	metricsAddr := fs.String("metrics-listen", "", "serve metrics and health at `host:port` (default: edgeban.conf's metricslisten, else none)")
	fs.Bool("foreground", true, "stay in the foreground (edgeban always does; systemd keeps it running)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return usageError{"serve takes no arguments"}
	}
	srv, err := config.ReadServer(*confDir)
	if err != nil {
		return err
	}
	if *socket == "" {
		*socket = srv.Socket
	}
	if *dbPath == "" {
		*dbPath = srv.DBFile
	}
	if *metricsAddr == "" {
		*metricsAddr = srv.MetricsListen
	}
	logOut, reopenLog, closeLog, err := openLogTarget(srv.LogTarget, c.stderr)
	if err != nil {
		return err
	}
	defer closeLog()
	level := slog.LevelInfo
	switch srv.LogLevel {
	case "DEBUG", "TRACEDEBUG", "HEAVYDEBUG":
		level = slog.LevelDebug
	case "NOTICE":
		level = logtarget.LevelNotice
	case "WARNING":
		level = slog.LevelWarn
	case "ERROR", "CRITICAL":
		level = slog.LevelError
	}
	log := slog.New(logtarget.NewHandler(logOut, os.Getpid(), level))

	db, err := store.Open(ctx, *dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	unlock, err := db.LockDaemon()
	if err != nil {
		return err
	}
	defer unlock()
	var cfMetrics *metrics.Cloudflare
	var observe func(cloudflare.Attempt)
	if *metricsAddr != "" {
		cfMetrics = metrics.NewCloudflare()
		observe = cfMetrics.Observe
	}
	d, err := daemon.Load(*confDir, daemon.Options{Store: db, Log: log, MaxMatches: srv.DBMaxMatches, FlushLogs: reopenLog,
		Cloudflare: daemon.CloudflareOptions{Credentials: action.CredentialsFile(), Getenv: c.getenv,
			RateLimit: srv.Cloudflare.RateLimit, RateWindow: srv.Cloudflare.RateWindow, RateBurst: srv.Cloudflare.RateBurst,
			Concurrency: srv.Cloudflare.Concurrency, Observe: observe},
		OnBan: func(j, ip string, restored bool) {
			logtarget.Ban(context.Background(), log, j, ip, restored)
		},
		OnUnban: func(j, ip string, _ bool) { logtarget.Unban(context.Background(), log, j, ip) },
	})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(*socket), 0o755); err != nil {
		return err
	}
	ctl, err := control.Listen(*socket, d.Handle, log)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	served := ""
	if *metricsAddr != "" {
		addr, stopMetrics, err := serveMetrics(ctx, *metricsAddr, d, cfMetrics, log)
		if err != nil {
			ctl.Close()
			return err
		}
		defer stopMetrics()
		served = fmt.Sprintf(", metrics http://%[1]s%[2]s and health http://%[1]s%[3]s", addr, metrics.MetricsPath, metrics.HealthPath)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-hup:
				// What Reload did, or why it changed nothing, is in its log.
				if _, err := d.Reload("", false); err != nil {
					log.Error("SIGHUP", "err", err)
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	go ctl.Serve(ctx)
	defer ctl.Close()
	log.Info(fmt.Sprintf("edgeban %s started: jails %s, socket %s, database %s%s", version, strings.Join(d.Jails(), ", "), *socket, *dbPath, served))
	go func() {
		if n, err := db.PurgeJails(ctx, srv.DBPurgeAge); err != nil {
			log.Error("purge", "err", err)
		} else if n > 0 {
			log.Info("purged old ban records", "n", n)
		}
	}()
	err = d.Run(ctx)
	log.Info("edgeban stopped")
	return err
}

// serveMetrics binds addr and serves the daemon's metrics and health
// there until stop is called; it returns the address bound (its port
// picked when addr's is 0). A bind error is a start-up error.
func serveMetrics(ctx context.Context, addr string, d *daemon.Daemon, cf *metrics.Cloudflare, log *slog.Logger) (bound string, stop func(), err error) {
	reg, err := metrics.NewRegistry(d, cf, version)
	if err != nil {
		return "", nil, err
	}
	srv, err := metrics.Listen(addr, metrics.Handler(reg, d, log))
	if err != nil {
		return "", nil, fmt.Errorf("--metrics-listen %s: %w", addr, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ctx); err != nil {
			log.Error("metrics server", "err", err)
		}
	}()
	return srv.Addr().String(), func() { cancel(); <-done }, nil
}

// openLogTarget opens fail2ban's logtarget: STDOUT, STDERR, or a file
// (SYSLOG and SYSTEMD-JOURNAL write to stderr, which systemd collects).
// reopen opens a file target again after logrotate (flushlogs).
func openLogTarget(target string, stderr io.Writer) (w io.Writer, reopen func() error, closeFn func(), err error) {
	switch strings.ToUpper(target) {
	case "STDOUT":
		return os.Stdout, func() error { return nil }, func() {}, nil
	case "STDERR", "SYSLOG", "SYSTEMD-JOURNAL", "":
		return stderr, func() error { return nil }, func() {}, nil
	}
	f, err := logtarget.OpenFile(target)
	if err != nil {
		return nil, nil, nil, err
	}
	return f, f.Reopen, func() { f.Close() }, nil
}

// clientCommand is a command the CLI sends to the daemon.
func clientCommand(name string) func(ctx context.Context, c *cli, args []string) error {
	return func(ctx context.Context, c *cli, args []string) error {
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		fs.SetOutput(c.stderr)
		socket := fs.String("socket", "", "control socket `path` (default "+defaultSocket+", or $EDGEBAN_SOCKET)")
		asJSON := fs.Bool("json", false, "print the daemon's answer as JSON")
		withTime := fs.Bool("with-time", false, "get JAIL banip: show each ban's times")
		all := fs.Bool("all", false, "unban: every address of every jail")
		restart := fs.Bool("restart", false, "reload: restart the jails even if unchanged")
		// Flags may follow the words, as in fail2ban-client.
		var words []string
		for rest := args; len(rest) > 0; {
			if err := fs.Parse(rest); err != nil {
				return err
			}
			rest = fs.Args()
			if len(rest) == 0 {
				break
			}
			if strings.HasPrefix(rest[0], "-") { // after "--"
				words = append(words, rest...)
				break
			}
			words, rest = append(words, rest[0]), rest[1:]
		}
		if *all {
			words = append(words, "--all")
		}
		if *restart {
			words = append(words, "--restart")
		}
		path := *socket
		if path == "" {
			path = c.getenv("EDGEBAN_SOCKET")
		}
		if path == "" {
			path = defaultSocket
		}
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		res, err := control.Call(ctx, path, append([]string{name}, words...)...)
		if err != nil {
			return err
		}
		if *asJSON {
			fmt.Fprintln(c.stdout, string(res))
			return nil
		}
		return printAnswer(c.stdout, name, words, res, *withTime)
	}
}

// printCloudflare prints the Cloudflare destinations of a status.
func printCloudflare(w io.Writer, dests []daemon.CloudflareState) {
	for _, d := range dests {
		fmt.Fprintf(w, "Cloudflare %s: %d live, %d bans and %d unbans to send", d.Where, d.Live, d.PendingBan, d.PendingUnban)
		if d.Held > 0 {
			fmt.Fprintf(w, ", %d held back (capacity)", d.Held)
		}
		fmt.Fprintln(w)
		for _, f := range d.Failing {
			fmt.Fprintf(w, "   ! failing, retried: %s\n", f)
		}
	}
}

// printAnswer prints the daemon's answer for a human.
func printAnswer(w io.Writer, name string, words []string, res json.RawMessage, withTime bool) error {
	switch {
	case name == "status" && len(words) == 0:
		var v daemon.Status
		if err := json.Unmarshal(res, &v); err != nil {
			return err
		}
		fmt.Fprintf(w, "Status\n|- Number of jail:\t%d\n`- Jail list:\t%s\n", len(v.Jails), strings.Join(v.Jails, ", "))
		printCloudflare(w, v.Cloudflare)
	case name == "status":
		var st daemon.JailStatus
		if err := json.Unmarshal(res, &st); err != nil {
			return err
		}
		defer printCloudflare(w, st.Cloudflare)
		var ips []string
		for _, b := range st.Banned {
			ips = append(ips, b.IP)
		}
		fmt.Fprintf(w, "Status for the jail: %s\n|- Filter\n|  |- Currently failed:\t%d\n|  `- Total failed:\t%d\n`- Actions\n   |- Currently banned:\t%d\n   |- Total banned:\t%d\n   `- Banned IP list:\t%s\n",
			st.Jail, st.Failing, st.TotalFailed, len(st.Banned), st.TotalBanned, strings.Join(ips, " "))
		for _, b := range st.Banned {
			for a, e := range b.Failed {
				fmt.Fprintf(w, "   ! %s: action %s has not banned it yet (retrying): %s\n", b.IP, a, e)
			}
		}
	case name == "get":
		var bans []jail.Ban
		if err := json.Unmarshal(res, &bans); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, b := range bans {
			if !withTime {
				fmt.Fprintln(tw, b.IP)
				continue
			}
			end := "never"
			if !b.End.IsZero() {
				end = b.End.Local().Format("2006-01-02 15:04:05")
			}
			fmt.Fprintf(tw, "%s\t%s + %s = %s\n", b.IP, b.At.Local().Format("2006-01-02 15:04:05"), b.End.Sub(b.At).Round(time.Second), end)
		}
		tw.Flush()
	case name == "reload":
		var r daemon.ReloadResult
		if err := json.Unmarshal(res, &r); err != nil {
			return err
		}
		for _, l := range []struct {
			what  string
			jails []string
		}{{"started", r.Started}, {"restarted", r.Restarted}, {"stopped", r.Stopped}, {"unchanged", r.Kept}} {
			if len(l.jails) > 0 {
				fmt.Fprintf(w, "%s: %s\n", l.what, strings.Join(l.jails, " "))
			}
		}
	case name == "banned":
		var m map[string][]string
		if err := json.Unmarshal(res, &m); err != nil {
			return err
		}
		var jails []string
		for j := range m {
			jails = append(jails, j)
		}
		sort.Strings(jails)
		for _, j := range jails {
			fmt.Fprintf(w, "%s: %s\n", j, strings.Join(m[j], " "))
		}
	default:
		var v any
		if err := json.Unmarshal(res, &v); err != nil {
			return errors.New(string(res))
		}
		fmt.Fprintln(w, v)
	}
	return nil
}

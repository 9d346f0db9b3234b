// Package daemon puts edgeban serve together: the jails of a fail2ban
// configuration with their filters, logs and actions, the store, and the
// commands the control socket carries (fail2ban-client's grammar).
package daemon

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/edgeban/edgeban/internal/cloudflare"
	"github.com/edgeban/edgeban/internal/cloudflare/delivery"
	"github.com/edgeban/edgeban/internal/config"
	"github.com/edgeban/edgeban/internal/filter"
	"github.com/edgeban/edgeban/internal/firewall"
	"github.com/edgeban/edgeban/internal/jail"
	"github.com/edgeban/edgeban/internal/source"
	"github.com/edgeban/edgeban/internal/store"
)

// Daemon is a set of running jails, which a reload changes.
type Daemon struct {
	dir  string
	opts Options
	quit chan struct{} // closed by the stop command
	once sync.Once

	mu         sync.Mutex // guards what follows
	jails      []*running // in configuration order
	runCtx     context.Context
	stopped    bool          // Run has returned: nothing more starts
	workerDone chan struct{} // closed when the Cloudflare worker has stopped; nil: never started
	worker     workerState
	workerErr  error // why the worker stopped, when it failed
	// counters are the jails' counters by name, handed to the jail that
	// replaces one on a reload (see jail.Counters).
	counters map[string]*jail.Counters
}

// workerState is what became of the daemon's Cloudflare worker.
type workerState int

const (
	workerNone      workerState = iota // not started: no jail bans at Cloudflare
	workerRunning                      // delivering, or about to
	workerElsewhere                    // another worker (edgeban cloudflare serve) delivers
	workerFailed                       // stopped on an error (see Daemon.workerErr)
)

// setWorker records what became of the Cloudflare worker.
func (d *Daemon) setWorker(s workerState, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.worker, d.workerErr = s, err
}

// runWorker delivers the outbox to Cloudflare until ctx ends: the native
// Cloudflare actions only write to the outbox. If an edgeban cloudflare
// serve already works on the database, it delivers, and the daemon only
// enqueues.
func (d *Daemon) runWorker(ctx context.Context) {
	if err := d.deliver(ctx); err != nil && ctx.Err() == nil {
		d.opts.Log.Error("Cloudflare worker stopped", "err", err)
		d.setWorker(workerFailed, err)
	}
}

// deliver is runWorker's work, until ctx ends or an error stops it.
func (d *Daemon) deliver(ctx context.Context) error {
	d.setWorker(workerRunning, nil)
	db := d.opts.Store
	unlock, n, err := db.TakeWorker(ctx)
	switch {
	case ctx.Err() != nil:
		return nil
	case errors.Is(err, store.ErrWorkerRunning):
		d.opts.Log.Info("another Cloudflare worker runs on this database: it delivers the bans the daemon enqueues")
		d.setWorker(workerElsewhere, nil)
		return nil
	case err != nil:
		return err
	}
	defer unlock()
	if n > 0 {
		d.opts.Log.Info("took back the claims of a previous Cloudflare worker", "entries", n)
	}
	cf := d.opts.Cloudflare
	hc := cf.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	dl, err := delivery.New(delivery.Config{DB: db, Owner: store.WorkerOwner(), HTTPClient: hc,
		RateLimit: cf.RateLimit, RateWindow: cf.RateWindow, RateBurst: cf.RateBurst, Concurrency: cf.Concurrency,
		Logger: d.opts.Log, Observe: cf.Observe})
	if err != nil {
		return err
	}
	return dl.Run(ctx)
}

// running is a jail with what started it and what stops it.
type running struct {
	*jail.Jail
	fingerprint string             // what the jail was built from
	cloudflare  bool               // it has a native Cloudflare action
	cancel      context.CancelFunc // stops it; nil until started
	done        chan struct{}      // closed when its Run has returned
	err         error              // what its Run returned, once done is closed
}

// Options are what the daemon needs beyond the configuration.
type Options struct {
	Store      *store.DB
	Log        *slog.Logger
	MaxMatches int // dbmaxmatches
	OnBan      func(jail, ip string, restored bool)
	OnUnban    func(jail, ip string, restored bool)
	// FlushLogs opens the daemon's log file again, after logrotate moved
	// it (the flushlogs command); nil: the command does nothing.
	FlushLogs func() error
	// Cloudflare configures the native Cloudflare actions and their
	// worker.
	Cloudflare CloudflareOptions
	// Firewall is the packet filter the native firewall actions
	// (nftables, iptables) ban in, shared by the jails; nil: the
	// daemon's own network namespace.
	Firewall *firewall.Host
	// Hostname is fail2ban's <fq-hostname> for the native mail actions;
	// "" has them look it up when they start.
	Hostname string
}

// CloudflareOptions configure the native Cloudflare actions of a daemon
// and the worker that delivers their bans.
type CloudflareOptions struct {
	// Credentials is the credentials file with [profile] sections; ""
	// for none.
	Credentials string
	// Getenv reads CLOUDFLARE_API_TOKEN and the like; nil: none.
	Getenv func(string) string
	// HTTPClient makes the worker's requests; nil: a default client.
	HTTPClient *http.Client
	// RateLimit, RateWindow and RateBurst size the credential's request
	// budget; zero takes delivery's defaults (under Cloudflare's limit).
	RateLimit  int
	RateWindow time.Duration
	RateBurst  int
	// Concurrency bounds the worker's access-rule requests in flight;
	// zero takes delivery's default.
	Concurrency int
	// Observe, when set, is told of every HTTP attempt of the worker
	// (the metrics).
	Observe func(cloudflare.Attempt)
	// StuckAfter is how long a ban or unban may keep failing at
	// Cloudflare before the daemon's health says so; zero: 10 minutes.
	StuckAfter time.Duration
}

// Load builds the enabled jails of the configuration in dir. A jail that
// cannot run is an error naming it.
func Load(dir string, opts Options) (*Daemon, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Firewall == nil {
		opts.Firewall = firewall.NewHost("")
	}
	d := &Daemon{dir: dir, opts: opts, quit: make(chan struct{}), counters: map[string]*jail.Counters{}}
	jails, err := d.build()
	if err != nil {
		return nil, err
	}
	d.jails = jails
	return d, nil
}

// build reads the configuration and builds its enabled jails, not yet
// started.
func (d *Daemon) build() ([]*running, error) {
	jails, err := config.ReadJails(d.dir)
	if err != nil {
		return nil, err
	}
	var out []*running
	for _, jc := range config.EnabledJails(jails) {
		j, fp, cf, err := buildJail(d.dir, jc, d.opts, d.countersOf(jc.Name))
		if err != nil {
			return nil, err
		}
		out = append(out, &running{Jail: j, fingerprint: fp, cloudflare: cf})
	}
	return out, nil
}

// countersOf returns the counters of the jail named name: those of the
// jail of that name that runs, if one does, so that a reload does not
// reset them.
func (d *Daemon) countersOf(name string) *jail.Counters {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.counters[name]
	if c == nil {
		c = &jail.Counters{}
		d.counters[name] = c
	}
	return c
}

func seconds(jc *config.Jail, opt string, def time.Duration) (time.Duration, error) {
	v := strings.TrimSpace(jc.Options[opt])
	if v == "" {
		return def, nil
	}
	s, err := config.Seconds(v)
	if err != nil {
		return 0, fmt.Errorf("%s: jail %q: option %q: %w", jc.Pos[opt], jc.Name, opt, err)
	}
	if s < 0 {
		return -1, nil
	}
	return time.Duration(s * float64(time.Second)), nil
}

// buildJail builds the jail of jc, and its fingerprint: a digest of
// everything it was built from (its options, its filter's and actions'
// definitions as read, its log files), which tells a reload whether the
// jail changed.
func buildJail(dir string, jc *config.Jail, opts Options, counters *jail.Counters) (j *jail.Jail, fingerprint string, cloudflare bool, err error) {
	j, what, err := buildJailFrom(dir, jc, opts, counters)
	if err != nil {
		return nil, "", false, err
	}
	b, err := json.Marshal(what)
	if err != nil {
		return nil, "", false, fmt.Errorf("jail %q: %w", jc.Name, err)
	}
	sum := sha256.Sum256(b)
	return j, hex.EncodeToString(sum[:]), what.Cloudflare, nil
}

// builtFrom is what a jail is built from, for its fingerprint.
type builtFrom struct {
	Cloudflare bool `json:"-"`
	Options    map[string]string
	Filter     *filter.Definition
	Actions    []actionFrom
	LogPaths   []string
	Journal    *journalFrom `json:",omitempty"`
}

// journalFrom is what a journal jail reads, for its fingerprint.
type journalFrom struct {
	Match   [][]string
	Path    string
	Files   []string
	Flags   int
	Rotated bool
}

type actionFrom struct {
	Name, File string
	Commands   map[string]string
	Params     map[string]string
}

func buildJailFrom(dir string, jc *config.Jail, opts Options, counters *jail.Counters) (*jail.Jail, builtFrom, error) {
	var what builtFrom
	def, err := filter.Load(dir, jc.Options["filter"], filter.LoadOptions{Backend: jc.Backend})
	if err != nil {
		return nil, what, fmt.Errorf("jail %q: %w", jc.Name, err)
	}
	var (
		paths   []string
		journal *source.JournalOptions
	)
	if jc.BackendSpec.Name == "systemd" {
		// fail2ban ignores logpath with this backend, and so does edgeban.
		if journal, err = JournalSource(jc, def); err != nil {
			return nil, what, err
		}
	} else {
		files, missing, err := jc.LogFiles()
		if err != nil {
			return nil, what, err
		}
		paths = files
		if len(files) == 0 && jc.BackendSpec.Name == "auto" && len(def.JournalMatch) > 0 {
			// As fail2ban 1.1: backend = auto without a log file reads the
			// journal when the filter says where its service logs there.
			if _, err := source.Journalctl(); err != nil {
				opts.Log.Warn("no log file, and the journal cannot be read: waiting for the log files", "jail", jc.Name, "logpath", jc.LogPath, "err", err)
			} else {
				opts.Log.Info("no log file: backend = auto reads the systemd journal, as the filter has a journalmatch", "jail", jc.Name, "logpath", jc.LogPath)
				// The filter's lines come from the journal: its logtype is
				// journal, as with backend = systemd.
				if def, err = filter.Load(dir, jc.Options["filter"], filter.LoadOptions{Backend: "systemd"}); err != nil {
					return nil, what, fmt.Errorf("jail %q: %w", jc.Name, err)
				}
				if journal, err = JournalSource(jc, def); err != nil {
					return nil, what, err
				}
			}
		}
		if journal == nil {
			for _, pattern := range missing {
				if !strings.ContainsAny(pattern, "*?[") {
					paths = append(paths, pattern) // a file that will appear is waited for
				}
			}
			if len(paths) == 0 {
				return nil, what, fmt.Errorf("jail %q: no log file for logpath %v", jc.Name, jc.LogPath)
			}
		}
	}
	// The jail's usedns (jail.conf's [DEFAULT] sets warn), else the
	// filter's, else fail2ban's default.
	useDNS := cmp.Or(strings.TrimSpace(jc.Options["usedns"]), def.UseDNS, "warn")
	switch useDNS {
	case "yes", "warn", "no", "raw":
	default:
		return nil, what, fmt.Errorf("%s: jail %q: option \"usedns\": %q is not yes, warn, no or raw", jc.Pos["usedns"], jc.Name, useDNS)
	}
	f, err := filter.New(def, filter.Config{Location: time.Local, UseDNS: useDNS})
	if err != nil {
		return nil, what, fmt.Errorf("jail %q: %w", jc.Name, err)
	}
	findtime, err := seconds(jc, "findtime", 10*time.Minute)
	if err != nil {
		return nil, what, err
	}
	bantime, err := seconds(jc, "bantime", 10*time.Minute)
	if err != nil {
		return nil, what, err
	}
	inc, err := jail.ParseIncrement(jc.Options)
	if err != nil {
		return nil, what, fmt.Errorf("jail %q: %w", jc.Name, err)
	}
	ignore, err := ignoreRules(jc)
	if err != nil {
		return nil, what, err
	}
	actions, err := buildActions(dir, jc, opts, &what)
	if err != nil {
		return nil, what, err
	}
	what.Options, what.Filter, what.LogPaths = jc.Options, def, paths
	if journal != nil {
		what.Journal = &journalFrom{Match: journal.Match, Path: journal.Path, Files: journal.Files, Flags: journal.Flags, Rotated: journal.Rotated}
	}
	if what.Cloudflare {
		// Cloudflare's own addresses are its proxies: banning one at
		// Cloudflare bans nobody, or everybody.
		ignore.Proxies, ignore.ProxyWarning = cloudflare.Ranges(), realIPWarning
	}
	maxRetry := jc.MaxRetry
	if maxRetry <= 0 {
		maxRetry = 5
	}
	maxMatches := jc.MaxMatches
	if maxMatches <= 0 {
		maxMatches = opts.MaxMatches
	}
	tail := map[string]bool{}
	for _, p := range paths {
		if jc.Tail(p) {
			tail[p] = true
		}
	}
	return jail.New(jail.Settings{Name: jc.Name, Filter: f, LogPaths: paths, Tail: tail, Poll: jc.Backend == "polling", Journal: journal,
		MaxRetry: maxRetry, FindTime: findtime, BanTime: bantime, MaxMatches: maxMatches,
		Ignore: ignore, UseDNS: useDNS, Increment: inc, Actions: actions, Store: opts.Store, Log: opts.Log,
		OnBan: opts.OnBan, OnUnban: opts.OnUnban, Counters: counters}), what, nil
}

// JournalSource returns what a journal jail reads: its backend's
// options (fail2ban's journalflags default, 4, the system's journal
// without user sessions, when it reads the system's journal) and its
// filter's journalmatch. journalctl must be installed.
func JournalSource(jc *config.Jail, def *filter.Definition) (*source.JournalOptions, error) {
	jb, err := jc.Journal()
	if err != nil {
		return nil, err
	}
	o := &source.JournalOptions{Path: jb.Path, Files: jb.Files, Flags: jb.Flags, Rotated: jb.Rotated}
	if !jb.FlagsSet && jb.Path == "" && len(jb.Files) == 0 {
		o.Flags = source.JournalSystem
	}
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("%s: jail %q: option \"backend\": %w", jc.Pos["backend"], jc.Name, err)
	}
	o.Match = def.JournalMatch
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("%s: jail %q: %w", def.Where("journalmatch"), jc.Name, err)
	}
	if _, err := source.Journalctl(); err != nil {
		return nil, fmt.Errorf("jail %q: backend %s: %w", jc.Name, jc.BackendSpec.Name, err)
	}
	return o, nil
}

// realIPWarning is logged once by a jail that bans at Cloudflare when
// most of its failures come from Cloudflare's addresses.
const realIPWarning = "most failures of this jail come from Cloudflare's own addresses: the web server logs " +
	"Cloudflare's proxy, not the client, so the attackers cannot be banned (Cloudflare's addresses never are). " +
	"Restore the client's address in the server's log: nginx: real_ip_header CF-Connecting-IP; with set_real_ip_from for " +
	"each of Cloudflare's ranges (edgeban cloudflare ips); Apache: mod_remoteip with RemoteIPHeader CF-Connecting-IP and " +
	"RemoteIPTrustedProxy for the ranges"

// ignoreRules reads a jail's ignore options: ignoreip, ignoreself
// (default true, as in fail2ban), ignorecommand and ignorecache.
func ignoreRules(jc *config.Jail) (*jail.IgnoreRules, error) {
	list, err := jail.ParseIgnoreIP(jc.Options["ignoreip"])
	if err != nil {
		return nil, fmt.Errorf("%s: jail %q: %w", jc.Pos["ignoreip"], jc.Name, err)
	}
	self := true
	if v := strings.TrimSpace(jc.Options["ignoreself"]); v != "" {
		if self, err = config.ParseBool(v); err != nil {
			return nil, fmt.Errorf("%s: jail %q: option \"ignoreself\": %w", jc.Pos["ignoreself"], jc.Name, err)
		}
	}
	cache, err := jail.ParseIgnoreCache(jc.Options["ignorecache"])
	if err != nil {
		return nil, fmt.Errorf("%s: jail %q: option \"ignorecache\": %w", jc.Pos["ignorecache"], jc.Name, err)
	}
	return &jail.IgnoreRules{List: list, Self: self, Command: strings.TrimSpace(jc.Options["ignorecommand"]), Cache: cache}, nil
}

// Jails returns the names of the running jails, in configuration order.
func (d *Daemon) Jails() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.namesLocked()
}

// Run runs every jail until ctx ends or a stop command comes, and
// returns once they have all stopped (their actions stopped). Reload
// changes the set of jails while it runs.
func (d *Daemon) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d.mu.Lock()
	d.runCtx = ctx
	for _, j := range d.jails {
		d.start(j)
	}
	d.mu.Unlock()
	select {
	case <-d.quit:
	case <-ctx.Done():
	}
	d.mu.Lock()
	d.stopped = true
	jails := d.jails
	d.mu.Unlock()
	cancel()
	var errs []error
	for _, j := range jails {
		errs = append(errs, j.wait())
	}
	if d.workerDone != nil {
		<-d.workerDone
	}
	return errors.Join(errs...)
}

// start runs j in a goroutine of its own, and the Cloudflare worker if
// j is the first jail that needs it; d.mu is held.
func (d *Daemon) start(j *running) {
	if j.cloudflare && d.workerDone == nil {
		d.workerDone = make(chan struct{})
		go func() {
			defer close(d.workerDone)
			d.runWorker(d.runCtx)
		}()
	}
	ctx, cancel := context.WithCancel(d.runCtx)
	j.cancel, j.done = cancel, make(chan struct{})
	go func() {
		defer close(j.done)
		j.err = j.Run(ctx)
		if j.err != nil && ctx.Err() == nil {
			d.opts.Log.Error("jail stopped", "jail", j.Name(), "err", j.err)
		}
	}()
}

// stop stops j and waits until it has stopped (its actions stopped, its
// log positions saved).
func (j *running) stop() error {
	j.cancel()
	return j.wait()
}

// wait waits until j has stopped and returns what its Run returned.
func (j *running) wait() error {
	if j.done == nil {
		return nil
	}
	<-j.done
	return j.err
}

// Reload reads the configuration again and brings the running jails in
// line with it, as fail2ban-client reload does: a jail no longer enabled
// is stopped, a new one started, and one whose options, filter, actions
// or log files changed is restarted (its bans stay, restored from the
// store); an unchanged jail runs on untouched, keeping its failure
// counts. With name set, only that jail is reloaded. With restart set,
// the jails reloaded are restarted even if unchanged. A configuration
// error changes nothing and is returned, naming the file and line.
func (d *Daemon) Reload(name string, restart bool) (ReloadResult, error) {
	var res ReloadResult
	fresh, err := d.build()
	if err != nil {
		return res, fmt.Errorf("reload: %w (nothing changed)", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return res, errors.New("reload: the daemon is stopping")
	}
	old := map[string]*running{}
	for _, j := range d.jails {
		old[j.Name()] = j
	}
	if name != "" {
		var found *running
		for _, j := range fresh {
			if j.Name() == name {
				found = j
			}
		}
		if found == nil && old[name] == nil {
			return res, fmt.Errorf("reload: unknown jail %q (jails: %s)", name, strings.Join(d.namesLocked(), ", "))
		}
		// The other jails stay as they are, in their places.
		var keep []*running
		for _, j := range d.jails {
			if j.Name() != name {
				keep = append(keep, j)
			}
		}
		if found != nil {
			keep = append(keep, found)
		}
		fresh = keep
	}
	next := make([]*running, 0, len(fresh))
	inNext := map[string]bool{}
	var errs []error
	for _, j := range fresh {
		inNext[j.Name()] = true
		prev := old[j.Name()]
		switch {
		case prev == j: // another jail, kept as it runs
		case prev != nil && prev.fingerprint == j.fingerprint && !restart:
			j = prev
			res.Kept = append(res.Kept, j.Name())
		default:
			if prev != nil {
				if err := prev.stop(); err != nil {
					errs = append(errs, fmt.Errorf("jail %q: %w", prev.Name(), err))
				}
				res.Restarted = append(res.Restarted, j.Name())
			} else {
				res.Started = append(res.Started, j.Name())
			}
			if d.runCtx != nil {
				d.start(j)
			}
		}
		next = append(next, j)
	}
	for _, j := range d.jails {
		if !inNext[j.Name()] {
			if err := j.stop(); err != nil {
				errs = append(errs, fmt.Errorf("jail %q: %w", j.Name(), err))
			}
			res.Stopped = append(res.Stopped, j.Name())
		}
	}
	d.jails = next
	// The counters of the jails that no longer run go; a jail of that
	// name added later counts from zero.
	for name := range d.counters {
		if !inNext[name] {
			delete(d.counters, name)
		}
	}
	// The jails started are ready (their bans restored) before the
	// answer, so that a command after it sees them whole.
	for _, j := range next {
		if j.done != nil {
			select {
			case <-j.Ready():
			case <-j.done:
			}
		}
	}
	d.opts.Log.Info("reloaded", "started", res.Started, "restarted", res.Restarted, "stopped", res.Stopped, "kept", res.Kept)
	return res, errors.Join(errs...)
}

// ReloadResult tells what a reload did to each jail.
type ReloadResult struct {
	Started   []string `json:"started,omitempty"`
	Restarted []string `json:"restarted,omitempty"`
	Stopped   []string `json:"stopped,omitempty"`
	Kept      []string `json:"kept,omitempty"`
}

// Status is the daemon's answer to "status".
type Status struct {
	Jails      []string          `json:"jails"`
	Cloudflare []CloudflareState `json:"cloudflare,omitempty"`
}

// JailStatus is the daemon's answer to "status JAIL".
type JailStatus struct {
	jail.Status
	Cloudflare []CloudflareState `json:"cloudflare,omitempty"`
}

// CloudflareState is one Cloudflare destination in a status: what is
// live there, what is still to be sent, and what keeps failing.
type CloudflareState struct {
	Where        string   `json:"where"` // "zone example.com", "user", "list edgeban"...
	Live         int      `json:"live"`
	PendingBan   int      `json:"pending_ban"`
	PendingUnban int      `json:"pending_unban"`
	Held         int      `json:"held"`              // kept back by the capacity policy
	Failing      []string `json:"failing,omitempty"` // "IP: last error", most recent first
}

// cloudflareStatus reports the outbox per destination; for a jail, only
// the failures of its own bans are listed.
func (d *Daemon) cloudflareStatus(ctx context.Context, jailName string) ([]CloudflareState, error) {
	cf := d.opts.Cloudflare
	rep, err := delivery.Status(ctx, d.opts.Store, cmp.Or(cf.RateLimit, 1150), cmp.Or(cf.RateWindow, 5*time.Minute), cmp.Or(cf.RateBurst, 50))
	if err != nil {
		return nil, fmt.Errorf("cloudflare status: %w", err)
	}
	var out []CloudflareState
	for _, dr := range rep.Dests {
		st := CloudflareState{Where: where(dr.Spec), Live: dr.Live, PendingBan: dr.PendingBan, PendingUnban: dr.PendingUnban, Held: dr.Held}
		for _, e := range rep.Failing {
			if e.Dest == dr.Dest.ID && (jailName == "" || e.Jail == jailName) {
				st.Failing = append(st.Failing, e.Target+": "+e.LastError)
			}
		}
		out = append(out, st)
	}
	return out, nil
}

// Handle runs one control command, in fail2ban-client's grammar.
func (d *Daemon) Handle(ctx context.Context, args []string) (any, error) {
	switch cmd := args[0]; {
	case cmd == "ping" && len(args) == 1:
		return "pong", nil
	case cmd == "stop" && len(args) == 1:
		d.once.Do(func() { close(d.quit) })
		return "shutting down", nil
	case cmd == "status" && len(args) == 1:
		cf, err := d.cloudflareStatus(ctx, "")
		if err != nil {
			return nil, err
		}
		return Status{Jails: d.Jails(), Cloudflare: cf}, nil
	case cmd == "flushlogs" && len(args) == 1:
		if d.opts.FlushLogs != nil {
			if err := d.opts.FlushLogs(); err != nil {
				return nil, err
			}
		}
		return "rolled over", nil
	case cmd == "reload":
		restart, name := false, ""
		for _, a := range args[1:] {
			switch {
			case a == "--restart":
				restart = true
			case name == "" && !strings.HasPrefix(a, "-"):
				name = a
			default:
				return nil, fmt.Errorf("reload: unexpected %q (reload [--restart] [JAIL])", a)
			}
		}
		return d.Reload(name, restart)
	case cmd == "status" && len(args) == 2:
		j, err := d.jail(args[1])
		if err != nil {
			return nil, err
		}
		cf, err := d.cloudflareStatus(ctx, args[1])
		if err != nil {
			return nil, err
		}
		return JailStatus{Status: j.Status(), Cloudflare: cf}, nil
	case cmd == "set" && len(args) >= 4 && (args[2] == "banip" || args[2] == "unbanip"):
		j, err := d.jail(args[1])
		if err != nil {
			return nil, err
		}
		var errs []error
		n := 0
		for _, ip := range args[3:] {
			if args[2] == "banip" {
				err = j.BanIP(ctx, ip)
			} else {
				err = j.UnbanIP(ctx, ip)
			}
			if err != nil {
				errs = append(errs, err)
			} else {
				n++
			}
		}
		return n, errors.Join(errs...)
	case cmd == "get" && len(args) >= 3 && args[2] == "banip":
		j, err := d.jail(args[1])
		if err != nil {
			return nil, err
		}
		return j.Status().Banned, nil
	case cmd == "unban" && len(args) >= 2:
		all := slices.Contains(args[1:], "--all")
		n := 0
		var errs []error
		for _, j := range d.running() {
			for _, b := range j.Status().Banned {
				if all || slices.Contains(args[1:], b.IP) {
					if err := j.UnbanIP(ctx, b.IP); err != nil {
						errs = append(errs, err)
					} else {
						n++
					}
				}
			}
		}
		if n == 0 && len(errs) == 0 && !all {
			return 0, fmt.Errorf("not banned in any jail: %s", strings.Join(args[1:], " "))
		}
		return n, errors.Join(errs...)
	case cmd == "banned":
		out := map[string][]string{}
		for _, j := range d.running() {
			for _, b := range j.Status().Banned {
				if len(args) == 1 || slices.Contains(args[1:], b.IP) {
					out[j.Name()] = append(out[j.Name()], b.IP)
				}
			}
		}
		for _, ips := range out {
			sort.Strings(ips)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown command %q (try: ping, status [JAIL], set JAIL banip|unbanip IP..., get JAIL banip, unban IP...|--all, banned [IP...], reload [--restart] [JAIL], flushlogs, stop)", strings.Join(args, " "))
}

func (d *Daemon) jail(name string) (*jail.Jail, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, j := range d.jails {
		if j.Name() == name {
			return j.Jail, nil
		}
	}
	return nil, fmt.Errorf("unknown jail %q (jails: %s)", name, strings.Join(d.namesLocked(), ", "))
}

// running returns the jails as they are now.
func (d *Daemon) running() []*jail.Jail {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]*jail.Jail, len(d.jails))
	for i, j := range d.jails {
		out[i] = j.Jail
	}
	return out
}

// namesLocked returns the jails' names; d.mu is held.
func (d *Daemon) namesLocked() []string {
	out := make([]string, len(d.jails))
	for i, j := range d.jails {
		out[i] = j.Name()
	}
	return out
}

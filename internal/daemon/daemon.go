// Package daemon puts edgeban serve together: the jails of a fail2ban
// configuration with their filters, logs and actions, the store, and the
// commands the control socket carries (fail2ban-client's grammar).
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/edgeban/edgeban/internal/action"
	"github.com/edgeban/edgeban/internal/config"
	"github.com/edgeban/edgeban/internal/filter"
	"github.com/edgeban/edgeban/internal/jail"
	"github.com/edgeban/edgeban/internal/store"
)

// Daemon is a set of running jails.
type Daemon struct {
	jails  []*jail.Jail
	byName map[string]*jail.Jail
	log    *slog.Logger
	quit   chan struct{} // closed by the stop command
	once   sync.Once
}

// Options are what the daemon needs beyond the configuration.
type Options struct {
	Store      *store.DB
	Log        *slog.Logger
	MaxMatches int // dbmaxmatches
	OnBan      func(jail, ip string, restored bool)
	OnUnban    func(jail, ip string, restored bool)
}

// Load builds the enabled jails of the configuration in dir. A jail that
// cannot run is an error naming it, except a backend = auto jail with no
// log file whose filter has a journalmatch: it needs the journal, which
// this edgeban does not read yet, and is skipped with a warning.
func Load(dir string, opts Options) (*Daemon, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	jails, err := config.ReadJails(dir)
	if err != nil {
		return nil, err
	}
	d := &Daemon{byName: map[string]*jail.Jail{}, log: opts.Log, quit: make(chan struct{})}
	for _, jc := range config.EnabledJails(jails) {
		j, err := buildJail(dir, jc, opts)
		if errors.Is(err, errJournal) {
			opts.Log.Warn("jail skipped: it reads the systemd journal, which edgeban does not read yet", "jail", jc.Name, "err", err)
			continue
		}
		if err != nil {
			return nil, err
		}
		d.jails = append(d.jails, j)
		d.byName[jc.Name] = j
	}
	return d, nil
}

var errJournal = errors.New("no log file, and the filter reads the journal")

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

func buildJail(dir string, jc *config.Jail, opts Options) (*jail.Jail, error) {
	if strings.HasPrefix(jc.Backend, "systemd") {
		return nil, fmt.Errorf("jail %q: %w (backend %s)", jc.Name, errJournal, jc.Backend)
	}
	def, err := filter.Load(dir, jc.Options["filter"], filter.LoadOptions{Backend: jc.Backend})
	if err != nil {
		return nil, fmt.Errorf("jail %q: %w", jc.Name, err)
	}
	f, err := filter.New(def, filter.Config{Location: time.Local})
	if err != nil {
		return nil, fmt.Errorf("jail %q: %w", jc.Name, err)
	}
	paths, missing, err := jc.LogFiles()
	if err != nil {
		return nil, err
	}
	for _, pattern := range missing {
		if !strings.ContainsAny(pattern, "*?[") {
			paths = append(paths, pattern) // a file that will appear is waited for
		}
	}
	if len(paths) == 0 {
		if jc.Backend == "auto" && len(def.JournalMatch) > 0 {
			return nil, fmt.Errorf("jail %q: %w", jc.Name, errJournal)
		}
		return nil, fmt.Errorf("jail %q: no log file for logpath %v", jc.Name, jc.LogPath)
	}
	findtime, err := seconds(jc, "findtime", 10*time.Minute)
	if err != nil {
		return nil, err
	}
	bantime, err := seconds(jc, "bantime", 10*time.Minute)
	if err != nil {
		return nil, err
	}
	inc, err := jail.ParseIncrement(jc.Options)
	if err != nil {
		return nil, fmt.Errorf("jail %q: %w", jc.Name, err)
	}
	ignore, err := jail.ParseIgnoreIP(jc.Options["ignoreip"])
	if err != nil {
		return nil, fmt.Errorf("%s: jail %q: %w", jc.Pos["ignoreip"], jc.Name, err)
	}
	var actions []jail.Action
	for _, spec := range jc.Actions {
		ad, err := action.Load(dir, jc.Name, spec)
		if err != nil {
			return nil, err
		}
		sh, err := action.NewShell(ad)
		if err != nil {
			return nil, fmt.Errorf("jail %q: %w", jc.Name, err)
		}
		actions = append(actions, sh)
	}
	maxRetry := jc.MaxRetry
	if maxRetry <= 0 {
		maxRetry = 5
	}
	maxMatches := jc.MaxMatches
	if maxMatches <= 0 {
		maxMatches = opts.MaxMatches
	}
	return jail.New(jail.Settings{Name: jc.Name, Filter: f, LogPaths: paths, Poll: jc.Backend == "polling",
		MaxRetry: maxRetry, FindTime: findtime, BanTime: bantime, MaxMatches: maxMatches,
		Ignore: ignore, Increment: inc, Actions: actions, Store: opts.Store, Log: opts.Log,
		OnBan: opts.OnBan, OnUnban: opts.OnUnban}), nil
}

// Jails returns the names of the running jails, in configuration order.
func (d *Daemon) Jails() []string {
	var out []string
	for _, j := range d.jails {
		out = append(out, j.Name())
	}
	return out
}

// Run runs every jail until ctx ends or a stop command comes, and
// returns once they have all stopped (their actions stopped).
func (d *Daemon) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-d.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	var wg sync.WaitGroup
	errs := make([]error, len(d.jails))
	for i, j := range d.jails {
		wg.Go(func() { errs[i] = j.Run(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
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
		return map[string]any{"jails": d.Jails()}, nil
	case cmd == "status" && len(args) == 2:
		j, err := d.jail(args[1])
		if err != nil {
			return nil, err
		}
		return j.Status(), nil
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
		for _, j := range d.jails {
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
		for _, j := range d.jails {
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
	return nil, fmt.Errorf("unknown command %q (try: ping, status [JAIL], set JAIL banip|unbanip IP..., get JAIL banip, unban IP...|--all, banned [IP...], stop)", strings.Join(args, " "))
}

func (d *Daemon) jail(name string) (*jail.Jail, error) {
	j, ok := d.byName[name]
	if !ok {
		return nil, fmt.Errorf("unknown jail %q (jails: %s)", name, strings.Join(d.Jails(), ", "))
	}
	return j, nil
}

package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
	"unicode"

	ownconfig "github.com/edgeban/edgeban/config"
	"github.com/edgeban/edgeban/internal/action"
	"github.com/edgeban/edgeban/internal/cloudflare/cfsim"
	"github.com/edgeban/edgeban/internal/config"
	"github.com/edgeban/edgeban/internal/daemon"
	"github.com/edgeban/edgeban/internal/jail"
	"github.com/edgeban/edgeban/internal/logtarget"
	"github.com/edgeban/edgeban/internal/store"
)

// DaemonOptions configure the daemon part of the demo.
type DaemonOptions struct {
	Timeout time.Duration // the part's limit
	Out     io.Writer     // the bans and unbans as they come, and the closing table
	// Logger gets the daemon's warnings and errors, besides its log
	// target (a file in Dir, which the recidive jail reads).
	Logger *slog.Logger
	// Dir keeps the configuration, the logs, the files of bans and the
	// database; empty means a temporary directory removed at the end.
	// The example configuration is written into it: it must not hold one.
	Dir string
	// AttackLog is the log to replay, in the format of the shipped one
	// (ownconfig.AttackLog, used when nil).
	AttackLog []byte
}

// DefaultDaemonOptions are the demo's: the shipped attack log replayed
// in about 16 s; the part ends a few seconds later.
func DefaultDaemonOptions() DaemonOptions {
	return DaemonOptions{Timeout: 30 * time.Second}
}

// Event is a ban or an unban the daemon made.
type Event struct {
	At       time.Duration // since the replay began
	Unban    bool
	Jail, IP string
	Restored bool // a ban restored from the database at start
}

// Verb is what the event is, in fail2ban's words: Ban, Unban, or
// Restore Ban.
func (e Event) Verb() string {
	switch {
	case e.Unban:
		return "Unban"
	case e.Restored:
		return "Restore Ban"
	}
	return "Ban"
}

// Placement is where a ban is: the action that holds it and, for an
// action writing a file, the file (relative to the demo's directory), or
// for a Cloudflare action, the zone.
type Placement struct {
	Action string
	File   string
	Zone   string // the Cloudflare zone, for a native Cloudflare action
}

// String is the action's name and the file or zone, "action: file".
func (p Placement) String() string {
	switch {
	case p.File != "":
		return p.Action + ": " + p.File
	case p.Zone != "":
		return p.Action + ": Cloudflare zone " + p.Zone
	}
	return p.Action
}

// CloudflareRule is a rule at the simulated Cloudflare at the end.
type CloudflareRule struct {
	IP, Mode, Notes string
}

// BanRow is one ban running at the end of the daemon part.
type BanRow struct {
	Jail, IP string
	Where    []Placement
}

// BanFile is a file an action writes the bans into, as it is at the
// end.
type BanFile struct {
	Path  string // relative to the demo's directory when inside it
	Lines []string
}

// JailCount sums up one jail's run.
type JailCount struct {
	Jail                         string
	Failures, Bans, Unbans, Held int
}

// DaemonResult is what the daemon part saw.
type DaemonResult struct {
	Dir      string // where it ran (removed at the end unless DaemonOptions.Dir set it)
	Lines    int    // lines replayed
	Events   []Event
	Banned   []BanRow // at the end, by jail in configuration order, then IP
	Files    []BanFile
	Rules    []CloudflareRule // the zone's access rules at the simulated Cloudflare
	Jails    []JailCount
	Expected []Expectation
	// Problems are the differences between what the daemon did and what
	// the attack log implies.
	Problems []string
	Elapsed  time.Duration
}

// OK reports whether the daemon did what the attack log implies.
func (r DaemonResult) OK() bool { return len(r.Problems) == 0 }

// settle is how long after the last line the demo waits before it takes
// stock: what the daemon has read by then it has decided on.
const settle = time.Second

// RunDaemon runs the daemon part: the daemon, in process, on the example
// configuration written into a directory of its own, with the attack
// log replayed into the files its jails follow. It prints each ban and
// unban as it comes and, once the replay is over and every ban and unban
// the log implies has come, what is banned where. It fails when the
// daemon did anything else.
func RunDaemon(ctx context.Context, o DaemonOptions) (DaemonResult, error) {
	var res DaemonResult
	start := time.Now()
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.AttackLog == nil {
		o.AttackLog = ownconfig.AttackLog()
	}
	attack, err := parseAttackLog(o.AttackLog)
	if err != nil {
		return res, err
	}
	res.Lines, res.Expected = len(attack.lines), attack.expect
	// The daemon runs until the demo has taken stock, even when the
	// time is up (but not when ctx ends): the waiting has the limit.
	daemonCtx := ctx
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()

	dir := o.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "edgeban-demo-daemon-"); err != nil {
			return res, fmt.Errorf("temporary directory: %w", err)
		}
		defer os.RemoveAll(dir)
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return res, err
	}
	res.Dir = dir
	// The web jails ban at Cloudflare too: a simulated one, on loopback.
	sim := cfsim.New(cfsim.Config{Tokens: []cfsim.Token{{Value: demoToken}}, Plan: cfsim.PlanFree})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return res, fmt.Errorf("the simulated Cloudflare: %w", err)
	}
	simSrv := &http.Server{Handler: sim, ReadHeaderTimeout: 5 * time.Second}
	go simSrv.Serve(ln)
	defer simSrv.Close()
	api := "http://" + ln.Addr().String() + "/client/v4"
	if err := writeConfig(dir, api); err != nil {
		return res, err
	}
	srv, err := config.ReadServer(dir)
	if err != nil {
		return res, fmt.Errorf("the example configuration: %w", err)
	}
	logDir := filepath.Join(dir, "log")
	if err := attack.createFiles(logDir); err != nil {
		return res, fmt.Errorf("create the logs: %w", err)
	}
	places, err := placements(dir)
	if err != nil {
		return res, fmt.Errorf("the example configuration: %w", err)
	}

	// The daemon as edgeban serve wires it, its log target a file that
	// the recidive jail follows.
	target, err := os.OpenFile(srv.LogTarget, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return res, fmt.Errorf("logtarget: %w", err)
	}
	defer target.Close()
	log := slog.New(slog.NewMultiHandler(
		logtarget.NewHandler(target, os.Getpid(), slog.LevelInfo),
		o.Logger.Handler(),
	))
	db, err := store.Open(ctx, srv.DBFile)
	if err != nil {
		return res, err
	}
	defer db.Close()
	rec := &recorder{out: o.Out, changed: make(chan struct{}, 1), width: len("recidive")}
	d, err := daemon.Load(dir, daemon.Options{Store: db, Log: log, MaxMatches: srv.DBMaxMatches,
		Cloudflare: daemon.CloudflareOptions{HTTPClient: &http.Client{Timeout: 10 * time.Second}},
		OnBan: func(j, ip string, restored bool) {
			logtarget.Ban(context.Background(), log, j, ip, restored)
			rec.add(Event{Jail: j, IP: ip, Restored: restored})
		},
		OnUnban: func(j, ip string, restored bool) {
			logtarget.Unban(context.Background(), log, j, ip)
			rec.add(Event{Unban: true, Jail: j, IP: ip, Restored: restored})
		},
	})
	if err != nil {
		return res, fmt.Errorf("load the daemon: %w", err)
	}
	jails := d.Jails()
	for _, j := range jails {
		rec.width = max(rec.width, len(j))
	}
	fmt.Fprintf(o.Out, "daemon: jails %s, on the example configuration in %s\n", strings.Join(jails, ", "), dir)
	for _, j := range jails {
		var where []string
		for _, p := range places[j] {
			where = append(where, p.String())
		}
		fmt.Fprintf(o.Out, "  %-16s bans into %s\n", j, strings.Join(where, ", "))
	}
	fmt.Fprintf(o.Out, "replaying %d lines of the attack log into %s over %v:\n",
		len(attack.lines), strings.Join(prefixed("log/", attack.files()), " and "), attack.duration())

	runCtx, stopDaemon := context.WithCancel(daemonCtx)
	runDone := make(chan error, 1)
	go func() { runDone <- d.Run(runCtx) }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		stopDaemon()
		return <-runDone
	}
	defer stop()

	begin := time.Now()
	rec.setStart(begin)
	if err := attack.replay(ctx, logDir, begin); err != nil {
		return res, err
	}
	rec.note("the replay is over")
	if missing := rec.wait(ctx, attack.expect); len(missing) > 0 {
		why := fmt.Sprintf("gave up after %v", o.Timeout)
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			why = "interrupted"
		}
		res.Problems = append(res.Problems, fmt.Sprintf("%s waiting for: %s", why, strings.Join(missing, "; ")))
	}

	// What is banned where, from the daemon, then from the files and
	// the simulated Cloudflare, once the outbox has caught up.
	snap := context.WithoutCancel(ctx)
	if err := drainOutbox(ctx, d); err != nil {
		res.Problems = append(res.Problems, err.Error())
	}
	var banned map[string][]string
	if err := ask(snap, d, &banned, "banned"); err != nil {
		return res, err
	}
	for _, j := range jails {
		var st jail.Status
		if err := ask(snap, d, &st, "status", j); err != nil {
			return res, err
		}
		res.Jails = append(res.Jails, JailCount{Jail: j, Failures: st.TotalFailed, Held: len(st.Banned)})
	}
	rows, files, fileProblems, err := placeBans(dir, jails, places, banned)
	if err != nil {
		return res, fmt.Errorf("the files of bans: %w", err)
	}
	for _, r := range sim.AccessRules(cfsim.ZoneScope(cfsim.DefaultZoneID)) {
		res.Rules = append(res.Rules, CloudflareRule{IP: r.Value, Mode: r.Mode, Notes: r.Notes})
	}
	fileProblems = append(fileProblems, checkRules(jails, places, banned, res.Rules)...)
	elapsed := time.Since(begin)
	if err := stop(); err != nil {
		res.Problems = append(res.Problems, fmt.Sprintf("the daemon stopped with an error: %v", err))
	}

	res.Events = rec.list()
	res.Banned, res.Files = rows, files
	for i := range res.Jails {
		for _, e := range res.Events {
			if e.Jail != res.Jails[i].Jail {
				continue
			}
			if e.Unban {
				res.Jails[i].Unbans++
			} else {
				res.Jails[i].Bans++
			}
		}
	}
	res.Problems = append(res.Problems, compare(attack.expect, res.Events, banned)...)
	res.Problems = append(res.Problems, fileProblems...)
	res.Elapsed = time.Since(start)
	res.print(o.Out, elapsed)
	if !res.OK() {
		return res, errors.New("the daemon did not do what the attack log implies")
	}
	return res, nil
}

// writeConfig writes the example configuration into dir, with an
// edgeban.conf that keeps the daemon's log target, database and socket
// there too (the demo opens no socket; edgeban serve -c dir would).
func writeConfig(dir, api string) error {
	if err := ownconfig.WriteExample(dir); err != nil {
		return err
	}
	// Where the web jails' Cloudflare action bans: the simulator.
	cf := fmt.Sprintf("# Written by edgeban demo: its simulated Cloudflare.\n[DEFAULT]\ncfapi = %s\ncftoken = %s\n", api, demoToken)
	if err := os.MkdirAll(filepath.Join(dir, "jail.d"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "jail.d", "cloudflare.local"), []byte(cf), 0o600); err != nil {
		return fmt.Errorf("write jail.d/cloudflare.local: %w", err)
	}
	conf := fmt.Sprintf("# Written by edgeban demo: the daemon's own settings for this directory.\n[Definition]\n"+
		"logtarget = %s\ndbfile = %s\nsocket = %s\n",
		filepath.Join(dir, "log", "edgeban.log"), filepath.Join(dir, "edgeban.db"), filepath.Join(dir, "edgeban.sock"))
	f, err := os.OpenFile(filepath.Join(dir, "edgeban.conf"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("write edgeban.conf: %w", err)
	}
	if _, err := f.WriteString(conf); err != nil {
		f.Close()
		return fmt.Errorf("write edgeban.conf: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write edgeban.conf: %w", err)
	}
	return nil
}

// placements returns, for each enabled jail of the configuration in dir,
// where its actions put its bans: each action's name, with its file
// when it has a file parameter.
func placements(dir string) (map[string][]Placement, error) {
	jcs, err := config.ReadJails(dir)
	if err != nil {
		return nil, err
	}
	out := map[string][]Placement{}
	for _, jc := range config.EnabledJails(jcs) {
		for _, spec := range jc.Actions {
			if native, err := action.IsCloudflare(spec); err != nil {
				return nil, err
			} else if native {
				zone, _ := spec.Option("cfzone")
				out[jc.Name] = append(out[jc.Name], Placement{Action: spec.Name, Zone: zone})
				continue
			}
			def, err := action.Load(dir, jc.Name, spec)
			if err != nil {
				return nil, err
			}
			p := Placement{Action: def.Name}
			if f := def.Params["file"]; f != "" {
				if rel, err := filepath.Rel(dir, f); err == nil && filepath.IsLocal(rel) {
					f = rel
				}
				p.File = f
			}
			out[jc.Name] = append(out[jc.Name], p)
		}
	}
	return out, nil
}

// drainOutbox waits until the Cloudflare outbox has nothing left to send.
func drainOutbox(ctx context.Context, d *daemon.Daemon) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	for {
		var st daemon.Status
		if err := ask(ctx, d, &st, "status"); err != nil {
			return err
		}
		pending := 0
		for _, c := range st.Cloudflare {
			pending += c.PendingBan + c.PendingUnban
		}
		if pending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the Cloudflare outbox still has %d operations to send", pending)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// checkRules compares the rules at the simulated Cloudflare with the bans
// running in the jails that ban there: one rule per address, whichever
// jails hold it, and no other.
func checkRules(jails []string, places map[string][]Placement, banned map[string][]string, rules []CloudflareRule) []string {
	want := map[string]bool{}
	for _, j := range jails {
		for _, p := range places[j] {
			if p.Zone != "" {
				for _, ip := range banned[j] {
					want[ip] = true
				}
			}
		}
	}
	have := map[string]int{}
	for _, r := range rules {
		have[r.IP]++
	}
	var problems []string
	for ip := range want {
		if have[ip] != 1 {
			problems = append(problems, fmt.Sprintf("Cloudflare holds %d rule(s) for %s, banned there", have[ip], ip))
		}
	}
	for ip := range have {
		if !want[ip] {
			problems = append(problems, fmt.Sprintf("Cloudflare holds a rule for %s, banned there by no jail", ip))
		}
	}
	sort.Strings(problems)
	return problems
}

// ask runs a control command as the client commands do, and decodes
// the daemon's answer, as sent on the control socket, into answer.
func ask(ctx context.Context, d *daemon.Daemon, answer any, args ...string) error {
	v, err := d.Handle(ctx, args)
	if err != nil {
		return fmt.Errorf("%s: %w", strings.Join(args, " "), err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%s: %w", strings.Join(args, " "), err)
	}
	if err := json.Unmarshal(b, answer); err != nil {
		return fmt.Errorf("%s: the answer: %w", strings.Join(args, " "), err)
	}
	return nil
}

// placeBans returns the bans running, each with where it is, the files
// the actions write, and the differences between the two: a file must
// name an address on one line for each jail banning it into that file.
func placeBans(dir string, jails []string, places map[string][]Placement, banned map[string][]string) ([]BanRow, []BanFile, []string, error) {
	var rows []BanRow
	want := map[string]map[string]int{} // file -> address -> lines
	for _, j := range jails {
		for _, ip := range banned[j] {
			rows = append(rows, BanRow{Jail: j, IP: ip, Where: places[j]})
			for _, p := range places[j] {
				if p.File == "" {
					continue
				}
				if want[p.File] == nil {
					want[p.File] = map[string]int{}
				}
				want[p.File][ip]++
			}
		}
	}
	var files []string
	for _, j := range jails {
		for _, p := range places[j] {
			if p.File != "" && !slices.Contains(files, p.File) {
				files = append(files, p.File)
			}
		}
	}
	var problems []string
	var contents []BanFile
	for _, f := range files {
		p := f
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		lines, err := readLines(p)
		if err != nil {
			return nil, nil, nil, err
		}
		contents = append(contents, BanFile{Path: f, Lines: lines})
		held := addressLines(lines)
		var ips []string
		for ip := range held {
			ips = append(ips, ip)
		}
		for ip := range want[f] {
			if _, ok := held[ip]; !ok {
				ips = append(ips, ip)
			}
		}
		sort.Strings(ips)
		for _, ip := range ips {
			if held[ip] != want[f][ip] {
				problems = append(problems, fmt.Sprintf("%s holds %s %d time(s); the bans running put it there %d time(s)", f, ip, held[ip], want[f][ip]))
			}
		}
	}
	return rows, contents, problems, nil
}

// readLines returns the lines of the file at path (none when it is not
// there).
func readLines(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return nil, nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n"), nil
}

// addressLines counts, for each address, the lines that name it.
func addressLines(lines []string) map[string]int {
	out := map[string]int{}
	for _, l := range lines {
		seen := map[string]bool{}
		for _, w := range strings.FieldsFunc(l, func(r rune) bool { return unicode.IsSpace(r) || strings.ContainsRune(",;#\"'", r) }) {
			if a, err := netip.ParseAddr(w); err == nil && !seen[a.String()] {
				seen[a.String()] = true
				out[a.String()]++
			}
		}
	}
	return out
}

// compare returns the differences between what the attack log expects
// and what the daemon did (its bans and unbans, and the bans running at
// the end).
func compare(expect []Expectation, events []Event, banned map[string][]string) []string {
	type key struct{ jail, ip string }
	bans, unbans := map[key]int{}, map[key]int{}
	for _, e := range events {
		if e.Unban {
			unbans[key{e.Jail, e.IP}]++
		} else {
			bans[key{e.Jail, e.IP}]++
		}
	}
	held := map[key]bool{}
	for j, ips := range banned {
		for _, ip := range ips {
			held[key{j, ip}] = true
		}
	}
	var problems []string
	expected := map[key]bool{}
	for _, x := range expect {
		k := key{x.Jail, x.IP}
		expected[k] = true
		switch {
		case bans[k] == 0:
			problems = append(problems, fmt.Sprintf("%s did not ban %s", x.Jail, x.IP))
			continue
		case bans[k] > 1:
			problems = append(problems, fmt.Sprintf("%s banned %s %d times, not once", x.Jail, x.IP, bans[k]))
		}
		switch {
		case x.Unbanned && unbans[k] == 0:
			problems = append(problems, fmt.Sprintf("%s did not unban %s when its bantime was up", x.Jail, x.IP))
		case x.Unbanned && held[k]:
			problems = append(problems, fmt.Sprintf("%s still bans %s at the end", x.Jail, x.IP))
		case !x.Unbanned && unbans[k] > 0:
			problems = append(problems, fmt.Sprintf("%s unbanned %s before the end", x.Jail, x.IP))
		case !x.Unbanned && !held[k]:
			problems = append(problems, fmt.Sprintf("%s does not ban %s at the end", x.Jail, x.IP))
		}
	}
	var extra []string
	for k, n := range bans {
		if !expected[k] {
			extra = append(extra, fmt.Sprintf("%s banned %s (%d times), which the attack log does not imply", k.jail, k.ip, n))
		}
	}
	for k := range held {
		if !expected[k] && bans[k] == 0 {
			extra = append(extra, fmt.Sprintf("%s bans %s at the end, which the attack log does not imply", k.jail, k.ip))
		}
	}
	sort.Strings(extra)
	return append(problems, extra...)
}

// recorder keeps the bans and unbans as they come and prints each.
type recorder struct {
	out     io.Writer
	changed chan struct{} // a send, when one came and none is waiting
	width   int           // of the jail column; set before the first event

	mu     sync.Mutex
	start  time.Time
	events []Event
}

func (r *recorder) setStart(t time.Time) {
	r.mu.Lock()
	r.start = t
	r.mu.Unlock()
}

func (r *recorder) add(e Event) {
	r.mu.Lock()
	if !r.start.IsZero() {
		e.At = time.Since(r.start)
	}
	r.events = append(r.events, e)
	fmt.Fprintf(r.out, "  %+6.1fs  %-11s  %-*s  %s\n", e.At.Seconds(), e.Verb(), r.width, e.Jail, e.IP)
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// note prints a line among the events.
func (r *recorder) note(text string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.out, "  %+6.1fs  (%s)\n", time.Since(r.start).Seconds(), text)
}

func (r *recorder) list() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// wait waits until settle has passed and every ban and unban of expect
// has come, or ctx ends; it returns those that have not come.
func (r *recorder) wait(ctx context.Context, expect []Expectation) []string {
	timer := time.NewTimer(settle)
	defer timer.Stop()
	settled := false
	for {
		missing := r.missing(expect)
		if settled && len(missing) == 0 {
			return nil
		}
		select {
		case <-timer.C:
			settled = true
		case <-r.changed:
		case <-ctx.Done():
			return missing
		}
	}
}

// missing returns the bans and unbans of expect that have not come yet.
func (r *recorder) missing(expect []Expectation) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, x := range expect {
		var ban, unban bool
		for _, e := range r.events {
			if e.Jail == x.Jail && e.IP == x.IP {
				ban = ban || !e.Unban
				unban = unban || e.Unban
			}
		}
		if !ban {
			out = append(out, fmt.Sprintf("[%s] Ban %s", x.Jail, x.IP))
		}
		if x.Unbanned && !unban {
			out = append(out, fmt.Sprintf("[%s] Unban %s", x.Jail, x.IP))
		}
	}
	return out
}

func prefixed(prefix string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = prefix + n
	}
	return out
}

func (r DaemonResult) print(w io.Writer, after time.Duration) {
	fmt.Fprintf(w, "\nwhat is banned where, %.1fs after the replay began:\n", after.Seconds())
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  JAIL\tIP\tWHERE (action: file)")
	for _, b := range r.Banned {
		var where []string
		for _, p := range b.Where {
			where = append(where, p.String())
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", b.Jail, b.IP, strings.Join(where, ", "))
	}
	if len(r.Banned) == 0 {
		fmt.Fprintln(tw, "  (nothing)\t\t")
	}
	tw.Flush()
	if len(r.Files) > 0 {
		fmt.Fprintln(w, "\nthe files of bans, as the actions left them:")
	}
	for _, f := range r.Files {
		fmt.Fprintf(w, "  %s\n", f.Path)
		for _, l := range f.Lines {
			fmt.Fprintf(w, "      %s\n", l)
		}
	}
	fmt.Fprintf(w, "\nat Cloudflare (simulated), zone %s: %d rule(s)\n", cfsim.DefaultZoneName, len(r.Rules))
	for _, rule := range r.Rules {
		fmt.Fprintf(w, "      %-6s %-16s %q\n", rule.Mode, rule.IP, rule.Notes)
	}
	fmt.Fprintln(w)
	width := len("total")
	for _, j := range r.Jails {
		width = max(width, len(j.Jail))
	}
	row := func(name string, failures, bans, unbans, held any) {
		fmt.Fprintf(w, "  %-*s  %8v  %4v  %6v  %10v\n", width, name, failures, bans, unbans, held)
	}
	row("JAIL", "FAILURES", "BANS", "UNBANS", "BANNED NOW")
	var total JailCount
	for _, j := range r.Jails {
		row(j.Jail, j.Failures, j.Bans, j.Unbans, j.Held)
		total.Failures += j.Failures
		total.Bans += j.Bans
		total.Unbans += j.Unbans
		total.Held += j.Held
	}
	row("total", total.Failures, total.Bans, total.Unbans, total.Held)
	unbanned := 0
	for _, x := range r.Expected {
		if x.Unbanned {
			unbanned++
		}
	}
	fmt.Fprintf(w, "\nthe attack log implies %d bans, %d of them over by the end; replayed %d lines, elapsed %v\n",
		len(r.Expected), unbanned, r.Lines, r.Elapsed.Round(time.Millisecond))
	if r.OK() {
		var caught []string
		for _, x := range r.Expected {
			if x.Jail == "recidive" {
				caught = append(caught, x.IP)
			}
		}
		if len(caught) > 0 {
			fmt.Fprintf(w, "recidive caught the repeat offender %s, banned by two jails\n", strings.Join(caught, ", "))
		}
		fmt.Fprintln(w, "the daemon did exactly what the attack log implies")
		return
	}
	fmt.Fprintln(w, "MISMATCH: the daemon did not do what the attack log implies:")
	for _, p := range r.Problems {
		fmt.Fprintln(w, "  -", p)
	}
}

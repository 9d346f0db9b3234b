package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/edgeban/edgeban/internal/action"
	"github.com/edgeban/edgeban/internal/cloudflare"
	"github.com/edgeban/edgeban/internal/cloudflare/delivery"
	"github.com/edgeban/edgeban/internal/store"
)

const defaultDB = "/var/lib/edgeban/edgeban.db"

func runCloudflare(ctx context.Context, c *cli, args []string) error {
	subs := []command{
		{"ban", "enqueue bans (IP...) and deliver them unless a worker runs", cfBan},
		{"unban", "enqueue unbans (IP...) and deliver them unless a worker runs", cfUnban},
		{"serve", "run the worker that drains the outbox", cfServe},
		{"status", "show pending, failing and delivered operations and the rate budget", cfStatus},
		{"sync", "compare our bans with Cloudflare, re-create missing rules, delete our orphans", cfSync},
		{"verify", "check the credential and its permissions for the destination", cfVerify},
		{"list", "show our rules (or list items) at Cloudflare", cfList},
		{"ips", "print Cloudflare's published IP ranges", cfIPs},
		{"setup-list", "create the IP List and the zone's WAF custom rule that blocks it", cfSetupList},
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(c.stdout, "usage: edgeban cloudflare COMMAND [flags]\n\ncommands:")
		for _, s := range subs {
			fmt.Fprintf(c.stdout, "  %-11s %s\n", s.name, s.summary)
		}
		return nil
	}
	for _, s := range subs {
		if s.name == args[0] {
			return s.run(ctx, c, args[1:])
		}
	}
	return usageError{fmt.Sprintf("unknown cloudflare command %q", args[0])}
}

// cfFlags are the flags every cloudflare subcommand shares: where the state
// lives, and the destination with its credential.
type cfFlags struct {
	db         string
	logLevel   string
	rateLimit  int
	rateWindow time.Duration
	rateBurst  int
	p          delivery.Params
}

func (c *cli) addCFFlags(fs *flag.FlagSet, dest bool) *cfFlags {
	f := &cfFlags{}
	db := c.getenv("EDGEBAN_DB")
	if db == "" {
		db = defaultDB
	}
	fs.StringVar(&f.db, "db", db, "state database (env EDGEBAN_DB)")
	fs.StringVar(&f.logLevel, "log-level", "warn", "log level: debug, info, warn or error")
	fs.IntVar(&f.rateLimit, "rate-limit", 1150, "requests per --rate-window per credential, all callers together (Cloudflare allows 1200 per 5m)")
	fs.DurationVar(&f.rateWindow, "rate-window", 5*time.Minute, "the rate budget's window")
	fs.IntVar(&f.rateBurst, "rate-burst", 50, "requests that may go at once before the rest are spaced out at rate-limit/rate-window")
	if !dest {
		return f
	}
	fs.StringVar(&f.p.API, "api", "", "API base URL (cfapi); default "+cloudflare.DefaultBaseURL)
	fs.StringVar(&f.p.Scope, "scope", "", "user, account, zone or list (cfscope); default from the other flags: list, zone, account, else user")
	fs.StringVar(&f.p.Account, "account", "", "account id (cfaccount)")
	fs.StringVar(&f.p.Zone, "zone", "", "zone id or name (cfzone)")
	fs.StringVar(&f.p.List, "list", "", "IP List name (cflist): bans become list items")
	fs.StringVar(&f.p.Mode, "mode", "", "block, challenge, managed_challenge or js_challenge (cfmode); default block")
	fs.StringVar(&f.p.Notes, "notes", "", "notes template, {jail} is the jail's name; default \""+delivery.DefaultNotes+"\"")
	fs.BoolVar(&f.p.AggregateV6, "aggregate-v6", false, "ban an IPv6 address's whole /64 (ip_range)")
	fs.IntVar(&f.p.Capacity, "capacity", 0, "most bans the destination may hold; default 50000 rules, or the plan's list cap")
	fs.StringVar(&f.p.Policy, "policy", "", "when full: keep-oldest (new bans wait), evict-oldest, or aggregate (merge into /24 and /64 ranges, then keep-oldest); default keep-oldest")
	fs.StringVar(&f.p.Plan, "plan", "", "the account's plan for list capacity: free, pro, business or enterprise")
	fs.StringVar(&f.p.Email, "email", "", "account e-mail for the global API key (cfuser); without it the secret is an API token")
	fs.StringVar(&f.p.TokenFile, "token-file", "", "file holding the secret, mode 0600 (cftoken_file)")
	fs.BoolVar(&f.p.SecretStdin, "secret-stdin", false, "read the secret from the first line of standard input")
	fs.StringVar(&f.p.Credentials, "credentials", action.CredentialsFile(), "credentials file with [profile] sections, mode 0600")
	fs.StringVar(&f.p.Profile, "profile", "", "profile in the credentials file (cfprofile); default \"default\"")
	return f
}

// open opens the state database.
func (f *cfFlags) open(ctx context.Context) (*store.DB, error) {
	return store.Open(ctx, f.db)
}

// setup opens what a command about one destination needs: the logger, the
// database, and the destination registered in it. The caller closes db.
func (f *cfFlags) setup(ctx context.Context, c *cli) (*slog.Logger, *store.DB, delivery.Dest, error) {
	log, err := c.logger(f.logLevel)
	if err != nil {
		return nil, nil, delivery.Dest{}, err
	}
	db, err := f.open(ctx)
	if err != nil {
		return nil, nil, delivery.Dest{}, err
	}
	d, err := f.destination(ctx, c, db)
	if err != nil {
		db.Close()
		return nil, nil, delivery.Dest{}, err
	}
	return log, db, d, nil
}

// destination resolves the flags into a registered destination.
func (f *cfFlags) destination(ctx context.Context, c *cli, db *store.DB) (delivery.Dest, error) {
	spec, auth, err := f.p.Resolve(delivery.Env{Getenv: c.getenv, Stdin: c.stdin})
	if err != nil {
		return delivery.Dest{}, err
	}
	return delivery.NewOutbox(db).Register(ctx, spec, auth)
}

func cfBan(ctx context.Context, c *cli, args []string) error   { return cfEnqueue(ctx, c, args, true) }
func cfUnban(ctx context.Context, c *cli, args []string) error { return cfEnqueue(ctx, c, args, false) }

func cfEnqueue(ctx context.Context, c *cli, args []string, ban bool) error {
	verb := "unban"
	if ban {
		verb = "ban"
	}
	fs := c.newFlags("cloudflare "+verb, "cloudflare "+verb+" [flags] IP...",
		"Records the "+verb+" in the durable outbox and returns. Without a running worker it delivers\n"+
			"the operation itself, within --wait; what it cannot deliver by then stays queued for the\n"+
			"next caller or the worker, and shows in 'edgeban cloudflare status'.")
	f := c.addCFFlags(fs, true)
	jail := fs.String("jail", "", "the jail that bans (fail2ban's <name>)")
	wait := fs.Duration("wait", 5*time.Second, "how long to deliver when no worker runs (0: only enqueue)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageError{"no IP given"}
	}
	log, db, d, err := f.setup(ctx, c)
	if err != nil {
		return err
	}
	defer db.Close()
	ob := delivery.NewOutbox(db)
	var targets []string
	if ban {
		targets, err = ob.Ban(ctx, d, *jail, fs.Args()...)
	} else {
		targets, err = ob.Unban(ctx, d, *jail, fs.Args()...)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", verb, err)
	}
	if *wait <= 0 || db.WorkerRunning() {
		return nil
	}
	dctx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	dl, err := delivery.New(delivery.Config{
		DB: db, Owner: fmt.Sprintf("cli:%d:%d", os.Getpid(), time.Now().UnixNano()),
		HTTPClient: &http.Client{}, Logger: log, RateLimit: f.rateLimit, RateWindow: f.rateWindow, RateBurst: f.rateBurst,
		// Claims and the list-write lease outlive this call only briefly
		// should it be killed.
		Lease: *wait + 10*time.Second,
	})
	if err != nil {
		return err
	}
	// Our own operation first; then, with the time left, the backlog of
	// the same destination that earlier callers could not finish.
	f1 := store.ClaimFilter{Dests: []int64{d.ID}, Targets: targets}
	if d.Spec.Scope == delivery.ScopeList {
		f1.Targets = nil // a list write carries everything pending at once
	}
	if _, err := dl.Drain(dctx, f1, *wait+10*time.Second); err != nil && dctx.Err() == nil {
		return err
	}
	if dctx.Err() == nil {
		dl.Drain(dctx, store.ClaimFilter{Dests: []int64{d.ID}, Limit: 20}, *wait+10*time.Second)
	}
	for _, t := range targets {
		e, err := db.Entry(context.WithoutCancel(ctx), d.ID, t)
		if err == nil && e.Pending() {
			msg := "queued for the next caller or the worker"
			if e.LastError != "" {
				msg += "; last error: " + e.LastError
			}
			fmt.Fprintf(c.stderr, "edgeban: %s %s: %s\n", verb, t, msg)
		}
	}
	return nil
}

func cfServe(ctx context.Context, c *cli, args []string) error {
	fs := c.newFlags("cloudflare serve", "cloudflare serve [flags]",
		"Runs the worker: delivers every pending ban and unban in the outbox, batching list writes,\n"+
			"within the rate budget of each credential. One worker per database.")
	f := c.addCFFlags(fs, false)
	f.logLevel = "info"
	fs.Lookup("log-level").DefValue = "info"
	conc := fs.Int("concurrency", 4, "access-rule requests in flight")
	flush := fs.Duration("list-flush", 5*time.Second, "how long list changes gather before one bulk write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := c.logger(f.logLevel)
	if err != nil {
		return err
	}
	db, err := f.open(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	unlock, n, err := db.TakeWorker(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if n > 0 {
		log.Info("took back the claims of a previous worker", "entries", n)
	}
	dl, err := delivery.New(delivery.Config{
		DB: db, Owner: store.WorkerOwner(), HTTPClient: &http.Client{},
		Concurrency: *conc, ListFlush: *flush, RateLimit: f.rateLimit, RateWindow: f.rateWindow, RateBurst: f.rateBurst, Logger: log,
	})
	if err != nil {
		return err
	}
	log.Info("worker started", "db", db.Path())
	err = dl.Run(ctx)
	log.Info("worker stopped", "delivered", dl.Stats().Delivered.Load())
	return err
}

func cfStatus(ctx context.Context, c *cli, args []string) error {
	fs := c.newFlags("cloudflare status", "cloudflare status [flags]",
		"Shows, per destination, what is live, pending and failing, the delivery history,\n"+
			"the rate budget of each credential, and the failing operations with their last error.")
	f := c.addCFFlags(fs, false)
	if err := fs.Parse(args); err != nil {
		return err
	}
	db, err := f.open(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	rep, err := delivery.Status(ctx, db, f.rateLimit, f.rateWindow, f.rateBurst)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(c.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintf(w, "worker running:\t%v\n", db.WorkerRunning())
	fmt.Fprintln(w, "\nDESTINATION\tLIVE\tWANTED\tPENDING BAN\tPENDING UNBAN\tFAILING\tOLDEST PENDING\tPROJECTED")
	for _, d := range rep.Dests {
		oldest := "-"
		if !d.OldestPending.IsZero() {
			oldest = time.Since(d.OldestPending).Round(time.Second).String() + " ago"
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", d.Spec, d.Live, d.Wanted, d.PendingBan, d.PendingUnban, d.Failing, oldest, d.Projected)
	}
	fmt.Fprintln(w, "\nCREDENTIAL\tUSED IN WINDOW\tBUDGET\tLOCKED OUT UNTIL")
	for _, b := range rep.Budgets {
		until := "-"
		if !b.BlockedUntil.IsZero() {
			until = b.BlockedUntil.Format(time.RFC3339)
		}
		fmt.Fprintf(w, "%s\t%d\t%d per %s\t%s\n", b.Cred, b.Used, b.Limit, b.Window, until)
	}
	fmt.Fprintln(w, "\nDELIVERED (all time)\tOUTCOME\tCOUNT")
	for _, o := range rep.History {
		fmt.Fprintf(w, "%s\t%s\t%d\n", o.Op, o.Outcome, o.Count)
	}
	if len(rep.Failing) > 0 {
		fmt.Fprintln(w, "\nFAILING\tOP\tATTEMPTS\tNEXT TRY\tLAST ERROR")
		for _, e := range rep.Failing {
			op := "ban"
			if !e.Want {
				op = "unban"
			}
			fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\n", e.Target, op, e.Attempts, e.NextAt.Format(time.RFC3339), oneLine(e.LastError))
		}
	}
	return w.Flush()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func cfSync(ctx context.Context, c *cli, args []string) error {
	fs := c.newFlags("cloudflare sync", "cloudflare sync [flags]",
		"Compares the bans we hold with our rules (or list items) at Cloudflare: re-creates the\n"+
			"missing ones, deletes orphans that carry our note (never anything else), and reports drift.")
	f := c.addCFFlags(fs, true)
	dry := fs.Bool("dry-run", false, "report drift only, change nothing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, db, d, err := f.setup(ctx, c)
	if err != nil {
		return err
	}
	defer db.Close()
	dl, err := delivery.New(delivery.Config{DB: db, Owner: fmt.Sprintf("cli:%d:sync", os.Getpid()), Logger: log,
		RateLimit: f.rateLimit, RateWindow: f.rateWindow, RateBurst: f.rateBurst})
	if err != nil {
		return err
	}
	rep, err := dl.Sync(ctx, d.ID, *dry)
	if err != nil {
		return err
	}
	verb := "fixed"
	if *dry {
		verb = "would fix"
	}
	fmt.Fprintf(c.stdout, "%s: %d ours at Cloudflare, %d wanted; missing %d, orphans %d, foreign %d (%s)\n",
		d.Spec, rep.Remote, rep.Wanted, len(rep.Missing), len(rep.Orphans), rep.Foreign, verb)
	for _, t := range rep.Missing {
		fmt.Fprintln(c.stdout, "  missing:", t)
	}
	for _, t := range rep.Orphans {
		fmt.Fprintln(c.stdout, "  orphan: ", t)
	}
	return nil
}

func cfVerify(ctx context.Context, c *cli, args []string) error {
	fs := c.newFlags("cloudflare verify", "cloudflare verify [flags]",
		"Checks that the credential is valid and may read the destination; with --write, also that\n"+
			"it may edit it, by creating and deleting a rule (or list item) for 192.0.2.254.")
	f := c.addCFFlags(fs, true)
	write := fs.Bool("write", false, "also prove the edit permission with a temporary rule for a documentation address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	spec, auth, err := f.p.Resolve(delivery.Env{Getenv: c.getenv, Stdin: c.stdin})
	if err != nil {
		return err
	}
	checks, err := delivery.Verify(ctx, spec, auth, &http.Client{}, *write)
	for _, ch := range checks {
		mark := "ok  "
		if ch.Err != nil {
			mark = "FAIL"
		}
		fmt.Fprintf(c.stdout, "%s %s", mark, ch.What)
		if ch.Err != nil {
			fmt.Fprintf(c.stdout, ": %v", ch.Err)
		}
		fmt.Fprintln(c.stdout)
	}
	return err
}

func cfList(ctx context.Context, c *cli, args []string) error {
	fs := c.newFlags("cloudflare list", "cloudflare list [flags]",
		"Shows our rules (notes matching the template) or our list items at Cloudflare.")
	f := c.addCFFlags(fs, true)
	all := fs.Bool("all", false, "show every rule or item, not only ours")
	if err := fs.Parse(args); err != nil {
		return err
	}
	spec, auth, err := f.p.Resolve(delivery.Env{Getenv: c.getenv, Stdin: c.stdin})
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(c.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tTARGET\tMODE\tNOTE")
	n, err := delivery.Remote(ctx, spec, auth, &http.Client{}, *all, func(r delivery.RemoteRule) {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r.ID, r.Target, r.Mode, r.Note)
	})
	w.Flush()
	fmt.Fprintf(c.stdout, "%d shown\n", n)
	return err
}

func cfIPs(ctx context.Context, c *cli, args []string) error {
	fs := c.newFlags("cloudflare ips", "cloudflare ips [--update]",
		"Prints Cloudflare's published IP ranges (the copy edgeban ships, or the refreshed one).\n"+
			"With --update it downloads them again and keeps them beside the state database.")
	f := c.addCFFlags(fs, false)
	update := fs.Bool("update", false, "download the current ranges from Cloudflare")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cache := filepath.Join(filepath.Dir(f.db), "cloudflare-ips.txt")
	ranges, err := delivery.CloudflareRanges(ctx, cache, *update, &http.Client{Timeout: 20 * time.Second})
	if err != nil {
		return err
	}
	for _, p := range ranges {
		fmt.Fprintln(c.stdout, p)
	}
	return nil
}

func cfSetupList(ctx context.Context, c *cli, args []string) error {
	fs := c.newFlags("cloudflare setup-list", "cloudflare setup-list --account ID --zone ZONE [--list NAME] [flags]",
		"Creates the account IP List (if missing) and, in each --zone, the WAF custom rule that\n"+
			"blocks 'ip.src in $NAME' (appended; existing rules are never replaced).")
	f := c.addCFFlags(fs, true)
	action := fs.String("action", "block", "the custom rule's action: block, managed_challenge, challenge or js_challenge")
	if err := fs.Parse(args); err != nil {
		return err
	}
	zone := f.p.Zone
	f.p.Zone = ""
	f.p.Scope = delivery.ScopeList
	spec, auth, err := f.p.Resolve(delivery.Env{Getenv: c.getenv, Stdin: c.stdin})
	if err != nil {
		return err
	}
	if zone == "" {
		return usageError{"setup-list needs --zone (the zone whose WAF custom rule uses the list)"}
	}
	steps, err := delivery.SetupList(ctx, spec, auth, &http.Client{}, strings.Split(zone, ","), *action)
	for _, s := range steps {
		fmt.Fprintln(c.stdout, s)
	}
	return err
}

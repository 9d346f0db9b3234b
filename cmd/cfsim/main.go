// Command cfsim serves a stateful fake of Cloudflare's API v4 on a local
// address, for trying edgeban and for shell-level tests. See package
// internal/cloudflare/cfsim for what it simulates.
//
// Usage:
//
//	cfsim [flags]
//
// With no credential flags it accepts only the demo token, which it prints
// at start. State and statistics are at GET /__cfsim/state and GET
// /__cfsim/stats; POST /__cfsim/reset forgets everything.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/edgeban/edgeban/internal/cloudflare/cfsim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "cfsim:", err)
		os.Exit(2)
	}
}

// options are the parsed flags.
type options struct {
	listen string
	cfg    cfsim.Config
}

// repeated is a flag that may be given several times.
type repeated []string

// String returns the values joined by commas.
func (r *repeated) String() string { return strings.Join(*r, ",") }

// Set adds one value.
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

// parseFlags turns the command line into options. Errors name the flag.
func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("cfsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: cfsim [flags]\n\n"+
			"Serves a fake Cloudflare API v4 under /client/v4, with GET /__cfsim/state,\n"+
			"GET /__cfsim/stats and POST /__cfsim/reset for tests. With no credential\n"+
			"flags only the demo token %q is accepted.\n\nFlags:\n", cfsim.DemoToken)
		fs.PrintDefaults()
	}
	o := &options{}
	c := &o.cfg
	var tokens, roTokens, zones repeated
	var plan, notEntitled string
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8787", "address to listen on")
	fs.Var(&tokens, "token", "accept this API token (repeatable)")
	fs.Var(&roTokens, "token-readonly", "accept this read-only API token (repeatable)")
	fs.StringVar(&c.Email, "email", "", "X-Auth-Email of the Global API Key (with -key)")
	fs.StringVar(&c.Key, "key", "", "X-Auth-Key of the Global API Key (with -email)")
	fs.StringVar(&c.AccountID, "account", cfsim.DefaultAccountID, "the account id")
	fs.Var(&zones, "zone", "a zone as ID=NAME, ID being 32 hex characters (repeatable; default one zone, example.com)")
	fs.StringVar(&plan, "plan", string(cfsim.PlanFree), "plan: free, pro, business or enterprise")
	fs.IntVar(&c.RateLimit, "rate-limit", cfsim.DefaultRateLimit, "requests per credential per -rate-window; negative disables the limit")
	fs.DurationVar(&c.RateWindow, "rate-window", cfsim.DefaultRateWindow, "sliding window of the rate limit")
	fs.DurationVar(&c.Lockout, "lockout", cfsim.DefaultLockout, "how long a credential over the limit gets 429s")
	fs.DurationVar(&c.BulkDelay, "bulk-delay", cfsim.DefaultBulkDelay, "how long a list bulk operation takes; 0 completes at once")
	fs.IntVar(&c.RuleCap, "rule-cap", cfsim.DefaultRuleCap, "IP Access rules per account")
	fs.StringVar(&notEntitled, "not-entitled", "", "comma-separated access rule scopes (user, account, zone) whose creates fail with 10010")
	fs.BoolVar(&c.ZoneListInherited, "zone-list-inherited", false, "zone rule lists include user and account rules")
	fs.IntVar(&c.MaxLists, "max-lists", 0, "custom lists per account (default: the plan's)")
	fs.IntVar(&c.MaxListItems, "max-list-items", 0, "list items across all lists (default: the plan's)")
	fs.IntVar(&c.ListWriteRequests, "list-write-requests", 0, "item-modifying requests per 12 h (default 30000; negative disables)")
	fs.IntVar(&c.ListItemChanges, "list-item-changes", 0, "item modifications per 12 h (default 1000000; negative disables)")
	fs.BoolVar(&c.IPv6Strict, "ipv6-strict", false, "accept IPv6 list items only as CIDRs of /64 or shorter (the 2024 schema)")
	f := &c.Faults
	fs.Float64Var(&f.Error5xx, "fault-5xx", 0, "probability of a 502/503/520 HTML answer before the request is applied")
	fs.Float64Var(&f.Applied5xx, "fault-applied-5xx", 0, "probability of a 502/503/520 HTML answer after a write was applied")
	fs.IntVar(&f.Burst429Every, "fault-429-every", 0, "after every N requests that pass, inject a burst of 429s (with -fault-429-len)")
	fs.IntVar(&f.Burst429Len, "fault-429-len", 0, "the number of 429s in each burst (Retry-After: 1, codes 971 and 10100 in turn)")
	fs.DurationVar(&f.Latency, "latency", 0, "delay added before each API request is handled")
	fs.Float64Var(&f.Drop, "fault-drop", 0, "probability of closing the connection without an answer, before applying")
	fs.Float64Var(&f.Malformed, "fault-malformed", 0, "probability of cutting a JSON answer in half, after applying")
	fs.Uint64Var(&c.Seed, "seed", 1, "seed of the fault and id generators")

	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	for _, t := range tokens {
		c.Tokens = append(c.Tokens, cfsim.Token{Value: t})
	}
	for _, t := range roTokens {
		c.Tokens = append(c.Tokens, cfsim.Token{Value: t, ReadOnly: true})
	}
	for _, z := range zones {
		id, name, ok := strings.Cut(z, "=")
		if !ok || id == "" || name == "" {
			return nil, fmt.Errorf("-zone %q: want ID=NAME", z)
		}
		if c.Zones == nil {
			c.Zones = make(map[string]string)
		}
		c.Zones[id] = name
	}
	p, err := cfsim.ParsePlan(plan)
	if err != nil {
		return nil, fmt.Errorf("-plan: %w", err)
	}
	c.Plan = p
	if notEntitled != "" {
		c.NotEntitled = strings.Split(notEntitled, ",")
	}
	if c.RateLimit == 0 {
		return nil, errors.New("-rate-limit: 0 would refuse everything; use a negative value to disable the limit")
	}
	if c.BulkDelay == 0 {
		c.BulkDelay = -1 // Config reads 0 as the default; on the command line it means at once.
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return o, nil
}

// run parses args and serves until ctx is done, then shuts down gracefully.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	o.cfg.Logger = logger
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return serve(ctx, ln, o.cfg, logger)
}

// serve serves the simulator on ln until ctx is done.
func serve(ctx context.Context, ln net.Listener, cfg cfsim.Config, logger *slog.Logger) error {
	sim := cfsim.New(cfg)
	srv := &http.Server{
		Handler:           sim,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	url := "http://" + ln.Addr().String() + cfsim.APIPrefix
	logger.Info("cfsim listening", "url", url, "plan", cfg.Plan, "account", accountOf(cfg))
	if len(cfg.Tokens) == 0 && cfg.Email == "" {
		logger.Info("no credentials configured: accepting the demo token", "token", cfsim.DemoToken)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("cfsim shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

func accountOf(cfg cfsim.Config) string {
	if cfg.AccountID == "" {
		return cfsim.DefaultAccountID
	}
	return cfg.AccountID
}

package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"golang.org/x/term"

	"github.com/edgeban/edgeban/internal/demo"
)

func runDemo(ctx context.Context, c *cli, args []string) error {
	fs := c.newFlags("demo", "demo [flags]",
		"Runs edgeban on made-up traffic, with no root and no credentials, in two parts.\n\n"+
			"daemon: runs the daemon on an example configuration (jails sshd, nginx-http-auth and\n"+
			"recidive; actions that write files) in a temporary directory, replays an attack log\n"+
			"into the logs it follows, prints each ban and unban as it comes and, at the end, what\n"+
			"is banned where, and checks that against what the attack log implies.\n\n"+
			"cloudflare: starts a simulated Cloudflare on loopback with faults switched on, pushes a\n"+
			"wave of bans and then most of their unbans through the outbox and the worker, and shows\n"+
			"what the simulator holds at the end.\n\n"+
			"It exits non-zero when either part ends otherwise than it should.")
	part := fs.String("part", "all", "the part to run: all, daemon or cloudflare")
	do := demo.DefaultDaemonOptions()
	fs.DurationVar(&do.Timeout, "daemon-timeout", do.Timeout, "daemon part: give up after this long")
	fs.StringVar(&do.Dir, "dir", "", "daemon part: keep its configuration, logs, files of bans and database in `dir` (absent or empty)")
	co := demo.DefaultCloudflareOptions()
	fs.IntVar(&co.ListIPs, "list-ips", co.ListIPs, "cloudflare part: bans that go into the IP List")
	fs.IntVar(&co.RuleIPs, "rule-ips", co.RuleIPs, "cloudflare part: bans that become zone access rules")
	fs.IntVar(&co.Keep, "keep", co.Keep, "cloudflare part: how many of each stay banned at the end")
	fs.Float64Var(&co.Faults.Error5xx, "fault-5xx", co.Faults.Error5xx, "cloudflare part: share of requests answered 5xx")
	fs.DurationVar(&co.Faults.Latency, "latency", co.Faults.Latency, "cloudflare part: latency added to every request")
	fs.DurationVar(&co.Timeout, "cloudflare-timeout", co.Timeout, "cloudflare part: give up after this long")
	logLevel := fs.String("log-level", "error", "log level of the daemon and the worker on stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError{"demo takes no arguments"}
	}
	runDaemon, runCloudflare := *part == "all" || *part == "daemon", *part == "all" || *part == "cloudflare"
	if !runDaemon && !runCloudflare {
		return usageError{fmt.Sprintf("-part %q: use all, daemon or cloudflare", *part)}
	}
	if co.Keep > co.ListIPs || co.Keep > co.RuleIPs {
		return usageError{"-keep is larger than a wave"}
	}
	log, err := c.logger(*logLevel)
	if err != nil {
		return err
	}
	do.Logger, do.Out = log, c.stdout
	co.Logger, co.Out = log, c.stdout
	if f, ok := c.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		co.Progress = c.stderr
	}
	// The parts run one after the other, the second even when the first
	// failed (but not when interrupted); each has its own time limit.
	var errs []error
	if runDaemon {
		fmt.Fprintln(c.stdout, "== the daemon: an attack on sshd and nginx, replayed ==")
		if _, err := demo.RunDaemon(ctx, do); err != nil {
			errs = append(errs, fmt.Errorf("demo, daemon part: %w", err))
		}
	}
	if runCloudflare && ctx.Err() == nil {
		if runDaemon {
			fmt.Fprintln(c.stdout)
		}
		fmt.Fprintln(c.stdout, "== Cloudflare: a wave of bans and unbans through the outbox, against a faulty simulator ==")
		if _, err := demo.RunCloudflare(ctx, co); err != nil {
			errs = append(errs, fmt.Errorf("demo, cloudflare part: %w", err))
		}
	}
	return errors.Join(errs...)
}

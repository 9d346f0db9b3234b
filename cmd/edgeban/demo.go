package main

import (
	"context"
	"os"

	"golang.org/x/term"

	"github.com/edgeban/edgeban/internal/demo"
)

func runDemo(ctx context.Context, c *cli, args []string) error {
	fs := c.newFlags("demo", "demo [flags]",
		"Starts a simulated Cloudflare on loopback with faults switched on, pushes a wave of bans\n"+
			"and then most of their unbans through the outbox and the worker, and shows what the\n"+
			"simulator holds at the end. Needs no root and no credentials.")
	o := demo.DefaultOptions()
	fs.IntVar(&o.ListIPs, "list-ips", o.ListIPs, "bans that go into the IP List")
	fs.IntVar(&o.RuleIPs, "rule-ips", o.RuleIPs, "bans that become zone access rules")
	fs.IntVar(&o.Keep, "keep", o.Keep, "how many of each stay banned at the end")
	fs.Float64Var(&o.Faults.Error5xx, "fault-5xx", o.Faults.Error5xx, "share of requests answered 5xx")
	fs.DurationVar(&o.Faults.Latency, "latency", o.Faults.Latency, "latency added to every request")
	fs.DurationVar(&o.Timeout, "timeout", o.Timeout, "give up after this long")
	logLevel := fs.String("log-level", "error", "log level of the worker")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.Keep > o.ListIPs || o.Keep > o.RuleIPs {
		return usageError{"-keep is larger than a wave"}
	}
	log, err := c.logger(*logLevel)
	if err != nil {
		return err
	}
	o.Logger, o.Out = log, c.stdout
	if f, ok := c.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		o.Progress = c.stderr
	}
	_, err = demo.Run(ctx, o)
	return err
}

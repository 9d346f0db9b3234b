// Command edgeban bans abusive clients at Cloudflare's edge, as fail2ban's
// Cloudflare action done properly: a durable outbox, a native API client
// and a worker. Run "edgeban help" for the subcommands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// cli carries what every subcommand needs from the process.
type cli struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, c *cli, args []string) error
}

func commands() []command {
	return []command{
		{"demo", "show the daemon banning a replayed attack, then a wave of bans going to a simulated Cloudflare", runDemo},
		{"regex", "test a fail2ban filter against a log, as fail2ban-regex does", runRegex},
		{"check", "check a fail2ban configuration (jails, filters, actions), as fail2ban-client -t does", runCheck},
		{"serve", "run the jails of a fail2ban configuration (the daemon)", runServe},
		{"status", "show the daemon's jails, or one jail's failures and bans: status [JAIL]", clientCommand("status")},
		{"set", "ban or unban by hand: set JAIL banip|unbanip IP...", clientCommand("set")},
		{"get", "list a jail's bans: get JAIL banip [--with-time]", clientCommand("get")},
		{"unban", "unban addresses in every jail: unban IP... | --all", clientCommand("unban")},
		{"banned", "list the bans of every jail, or of some addresses: banned [IP...]", clientCommand("banned")},
		{"reload", "read the configuration again, restarting the jails that changed: reload [--restart] [JAIL]", clientCommand("reload")},
		{"flushlogs", "open the daemon's log file again, after logrotate moved it", clientCommand("flushlogs")},
		{"ping", "check that the daemon answers", clientCommand("ping")},
		{"stop", "stop the daemon", clientCommand("stop")},
		{"import-fail2ban-db", "copy the bans and ban records of fail2ban's database into edgeban's", runImportFail2banDB},
		{"cloudflare", "ban and unban at Cloudflare: ban, unban, serve, status, sync, verify, list, ips, setup-list", runCloudflare},
		{"version", "print the version", func(_ context.Context, c *cli, _ []string) error {
			fmt.Fprintln(c.stdout, "edgeban", version)
			return nil
		}},
	}
}

func main() {
	c := &cli{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := c.main(ctx, os.Args[1:])
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, new(usageError)):
		fmt.Fprintln(os.Stderr, "edgeban:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "edgeban:", err)
		os.Exit(1)
	}
}

// usageError marks a mistake in the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func (c *cli) main(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		c.usage(c.stdout)
		return nil
	}
	for _, cmd := range commands() {
		if cmd.name == args[0] {
			return cmd.run(ctx, c, args[1:])
		}
	}
	c.usage(c.stderr)
	return usageError{fmt.Sprintf("unknown command %q", args[0])}
}

func (c *cli) usage(w io.Writer) {
	fmt.Fprintln(w, "usage: edgeban COMMAND [flags]\n\ncommands:")
	for _, cmd := range commands() {
		fmt.Fprintf(w, "  %-11s %s\n", cmd.name, cmd.summary)
	}
	fmt.Fprintln(w, "\nRun 'edgeban COMMAND --help' for a command's flags.")
}

// newFlags returns a flag set that prints usage for a subcommand.
func (c *cli) newFlags(name, synopsis, about string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, "usage: edgeban %s\n\n%s\n\nflags:\n", synopsis, about)
		fs.PrintDefaults()
	}
	return fs
}

// logger returns the process's logger at the given level, on stderr.
func (c *cli) logger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{fmt.Sprintf("log level %q: use debug, info, warn or error", level)}
	}
	return slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: l})), nil
}

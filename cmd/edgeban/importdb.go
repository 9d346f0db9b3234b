package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/edgeban/edgeban/internal/config"
	"github.com/edgeban/edgeban/internal/store"
)

const importUsage = `usage: edgeban import-fail2ban-db [-c CONFDIR] [--db PATH] [FAIL2BAN_DB]

Copies the bans of fail2ban's database (schema version 4, fail2ban 0.11
and later; default: fail2ban.conf's dbfile) into edgeban's (default:
edgeban.conf's dbfile): the bans still running, which edgeban serve then
restores, and the record of past bans, so that bantime.increment keeps
counting repeat offenders. At its start, edgeban serve also lifts at
Cloudflare the bans on record that have ended (fail2ban may not have):
each is looked up by address and note, and only a rule with our note is
deleted. fail2ban's file is only read.

Flags:
`

func runImportFail2banDB(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("import-fail2ban-db", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), importUsage)
		fs.PrintDefaults()
	}
	confDir := fs.String("c", "/etc/fail2ban", "configuration `dir`ectory (fail2ban.conf, edgeban.conf)")
	dbPath := fs.String("db", "", "edgeban's database `path` (default: edgeban.conf's dbfile)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		fs.Usage()
		return usageError{"import-fail2ban-db takes at most one FAIL2BAN_DB"}
	}
	srv, err := config.ReadServer(*confDir)
	if err != nil {
		return err
	}
	src := srv.Fail2banDBFile
	if fs.NArg() == 1 {
		src = fs.Arg(0)
	}
	dst := srv.DBFile
	if *dbPath != "" {
		dst = *dbPath
	}
	db, err := store.Open(ctx, dst)
	if err != nil {
		return err
	}
	defer db.Close()
	st, err := db.ImportFail2ban(ctx, src, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "imported %d bans on record, %d of them still running, from %s into %s\n", st.Records, st.Active, src, dst)
	return nil
}

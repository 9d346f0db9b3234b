// Package demo is "edgeban demo", in two parts that need no root and no
// credentials. The daemon part runs the daemon in process on the example
// configuration (sshd, nginx-http-auth and recidive, see
// github.com/edgeban/edgeban/config) in a directory of its own, replays
// an attack log into the files its jails follow, shows each ban and unban
// as it comes and what is banned where at the end, and checks that against
// what the attack log implies. The Cloudflare part starts the Cloudflare
// simulator on loopback with faults switched on, pushes a wave of bans and
// then most of their unbans through the durable outbox and the worker,
// and checks that the simulator ends up holding exactly what should be
// banned.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/edgeban/edgeban/internal/cloudflare"
	"github.com/edgeban/edgeban/internal/cloudflare/cfsim"
	"github.com/edgeban/edgeban/internal/cloudflare/delivery"
	"github.com/edgeban/edgeban/internal/store"
)

// CloudflareOptions configure the Cloudflare part of the demo.
type CloudflareOptions struct {
	ListIPs  int           // bans that go into the IP List
	RuleIPs  int           // bans that become zone access rules
	Keep     int           // of each kind, how many stay banned at the end
	Faults   cfsim.Faults  // what the simulator does wrong
	Timeout  time.Duration // the whole run's limit
	Out      io.Writer     // the closing table
	Progress io.Writer     // the progress bar (nil: none)
	Logger   *slog.Logger
	// Dir keeps the database; empty means a temporary directory removed at the end.
	Dir string
}

// DefaultCloudflareOptions are the demo's: a couple of thousand bans,
// faults on, in about 15 s.
func DefaultCloudflareOptions() CloudflareOptions {
	return CloudflareOptions{
		// Access rules go one request each, paced within Cloudflare's
		// 1,200 per 5 minutes (a burst of 50, then about 4 a second):
		// some dozens fit in the part's share of the demo's minute.
		ListIPs: 2000, RuleIPs: 40, Keep: 20,
		Faults: cfsim.Faults{
			Error5xx: 0.15, Applied5xx: 0.03, Burst429Every: 40, Burst429Len: 3,
			Latency: 20 * time.Millisecond, Drop: 0.02, Malformed: 0.02,
		},
		Timeout: 25 * time.Second,
	}
}

// CloudflareResult is what the Cloudflare part measured.
type CloudflareResult struct {
	Enqueued      int // bans and unbans written to the outbox
	Delivered     int // entries brought in step with Cloudflare
	Requests      int64
	Retries       int64
	RateLimited   int64 // 429s the simulator sent
	Injected5xx   int64
	Drops         int64
	WantedRules   int
	WantedItems   int
	HeldRules     int // what the simulator holds at the end
	HeldItems     int
	Missing       []string // should be banned, is not
	Extra         []string // is banned, should not be
	Duplicates    int
	Elapsed       time.Duration
	PendingAtExit int
}

// OK reports whether the simulator holds exactly what should be banned.
func (r CloudflareResult) OK() bool {
	return len(r.Missing) == 0 && len(r.Extra) == 0 && r.Duplicates == 0 && r.PendingAtExit == 0
}

const (
	demoToken = "edgeban-demo-token-0123456789abcdef"
	listName  = "edgeban_demo"
)

// RunCloudflare runs the Cloudflare part.
func RunCloudflare(ctx context.Context, o CloudflareOptions) (CloudflareResult, error) {
	var res CloudflareResult
	start := time.Now()
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()

	// The simulator, on loopback.
	sim := cfsim.New(cfsim.Config{
		Tokens: []cfsim.Token{{Value: demoToken}}, Plan: cfsim.PlanFree,
		Faults: o.Faults, Seed: 42, BulkDelay: 200 * time.Millisecond, Logger: o.Logger,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return res, err
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	api := "http://" + ln.Addr().String() + "/client/v4"

	dir := o.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "edgeban-demo-"); err != nil {
			return res, err
		}
		defer os.RemoveAll(dir)
	}
	db, err := store.Open(ctx, filepath.Join(dir, "edgeban.db"))
	if err != nil {
		return res, err
	}
	defer db.Close()

	auth := cloudflare.Auth{Token: demoToken}
	hc := &http.Client{Timeout: 10 * time.Second}
	listSpec := delivery.Spec{API: api, Cred: auth.Fingerprint(), Scope: delivery.ScopeList, Account: cfsim.DefaultAccountID, List: listName}
	if listSpec, err = listSpec.Normalize(); err != nil {
		return res, err
	}
	fmt.Fprintf(o.Out, "cfsim on %s (faults: %.0f%% 5xx, 429 bursts, %v latency, dropped connections)\n", api, o.Faults.Error5xx*100, o.Faults.Latency)
	steps, err := delivery.SetupList(ctx, listSpec, auth, hc, []string{cfsim.DefaultZoneName}, "block")
	for _, s := range steps {
		fmt.Fprintln(o.Out, "setup-list:", s)
	}
	if err != nil {
		return res, err
	}
	ob := delivery.NewOutbox(db)
	listDest, err := ob.Register(ctx, listSpec, auth)
	if err != nil {
		return res, err
	}
	ruleDest, err := ob.Register(ctx, delivery.Spec{API: api, Scope: delivery.ScopeZone, Zone: cfsim.DefaultZoneName, Notes: "edgeban {jail}"}, auth)
	if err != nil {
		return res, err
	}

	// The worker, in-process, counting the requests it makes.
	var requests, retries atomic.Int64
	dl, err := delivery.New(delivery.Config{
		DB: db, Owner: "worker:demo", HTTPClient: hc, Concurrency: 8, ListFlush: time.Second, Logger: o.Logger,
		MaxRetries: 3,
		Observe: func(a cloudflare.Attempt) {
			requests.Add(1)
			if a.Retry {
				retries.Add(1)
			}
		},
	})
	if err != nil {
		return res, err
	}
	wctx, stopWorker := context.WithCancel(ctx)
	workerDone := make(chan struct{})
	go func() {
		defer close(workerDone)
		if err := dl.Run(wctx); err != nil {
			o.Logger.Error("worker", "err", err)
		}
	}()
	defer func() { stopWorker(); <-workerDone }()

	listIPs := addresses(o.ListIPs, 0)
	ruleIPs := addresses(o.RuleIPs, 1)
	jails := []string{"sshd", "nginx-http-auth", "postfix"}

	// The wave: every address banned by one jail, a tenth by a second jail too.
	total := 0
	for i, ip := range listIPs {
		if _, err := ob.Ban(ctx, listDest, jails[i%3], ip); err != nil {
			return res, err
		}
		total++
	}
	for i, ip := range ruleIPs {
		if _, err := ob.Ban(ctx, ruleDest, jails[i%3], ip); err != nil {
			return res, err
		}
		total++
		if i%10 == 0 {
			ob.Ban(ctx, ruleDest, jails[(i+1)%3], ip)
			total++
		}
	}
	if err := wait(ctx, db, "bans", o.Progress); err != nil {
		return res, err
	}
	// Then the unbans, all but Keep of each kind.
	for i, ip := range listIPs[o.Keep:] {
		if _, err := ob.Unban(ctx, listDest, jails[(i+o.Keep)%3], ip); err != nil {
			return res, err
		}
		total++
	}
	for i, ip := range ruleIPs[o.Keep:] {
		j := i + o.Keep
		ob.Unban(ctx, ruleDest, jails[j%3], ip)
		total++
		if j%10 == 0 {
			ob.Unban(ctx, ruleDest, jails[(j+1)%3], ip)
			total++
		}
	}
	if err := wait(ctx, db, "unbans", o.Progress); err != nil {
		return res, err
	}
	stopWorker()
	<-workerDone

	// What the simulator holds, against what should be banned.
	res.Enqueued = total
	res.Delivered = int(dl.Stats().Delivered.Load())
	res.Requests, res.Retries = requests.Load(), retries.Load()
	st := sim.Stats()
	res.RateLimited, res.Injected5xx, res.Drops = st.RateLimited, st.Injected5xx, st.Drops
	want := map[string]bool{}
	for _, ip := range listIPs[:o.Keep] {
		t, _ := listDest.Spec.Target(ip) // IPv6 goes into a list as its /64
		want["list "+t] = true
	}
	for _, ip := range ruleIPs[:o.Keep] {
		t, _ := ruleDest.Spec.Target(ip)
		want["rule "+t] = true
	}
	res.WantedItems, res.WantedRules = o.Keep, o.Keep
	held := map[string]int{}
	for _, it := range sim.ListItems(listName) {
		held["list "+it.Value]++
		res.HeldItems++
	}
	for _, r := range sim.AccessRules(cfsim.ZoneScope(cfsim.DefaultZoneID)) {
		held["rule "+r.Value]++
		res.HeldRules++
	}
	for k, n := range held {
		if n > 1 {
			res.Duplicates += n - 1
		}
		if !want[k] {
			res.Extra = append(res.Extra, k)
		}
	}
	for k := range want {
		if held[k] == 0 {
			res.Missing = append(res.Missing, k)
		}
	}
	sort.Strings(res.Extra)
	sort.Strings(res.Missing)
	status, err := db.Status(context.WithoutCancel(ctx))
	if err != nil {
		return res, err
	}
	for _, s := range status {
		res.PendingAtExit += s.PendingBan + s.PendingUnban
	}
	res.Elapsed = time.Since(start)
	res.print(o.Out)
	if !res.OK() {
		return res, errors.New("the simulator does not hold exactly what should be banned")
	}
	return res, nil
}

// addresses returns n distinct documentation-range-like addresses; kind
// keeps the two waves apart. Some are IPv6.
func addresses(n, kind int) []string {
	out := make([]string, n)
	for i := range n {
		if i%7 == 6 {
			out[i] = fmt.Sprintf("2001:db8:%x:%x::1", kind+1, i)
			continue
		}
		out[i] = fmt.Sprintf("%d.%d.%d.%d", 100+kind, 64+i/65536, i/256%256, i%256)
	}
	return out
}

// wait shows progress until nothing is pending.
func wait(ctx context.Context, db *store.DB, what string, progress io.Writer) error {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	first := -1
	for {
		st, err := db.Status(ctx)
		if err != nil {
			return err
		}
		pending, failing := 0, 0
		for _, s := range st {
			pending += s.PendingBan + s.PendingUnban
			failing += s.Failing
		}
		if first < 0 {
			first = pending
		}
		if progress != nil {
			bar(progress, what, first-pending, first, failing)
		}
		if pending == 0 {
			if progress != nil {
				fmt.Fprintln(progress)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			if progress != nil {
				fmt.Fprintln(progress)
			}
			return fmt.Errorf("%s: %d still pending when time ran out: %w", what, pending, ctx.Err())
		case <-t.C:
		}
	}
}

func bar(w io.Writer, what string, done, total, failing int) {
	const width = 40
	n := 0
	if total > 0 {
		n = done * width / total
	}
	fmt.Fprintf(w, "\r%-7s [%s%s] %5d/%-5d retrying %-4d", what, strings.Repeat("#", n), strings.Repeat(".", width-n), done, total, failing)
}

func (r CloudflareResult) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\noperations enqueued\t", r.Enqueued)
	fmt.Fprintln(tw, "entries delivered\t", r.Delivered)
	fmt.Fprintln(tw, "API requests used\t", fmt.Sprintf("%d (budget 1150 per 5m, burst 50; Cloudflare allows 1200)", r.Requests))
	fmt.Fprintln(tw, "retries\t", r.Retries)
	fmt.Fprintln(tw, "429s / 5xx / drops injected\t", fmt.Sprintf("%d / %d / %d", r.RateLimited, r.Injected5xx, r.Drops))
	fmt.Fprintln(tw, "list items: should hold / holds\t", fmt.Sprintf("%d / %d", r.WantedItems, r.HeldItems))
	fmt.Fprintln(tw, "zone rules: should hold / holds\t", fmt.Sprintf("%d / %d", r.WantedRules, r.HeldRules))
	fmt.Fprintln(tw, "missing / extra / duplicates\t", fmt.Sprintf("%d / %d / %d", len(r.Missing), len(r.Extra), r.Duplicates))
	fmt.Fprintln(tw, "pending at exit\t", r.PendingAtExit)
	fmt.Fprintln(tw, "elapsed\t", r.Elapsed.Round(time.Millisecond))
	verdict := "exactly what should be banned"
	if !r.OK() {
		verdict = "MISMATCH"
	}
	fmt.Fprintln(tw, "the simulator holds\t", verdict)
	tw.Flush()
}

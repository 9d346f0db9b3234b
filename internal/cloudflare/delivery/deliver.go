package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeban/edgeban/internal/cloudflare"
	"github.com/edgeban/edgeban/internal/store"
)

// Config configures a Deliverer. Zero values take the defaults noted.
type Config struct {
	DB *store.DB
	// Owner names the claims this deliverer takes; it must be unique among
	// live deliverers. The worker uses "worker:" as its prefix.
	Owner      string
	HTTPClient *http.Client
	// RateLimit and RateWindow size the budget shared by every caller of
	// one credential; default 1,150 per 5 minutes, under Cloudflare's 1,200.
	RateLimit  int
	RateWindow time.Duration
	// RateBurst is how many requests may go at once before the budget
	// spaces them out at RateLimit/RateWindow; default 50.
	RateBurst int
	// Concurrency bounds access-rule requests in flight; default 4.
	Concurrency int
	// Lease is how long a claim holds; default 10 minutes (longer than a
	// rate-limit lockout, so that a waiting claim does not lapse).
	Lease time.Duration
	// ListFlush is how long list changes gather before one bulk write;
	// default 5 s. ListBatch caps the items of one write; default 10,000.
	ListFlush time.Duration
	ListBatch int
	// MaxRetries is passed to the client: retries of one call before the
	// operation is parked for a later attempt.
	MaxRetries int
	Logger     *slog.Logger
	// Observe is called after every HTTP attempt (metrics, the demo's counters).
	Observe func(cloudflare.Attempt)
	Now     func() time.Time
}

func (c *Config) setDefaults() {
	if c.RateLimit == 0 {
		c.RateLimit = 1150
	}
	if c.RateWindow == 0 {
		c.RateWindow = 5 * time.Minute
	}
	if c.RateBurst == 0 {
		c.RateBurst = 50
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.Lease == 0 {
		c.Lease = 10 * time.Minute
	}
	if c.ListFlush == 0 {
		c.ListFlush = 5 * time.Second
	}
	if c.ListBatch <= 0 {
		c.ListBatch = 10_000
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Deliverer makes the API calls that bring Cloudflare in step with the outbox.
type Deliverer struct {
	cfg Config
	db  *store.DB
	log *slog.Logger

	mu    sync.Mutex
	dests map[int64]*dest

	stats Stats
}

// Stats counts a deliverer's work.
type Stats struct {
	Delivered atomic.Int64 // entries brought in step
	Failed    atomic.Int64 // attempts that failed and were rescheduled
	Parked    atomic.Int64 // entries held back by a capacity policy
}

// dest is a destination with its client, loaded once.
type dest struct {
	id     int64
	raw    []byte // the stored spec this was loaded from
	spec   Spec
	client *cloudflare.Client
	budget *store.Budget

	mu     sync.Mutex
	zoneID string // resolved zone id, for a zone given by name
	listID string
}

// New returns a Deliverer.
func New(cfg Config) (*Deliverer, error) {
	if cfg.DB == nil {
		return nil, errors.New("delivery: no database")
	}
	if cfg.Owner == "" {
		return nil, errors.New("delivery: no owner")
	}
	cfg.setDefaults()
	return &Deliverer{cfg: cfg, db: cfg.DB, log: cfg.Logger, dests: map[int64]*dest{}}, nil
}

// Stats returns the deliverer's counters.
func (d *Deliverer) Stats() *Stats { return &d.stats }

// dest loads a destination, its credential and its client, again when a
// later registration changed its spec (a new token, another policy).
func (d *Deliverer) dest(ctx context.Context, id int64) (*dest, error) {
	raw, err := d.db.DestSpec(ctx, id)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if ds, ok := d.dests[id]; ok && string(ds.raw) == string(raw) {
		return ds, nil
	}
	var spec Spec
	if err := json.Unmarshal(raw, &spec); err != nil {
		return nil, fmt.Errorf("destination %d: %w", id, err)
	}
	secret, err := d.db.Secret(ctx, spec.Cred)
	if err != nil {
		return nil, fmt.Errorf("destination %d: %w", id, err)
	}
	var sec Secret
	if err := json.Unmarshal(secret, &sec); err != nil {
		return nil, fmt.Errorf("destination %d: credential: %w", id, err)
	}
	budget := d.db.Budget(spec.Cred, d.cfg.RateLimit, d.cfg.RateWindow, d.cfg.RateBurst)
	client, err := cloudflare.New(cloudflare.Options{
		BaseURL:    spec.API,
		Auth:       sec.Auth(),
		HTTPClient: d.cfg.HTTPClient,
		Limiter:    budget,
		MaxRetries: d.cfg.MaxRetries,
		Logger:     d.log,
		Observe:    d.cfg.Observe,
	})
	if err != nil {
		return nil, fmt.Errorf("destination %d: %w", id, err)
	}
	ds := &dest{id: id, raw: raw, spec: spec, client: client, budget: budget}
	d.dests[id] = ds
	return ds, nil
}

// Drain delivers the entries that f selects until none is left or ctx
// ends. An entry waiting for its retry time is waited for if that comes
// before ctx's deadline. Claims still held when it returns are released,
// so that others may deliver those entries at once. It reports how many
// entries it delivered.
func (d *Deliverer) Drain(ctx context.Context, f store.ClaimFilter, lease time.Duration) (int, error) {
	defer d.db.Release(context.WithoutCancel(ctx), d.cfg.Owner)
	before := d.stats.Delivered.Load()
	delivered := func() int { return int(d.stats.Delivered.Load() - before) }
	for ctx.Err() == nil {
		es, err := d.db.Claim(ctx, d.cfg.Owner, f, lease)
		if err != nil {
			return delivered(), err
		}
		if len(es) > 0 {
			d.deliver(ctx, es)
			continue
		}
		next, ok, err := d.db.NextDue(ctx, f)
		if err != nil || !ok {
			return delivered(), err
		}
		wait := next.Sub(d.cfg.Now())
		if deadline, has := ctx.Deadline(); !has || next.After(deadline) {
			return delivered(), nil // not due in our time: the next caller or the worker takes it
		}
		t := time.NewTimer(max(wait, 10*time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
	return delivered(), nil
}

// deliver delivers claimed entries: access rules concurrently, list items
// in one batch per list.
func (d *Deliverer) deliver(ctx context.Context, es []store.Entry) {
	byDest := map[int64][]store.Entry{}
	for _, e := range es {
		byDest[e.Dest] = append(byDest[e.Dest], e)
	}
	sem := make(chan struct{}, d.cfg.Concurrency)
	var wg sync.WaitGroup
	for id, group := range byDest {
		ds, err := d.dest(ctx, id)
		if err != nil {
			for _, e := range group {
				d.fail(ctx, e, err)
			}
			continue
		}
		if ds.spec.Scope == ScopeList {
			d.withListLease(ctx, ds.spec, func() { d.deliverList(ctx, ds, group) })
			continue
		}
		group = d.applyRuleCapacity(ctx, ds, group)
		for _, e := range group {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				d.deliverRule(ctx, ds, e)
			}()
		}
	}
	wg.Wait()
}

// complete records results, counting them.
func (d *Deliverer) complete(ctx context.Context, rs ...store.Result) {
	if len(rs) == 0 {
		return
	}
	lost, err := d.db.Complete(context.WithoutCancel(ctx), d.cfg.Owner, rs...)
	if err != nil {
		d.log.Error("recording delivery", "err", err)
		return
	}
	if lost > 0 {
		d.log.Warn("claims lapsed before their results were recorded; others will redo them", "count", lost)
	}
	d.stats.Delivered.Add(int64(len(rs) - lost))
}

// fail records a failed attempt and schedules the next one.
func (d *Deliverer) fail(ctx context.Context, e store.Entry, err error) {
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		// Interrupted, not failed: the claim is released by Drain or Run
		// and whoever comes next tries again at once.
		return
	}
	next := d.cfg.Now().Add(retryDelay(e.Attempts, err))
	var ae *cloudflare.APIError
	if errors.As(err, &ae) && ae.RetryAfter > 0 {
		next = d.cfg.Now().Add(ae.RetryAfter)
	}
	d.stats.Failed.Add(1)
	d.log.Warn("delivery failed; will retry", "target", e.Target, "attempt", e.Attempts+1, "next", next.Format(time.RFC3339), "err", err)
	if ferr := d.db.Fail(context.WithoutCancel(ctx), d.cfg.Owner, e.Dest, e.Target, err.Error(), next); ferr != nil {
		d.log.Error("recording failure", "target", e.Target, "err", ferr)
	}
}

// retryDelay is the wait before the next attempt of an entry that failed
// attempts times already: exponential with jitter, from 2 s up to 5 minutes,
// and 10 minutes for errors that need a person (bad credentials, a refused
// request) so that they do not burn the rate budget.
func retryDelay(attempts int, err error) time.Duration {
	if cloudflare.IsPermanent(err) {
		return 10 * time.Minute
	}
	d := 2 * time.Second << min(attempts, 8)
	if d > 5*time.Minute {
		d = 5 * time.Minute
	}
	return d - time.Duration(rand.Int64N(int64(d/4)+1))
}

// scope resolves the destination's access-rule scope, looking a zone name
// up once (and caching it in the store).
func (d *Deliverer) scope(ctx context.Context, ds *dest) (cloudflare.Scope, error) {
	switch ds.spec.Scope {
	case ScopeUser:
		return cloudflare.Scope{Kind: cloudflare.ScopeKind(ScopeUser)}, nil
	case ScopeAccount:
		return cloudflare.Scope{Kind: cloudflare.ScopeKind(ScopeAccount), ID: ds.spec.Account}, nil
	}
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if ds.zoneID == "" {
		id, err := d.resolveZone(ctx, ds)
		if err != nil {
			return cloudflare.Scope{}, err
		}
		ds.zoneID = id
	}
	return cloudflare.Scope{Kind: cloudflare.ScopeKind(ScopeZone), ID: ds.zoneID}, nil
}

func (d *Deliverer) resolveZone(ctx context.Context, ds *dest) (string, error) {
	if cloudflare.IsID(ds.spec.Zone) {
		return ds.spec.Zone, nil
	}
	key := "zone:" + ds.spec.API + ":" + ds.spec.Zone
	if id, ok, err := d.db.Get(ctx, key); err != nil {
		return "", err
	} else if ok {
		return id, nil
	}
	id, err := ds.client.ZoneIDByName(ctx, ds.spec.Zone)
	if err != nil {
		return "", fmt.Errorf("zone %q: %w", ds.spec.Zone, err)
	}
	if err := d.db.Set(ctx, key, id); err != nil {
		return "", err
	}
	return id, nil
}

// deliverRule brings one access-rule entry in step.
func (d *Deliverer) deliverRule(ctx context.Context, ds *dest, e store.Entry) {
	var r store.Result
	var err error
	if e.Want {
		r, err = d.createRule(ctx, ds, e)
	} else {
		r, err = d.deleteRule(ctx, ds, e)
	}
	if err != nil {
		d.fail(ctx, e, err)
		return
	}
	d.complete(ctx, r)
}

func (d *Deliverer) createRule(ctx context.Context, ds *dest, e store.Entry) (store.Result, error) {
	sc, err := d.scope(ctx, ds)
	if err != nil {
		return store.Result{}, err
	}
	cfg, err := cloudflare.TargetFor(e.Target, ds.spec.AggregateV6)
	if err != nil {
		return store.Result{}, err
	}
	res := store.Result{Dest: e.Dest, Target: e.Target, Have: true, Op: "ban"}
	if err := d.db.MarkSent(ctx, d.cfg.Owner, e.Dest, e.Target); err != nil {
		return store.Result{}, err
	}
	rule, err := ds.client.CreateAccessRule(ctx, sc, ds.spec.Mode, cfg, ds.spec.Note(e.Jail))
	if err == nil {
		res.RemoteID, res.Outcome = rule.ID, "created"
		d.log.Info("banned at Cloudflare", "target", e.Target, "jail", e.Jail, "rule", rule.ID, "dest", ds.spec.String())
		return res, nil
	}
	if !cloudflare.IsDuplicate(err) {
		return store.Result{}, err
	}
	// A rule for this address exists: ours from an attempt whose answer
	// was lost, another jail's, the shell action's, or someone else's.
	existing, err := d.findRules(ctx, ds, sc, cfg, "")
	if err != nil {
		return store.Result{}, fmt.Errorf("looking up the existing rule: %w", err)
	}
	if len(existing) == 0 {
		return store.Result{}, fmt.Errorf("create said duplicate, but no rule for %s was found", cfg.Value)
	}
	rule = existing[0]
	res.RemoteID = rule.ID
	if ds.spec.Owns(rule.Notes) {
		res.Outcome = "adopted"
		d.log.Info("adopted the existing rule", "target", e.Target, "jail", e.Jail, "rule", rule.ID)
		return res, nil
	}
	res.Foreign, res.Outcome = true, "foreign"
	res.Detail = fmt.Sprintf("existing rule %s (%s, note %q) is not ours; it is left alone", rule.ID, rule.Mode, rule.Notes)
	d.log.Warn("a rule that is not ours already covers the address; it is left alone and never deleted",
		"target", e.Target, "rule", rule.ID, "mode", rule.Mode, "notes", rule.Notes)
	return res, nil
}

// findRules lists the rules whose configuration is exactly cfg, across all
// pages; notes, when set, narrows the search on the server side.
func (d *Deliverer) findRules(ctx context.Context, ds *dest, sc cloudflare.Scope, cfg cloudflare.Configuration, notes string) ([]cloudflare.AccessRule, error) {
	rules, err := ds.client.FindAccessRules(ctx, sc, cloudflare.RuleFilter{Value: cfg.Value, Notes: notes, Match: "all"})
	if err != nil {
		return nil, err
	}
	want := canonicalTarget(cfg.Value)
	var out []cloudflare.AccessRule
	for _, r := range rules {
		if canonicalTarget(r.Configuration.Value) != want {
			continue
		}
		// Zone listings include rules inherited from the user or the
		// organisation, which this scope cannot delete.
		if sc.Kind == cloudflare.ScopeKind(ScopeZone) && r.Scope != nil && r.Scope.Type != "" && r.Scope.Type != "zone" {
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

func (d *Deliverer) deleteRule(ctx context.Context, ds *dest, e store.Entry) (store.Result, error) {
	res := store.Result{Dest: e.Dest, Target: e.Target, Have: false, Op: "unban"}
	if e.Foreign {
		res.Outcome, res.Detail = "foreign", "the rule was not ours; left alone"
		return res, nil
	}
	sc, err := d.scope(ctx, ds)
	if err != nil {
		return store.Result{}, err
	}
	ids := []string{e.RemoteID}
	if e.RemoteID == "" {
		// No stored id: a rule made before edgeban (the shell action), or
		// one whose create answer was lost. Find it by address and note.
		cfg, err := cloudflare.TargetFor(e.Target, ds.spec.AggregateV6)
		if err != nil {
			return store.Result{}, err
		}
		rules, err := d.findRules(ctx, ds, sc, cfg, notesFixedPart(ds.spec.Notes))
		if err != nil {
			return store.Result{}, fmt.Errorf("looking the rule up: %w", err)
		}
		ids = ids[:0]
		for _, r := range rules {
			if ds.spec.Owns(r.Notes) {
				ids = append(ids, r.ID)
			}
		}
		if len(ids) == 0 {
			res.Outcome = "gone"
			d.log.Info("no rule of ours for the address at Cloudflare; nothing to delete", "target", e.Target)
			return res, nil
		}
	}
	res.Outcome = "deleted"
	if err := d.db.MarkSent(ctx, d.cfg.Owner, e.Dest, e.Target); err != nil {
		return store.Result{}, err
	}
	for _, id := range ids {
		err := ds.client.DeleteAccessRule(ctx, sc, id)
		switch {
		case err == nil:
			d.log.Info("unbanned at Cloudflare", "target", e.Target, "rule", id)
		case cloudflare.IsNotFound(err):
			res.Outcome = "gone"
			d.log.Info("rule already gone at Cloudflare", "target", e.Target, "rule", id)
		default:
			return store.Result{}, err
		}
	}
	return res, nil
}

// applyRuleCapacity holds back the creates that would take a destination
// past its access-rule capacity, as its policy says, and deletes the rules
// the policy evicts. It returns the entries to deliver now.
func (d *Deliverer) applyRuleCapacity(ctx context.Context, ds *dest, es []store.Entry) []store.Entry {
	keep, victims, ok := d.checkCapacity(ctx, []*dest{ds}, es)
	if ok {
		return es
	}
	var gone []string
	for _, v := range victims {
		if _, err := d.deleteRule(ctx, ds, v); err != nil {
			d.log.Error("evicting", "target", v.Target, "err", err)
			continue
		}
		gone = append(gone, v.Target)
	}
	d.parkEvicted(ctx, ds, gone)
	out := es[:0:0]
	for _, e := range es {
		if !e.Want || keep[e.Target] {
			out = append(out, e)
		}
	}
	return out
}

// heldPrefix and evictedPrefix start the last error of bans that a
// capacity policy keeps from Cloudflare, so that status can tell them apart.
const (
	heldPrefix    = "held"
	evictedPrefix = "evicted"
)

// parkedForever keeps an evicted ban out of delivery until its jail unbans it.
var parkedForever = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// parkEvicted records evicted targets: no longer at Cloudflare, and not sent
// again while their bans last.
func (d *Deliverer) parkEvicted(ctx context.Context, ds *dest, targets []string) {
	if len(targets) == 0 {
		return
	}
	msg := fmt.Sprintf("%s: capacity %d reached, policy %s removed the oldest bans", evictedPrefix, ds.spec.Capacity, ds.spec.Policy)
	n, err := d.db.Park(ctx, ds.id, targets, msg, parkedForever)
	if err != nil {
		d.log.Error("parking evicted bans", "err", err)
	}
	for _, t := range targets {
		if err := d.db.Log(ctx, ds.id, t, "unban", "evicted", msg); err != nil {
			d.log.Error("logging", "err", err)
		}
	}
	d.stats.Parked.Add(int64(n))
	d.log.Warn("capacity reached: evicted the oldest bans to make room", "dest", ds.spec.String(), "capacity", ds.spec.Capacity, "evicted", n)
}

// checkCapacity compares the adds among es with the room left in dests
// (which share one capacity: the access rules of a destination, or the
// lists of an account). ok is true when everything fits. Otherwise, with
// keep-oldest the newest adds are parked and reported; with evict-oldest
// the oldest live bans are returned as victims to remove, and only what
// still does not fit is parked. keep holds the targets of adds that may go
// ahead.
func (d *Deliverer) checkCapacity(ctx context.Context, dests []*dest, es []store.Entry) (keep map[string]bool, victims []store.Entry, ok bool) {
	var adds []store.Entry
	for _, e := range es {
		if e.Want {
			adds = append(adds, e)
		}
	}
	if len(adds) == 0 {
		return nil, nil, true
	}
	ids := make([]int64, len(dests))
	for i, ds := range dests {
		ids[i] = ds.id
	}
	live, err := d.db.Live(ctx, ids)
	if err != nil {
		d.log.Error("counting live bans", "err", err)
		return nil, nil, true
	}
	spec := dests[0].spec
	over := live + len(adds) - spec.Capacity
	if over <= 0 {
		return nil, nil, true
	}
	if spec.Policy == PolicyAggregate {
		merged, saved := d.aggregate(ctx, dests, over)
		over -= saved
		// Adds merged into a range are no longer wanted themselves: give
		// their claims back; the range is delivered in the next round.
		rest := adds[:0:0]
		gone := map[int64][]string{}
		for _, e := range adds {
			if merged[e.Target] {
				gone[e.Dest] = append(gone[e.Dest], e.Target)
			} else {
				rest = append(rest, e)
			}
		}
		for dest, targets := range gone {
			if err := d.db.Unclaim(ctx, d.cfg.Owner, dest, targets); err != nil {
				d.log.Error("releasing merged bans", "err", err)
			}
		}
		adds = rest
	}
	if spec.Policy == PolicyEvictOldest {
		victims, err = d.db.Oldest(ctx, ids, over)
		if err != nil {
			d.log.Error("finding the oldest bans to evict", "err", err)
		}
		over -= len(victims)
	}
	sort.SliceStable(adds, func(i, j int) bool { return adds[i].Changed.Before(adds[j].Changed) })
	n := len(adds) - max(over, 0)
	keep = map[string]bool{}
	fresh := 0 // held back for the first time: reported once, not at every re-check
	for i, e := range adds {
		if i < n {
			keep[e.Target] = true
			continue
		}
		msg := fmt.Sprintf("%s: capacity %d reached (%d live, %d more wanted); policy %s holds this ban back until room frees up",
			heldPrefix, spec.Capacity, live, len(adds), spec.Policy)
		d.stats.Parked.Add(1)
		// Re-checked every minute, in case room frees up; no API call is made.
		if err := d.db.Fail(ctx, d.cfg.Owner, e.Dest, e.Target, msg, d.cfg.Now().Add(time.Minute)); err != nil {
			d.log.Error("parking", "target", e.Target, "err", err)
		}
		if strings.HasPrefix(e.LastError, heldPrefix) {
			continue
		}
		fresh++
		if err := d.db.Log(ctx, e.Dest, e.Target, "ban", "held-capacity", msg); err != nil {
			d.log.Error("logging", "err", err)
		}
	}
	if fresh > 0 {
		d.log.Warn("capacity reached: newest bans held back and reported", "dest", spec.String(), "capacity", spec.Capacity, "live", live, "held", fresh, "policy", spec.Policy)
	}
	return keep, victims, false
}

// aggregate merges the wanted addresses of dests into their covering
// ranges, biggest groups first, until over slots are saved or nothing is
// left to merge. It returns the targets merged away and the slots saved.
func (d *Deliverer) aggregate(ctx context.Context, dests []*dest, over int) (map[string]bool, int) {
	type group struct {
		ds      *dest
		prefix  string
		members []string
		exists  bool // the range is already wanted: every member saves a slot
	}
	var groups []*group
	for _, ds := range dests {
		byPrefix := map[string]*group{}
		err := d.db.Entries(ctx, ds.id, func(e store.Entry) error {
			if !e.Want || e.Foreign {
				return nil
			}
			if p := ds.spec.Cover(e.Target); p != "" {
				g := byPrefix[p]
				if g == nil {
					g = &group{ds: ds, prefix: p}
					byPrefix[p] = g
				}
				g.members = append(g.members, e.Target)
			} else if g := byPrefix[e.Target]; g != nil {
				g.exists = true
			} else {
				byPrefix[e.Target] = &group{ds: ds, prefix: e.Target, exists: true}
			}
			return nil
		})
		if err != nil {
			d.log.Error("reading bans to aggregate", "err", err)
			return nil, 0
		}
		for _, g := range byPrefix {
			if len(g.members) >= 2 || g.exists && len(g.members) > 0 {
				groups = append(groups, g)
			}
		}
	}
	sort.Slice(groups, func(i, j int) bool {
		if len(groups[i].members) != len(groups[j].members) {
			return len(groups[i].members) > len(groups[j].members)
		}
		return groups[i].prefix < groups[j].prefix
	})
	merged := map[string]bool{}
	saved, ranges := 0, 0
	for _, g := range groups {
		if saved >= over {
			break
		}
		detail := fmt.Sprintf("capacity %d reached: merged into %s by the %s policy", g.ds.spec.Capacity, g.prefix, g.ds.spec.Policy)
		n, err := d.db.Aggregate(ctx, g.ds.id, g.prefix, g.members, detail)
		if err != nil {
			d.log.Error("aggregating", "prefix", g.prefix, "err", err)
			continue
		}
		if n == 0 {
			continue
		}
		for _, m := range g.members {
			merged[m] = true
		}
		saved += n
		if !g.exists {
			saved--
		}
		ranges++
	}
	if ranges > 0 {
		d.log.Warn("capacity reached: merged banned addresses into ranges", "dest", dests[0].spec.String(),
			"capacity", dests[0].spec.Capacity, "ranges", ranges, "addresses", len(merged), "slots_saved", saved)
	}
	return merged, saved
}

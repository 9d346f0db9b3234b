package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/edgeban/edgeban/internal/cloudflare"
	"github.com/edgeban/edgeban/internal/store"
)

// DestReport is one destination's line in the status report.
type DestReport struct {
	store.DestStatus
	Spec      Spec
	Projected string // how long the pending work takes within the rate budget
}

// BudgetReport is one credential's rate budget.
type BudgetReport struct {
	Cred         string
	Used, Limit  int
	Window       time.Duration
	BlockedUntil time.Time
}

// Report is what "edgeban cloudflare status" shows.
type Report struct {
	Dests   []DestReport
	Budgets []BudgetReport
	History []store.Outcome
	Failing []store.Entry
}

// Status reports the outbox, the budgets and the history.
func Status(ctx context.Context, db *store.DB, limit int, window time.Duration, burst int) (Report, error) {
	var rep Report
	st, err := db.Status(ctx)
	if err != nil {
		return rep, err
	}
	creds := map[string]bool{}
	for _, s := range st {
		var spec Spec
		if err := json.Unmarshal(s.Dest.Spec, &spec); err != nil {
			return rep, fmt.Errorf("destination %d: %w", s.Dest.ID, err)
		}
		dr := DestReport{DestStatus: s, Spec: spec, Projected: "-"}
		if n := s.PendingBan + s.PendingUnban - s.Held; n > 0 {
			if spec.Scope == ScopeList {
				dr.Projected = "next bulk write"
			} else {
				// One request per access rule, more with lookups and retries.
				d, err := db.Budget(spec.Cred, limit, window, burst).Projected(ctx, n)
				if err != nil {
					return rep, err
				}
				dr.Projected = fmt.Sprintf("≥%s at %d req/%s", d.Round(time.Second), limit, window)
			}
		}
		if s.Held > 0 {
			if dr.Projected == "-" {
				dr.Projected = ""
			} else {
				dr.Projected += "; "
			}
			dr.Projected += fmt.Sprintf("%d held back by the %s policy", s.Held, spec.Policy)
		}
		rep.Dests = append(rep.Dests, dr)
		creds[spec.Cred] = true
	}
	for fp := range creds {
		b := db.Budget(fp, limit, window, burst)
		used, until, err := b.Usage(ctx)
		if err != nil {
			return rep, err
		}
		rep.Budgets = append(rep.Budgets, BudgetReport{Cred: fp, Used: used, Limit: limit, Window: window, BlockedUntil: until})
	}
	sort.Slice(rep.Budgets, func(i, j int) bool { return rep.Budgets[i].Cred < rep.Budgets[j].Cred })
	if rep.History, err = db.History(ctx, time.Time{}); err != nil {
		return rep, err
	}
	if rep.Failing, err = db.Failing(ctx, 20); err != nil {
		return rep, err
	}
	return rep, nil
}

// SyncReport is what a sync found.
type SyncReport struct {
	Remote  int      // our rules or items at Cloudflare
	Wanted  int      // targets we hold bans for
	Missing []string // wanted and believed live, but absent at Cloudflare
	Orphans []string // ours at Cloudflare, but nobody bans them
	Foreign int      // rules for our targets whose note is not ours (left alone)
}

// Sync compares destination dest with Cloudflare. Missing rules are marked
// so that delivery re-creates them (and delivered at once); orphans that
// carry our note are deleted. With dryRun nothing changes.
func (d *Deliverer) Sync(ctx context.Context, destID int64, dryRun bool) (SyncReport, error) {
	var rep SyncReport
	ds, err := d.dest(ctx, destID)
	if err != nil {
		return rep, err
	}
	remote := map[string]string{} // target → id, ours only
	if ds.spec.Scope == ScopeList {
		listID, err := d.listID(ctx, ds)
		if err != nil {
			return rep, err
		}
		err = ds.client.ListItems(ctx, ds.spec.Account, listID, "", func(items []cloudflare.ListItem) error {
			for _, it := range items {
				if strings.HasPrefix(it.Comment, ListCommentPrefix) {
					remote[canonicalTarget(it.IP)] = it.ID
				}
			}
			return nil
		})
		if err != nil {
			return rep, err
		}
	} else {
		sc, err := d.scope(ctx, ds)
		if err != nil {
			return rep, err
		}
		rules, err := ds.client.FindAccessRules(ctx, sc, cloudflare.RuleFilter{Notes: notesFixedPart(ds.spec.Notes), Match: "all"})
		if err != nil {
			return rep, err
		}
		for _, r := range rules {
			if ds.spec.Owns(r.Notes) && r.Mode == ds.spec.Mode {
				remote[canonicalTarget(r.Configuration.Value)] = r.ID
			}
		}
	}
	rep.Remote = len(remote)
	wanted := map[string]bool{}
	var missing []store.Entry
	err = d.db.Entries(ctx, destID, func(e store.Entry) error {
		if e.Want || e.Have {
			wanted[e.Target] = true // pending removals are delivery's work, not orphans
		}
		if e.Want {
			rep.Wanted++
		}
		if e.Foreign {
			rep.Foreign++
			return nil
		}
		if e.Want && e.Have && e.Claim == "" {
			if _, ok := remote[e.Target]; !ok {
				missing = append(missing, e)
			}
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	for _, e := range missing {
		rep.Missing = append(rep.Missing, e.Target)
	}
	for t := range remote {
		if !wanted[t] {
			rep.Orphans = append(rep.Orphans, t)
		}
	}
	sort.Strings(rep.Orphans)
	if dryRun {
		return rep, nil
	}
	for _, e := range missing {
		if _, err := d.db.Reconcile(ctx, destID, e.Target, false, "", "missing at Cloudflare; re-created"); err != nil {
			return rep, err
		}
	}
	// Orphans become entries held remotely and wanted by nobody, with their
	// ids: delivery deletes them like any unban.
	for _, t := range rep.Orphans {
		if _, err := d.db.Unban(ctx, store.Hold{Dest: destID, Target: t, Jail: "sync", IP: t}); err != nil {
			return rep, err
		}
		if err := d.db.SetRemoteIDs(ctx, destID, map[string]string{t: remote[t]}); err != nil {
			return rep, err
		}
	}
	if len(missing)+len(rep.Orphans) > 0 {
		if _, err := d.Drain(ctx, store.ClaimFilter{Dests: []int64{destID}}, d.cfg.Lease); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// Check is one step of Verify.
type Check struct {
	What string
	Err  error
}

// verifyProbe is the address Verify's write check bans for a moment: one
// of TEST-NET-1 (RFC 5737), which no client ever comes from.
const verifyProbe = "192.0.2.254"

// Verify checks a credential against a destination: the token itself, then
// a read of the destination's rules or list, which needs the permission.
// With write it also creates and deletes a rule (or list item) for a
// documentation address, which proves the edit permission.
func Verify(ctx context.Context, spec Spec, auth cloudflare.Auth, hc *http.Client, write bool) ([]Check, error) {
	c, err := cloudflare.New(cloudflare.Options{BaseURL: spec.API, Auth: auth, HTTPClient: hc, MaxRetries: 2})
	if err != nil {
		return nil, err
	}
	var checks []Check
	add := func(what string, err error) bool {
		checks = append(checks, Check{What: what, Err: err})
		return err == nil
	}
	if auth.Token != "" {
		st, err := c.VerifyToken(ctx, "")
		if err == nil && st.Status != "active" {
			err = fmt.Errorf("token status is %q", st.Status)
		}
		add("API token is valid and active", err)
	}
	switch spec.Scope {
	case ScopeList:
		lists, err := c.Lists(ctx, spec.Account)
		if !add("read IP Lists of account "+spec.Account+" (Account Filter Lists: Read)", err) || !write {
			break
		}
		listID := ""
		for _, l := range lists {
			if strings.EqualFold(l.Name, spec.List) {
				listID = l.ID
			}
		}
		if listID == "" {
			add("write list "+spec.List, fmt.Errorf("no list %q: run setup-list first", spec.List))
			break
		}
		err = writeListProbe(ctx, c, spec.Account, listID)
		add("add and delete an item of list "+spec.List+" (Account Filter Lists: Edit)", err)
	default:
		sc, err := scopeOf(ctx, c, spec)
		if err == nil {
			_, _, err = c.ListAccessRules(ctx, sc, cloudflare.RuleFilter{PerPage: 1})
		}
		if !add("read access rules at "+spec.String(), err) || !write {
			break
		}
		cfg, _ := cloudflare.TargetFor(verifyProbe, false)
		r, err := c.CreateAccessRule(ctx, sc, "challenge", cfg, "edgeban verify (temporary)")
		if cloudflare.IsDuplicate(err) {
			add("create and delete an access rule", fmt.Errorf("%s already has a rule; cannot probe without touching it", verifyProbe))
			break
		}
		if err == nil {
			err = c.DeleteAccessRule(ctx, sc, r.ID)
		}
		add("create and delete an access rule for "+verifyProbe, err)
	}
	for _, ch := range checks {
		if ch.Err != nil {
			return checks, errors.New("verification failed")
		}
	}
	return checks, nil
}

// writeListProbe adds the probe address to a list and deletes it again.
func writeListProbe(ctx context.Context, c *cloudflare.Client, account, listID string) error {
	op, err := c.AddListItems(ctx, account, listID, []cloudflare.ListItemInput{{IP: verifyProbe, Comment: ListCommentPrefix + "verify (temporary)"}})
	if err == nil {
		_, err = c.WaitBulkOperation(ctx, account, op)
	}
	if err != nil {
		return err
	}
	var ids []string
	err = c.ListItems(ctx, account, listID, verifyProbe, func(items []cloudflare.ListItem) error {
		for _, it := range items {
			if canonicalTarget(it.IP) == verifyProbe {
				ids = append(ids, it.ID)
			}
		}
		return nil
	})
	if err != nil || len(ids) == 0 {
		return fmt.Errorf("finding the probe item again: %v", err)
	}
	if op, err = c.DeleteListItems(ctx, account, listID, ids); err == nil {
		_, err = c.WaitBulkOperation(ctx, account, op)
	}
	return err
}

// scopeOf resolves a spec's access-rule scope without the store's cache.
func scopeOf(ctx context.Context, c *cloudflare.Client, spec Spec) (cloudflare.Scope, error) {
	switch spec.Scope {
	case ScopeUser:
		return cloudflare.Scope{Kind: cloudflare.ScopeKind(ScopeUser)}, nil
	case ScopeAccount:
		return cloudflare.Scope{Kind: cloudflare.ScopeKind(ScopeAccount), ID: spec.Account}, nil
	case ScopeZone:
		id := spec.Zone
		if !cloudflare.IsID(id) {
			var err error
			if id, err = c.ZoneIDByName(ctx, spec.Zone); err != nil {
				return cloudflare.Scope{}, fmt.Errorf("zone %q: %w", spec.Zone, err)
			}
		}
		return cloudflare.Scope{Kind: cloudflare.ScopeKind(ScopeZone), ID: id}, nil
	}
	return cloudflare.Scope{}, fmt.Errorf("scope %q has no access rules", spec.Scope)
}

// RemoteRule is a rule or list item at Cloudflare, for listing.
type RemoteRule struct {
	ID, Target, Mode, Note string
}

// Remote calls fn for each of our rules (or list items) at the destination,
// or for all of them with all. It returns how many it showed.
func Remote(ctx context.Context, spec Spec, auth cloudflare.Auth, hc *http.Client, all bool, fn func(RemoteRule)) (int, error) {
	c, err := cloudflare.New(cloudflare.Options{BaseURL: spec.API, Auth: auth, HTTPClient: hc})
	if err != nil {
		return 0, err
	}
	n := 0
	if spec.Scope == ScopeList {
		lists, err := c.Lists(ctx, spec.Account)
		if err != nil {
			return 0, err
		}
		for _, l := range lists {
			if !strings.EqualFold(l.Name, spec.List) {
				continue
			}
			err := c.ListItems(ctx, spec.Account, l.ID, "", func(items []cloudflare.ListItem) error {
				for _, it := range items {
					if all || strings.HasPrefix(it.Comment, ListCommentPrefix) {
						n++
						fn(RemoteRule{ID: it.ID, Target: it.IP, Mode: "list:" + l.Name, Note: it.Comment})
					}
				}
				return nil
			})
			return n, err
		}
		return 0, fmt.Errorf("account %s has no list %q", spec.Account, spec.List)
	}
	sc, err := scopeOf(ctx, c, spec)
	if err != nil {
		return 0, err
	}
	f := cloudflare.RuleFilter{Match: "all"}
	if !all {
		f.Notes = notesFixedPart(spec.Notes)
	}
	rules, err := c.FindAccessRules(ctx, sc, f)
	for _, r := range rules {
		if all || spec.Owns(r.Notes) {
			n++
			fn(RemoteRule{ID: r.ID, Target: r.Configuration.Target + ":" + r.Configuration.Value, Mode: r.Mode, Note: r.Notes})
		}
	}
	return n, err
}

// CloudflareRanges returns Cloudflare's published ranges: the refreshed copy
// in cache if there is one, else the copy edgeban ships. With update it
// downloads them first and rewrites cache.
func CloudflareRanges(ctx context.Context, cache string, update bool, hc *http.Client) ([]netip.Prefix, error) {
	if update {
		rs, err := cloudflare.FetchRanges(ctx, hc, "https://www.cloudflare.com/ips-v4", "https://www.cloudflare.com/ips-v6")
		if err != nil {
			return nil, fmt.Errorf("updating Cloudflare's ranges: %w", err)
		}
		var b strings.Builder
		for _, p := range rs {
			b.WriteString(p.String() + "\n")
		}
		if err := os.MkdirAll(filepath.Dir(cache), 0o700); err != nil {
			return nil, err
		}
		tmp := cache + ".tmp"
		if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
			return nil, err
		}
		return rs, os.Rename(tmp, cache)
	}
	data, err := os.ReadFile(cache)
	if errors.Is(err, os.ErrNotExist) {
		return cloudflare.Ranges(), nil
	}
	if err != nil {
		return nil, err
	}
	var rs []netip.Prefix
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		p, err := netip.ParsePrefix(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", cache, i+1, err)
		}
		rs = append(rs, p)
	}
	return rs, nil
}

// SetupList creates the destination's IP List if it does not exist, and in
// each zone a WAF custom rule that applies action to "ip.src in $list". An
// existing entry-point ruleset is appended to, never replaced. It returns
// what it did, step by step.
func SetupList(ctx context.Context, spec Spec, auth cloudflare.Auth, hc *http.Client, zones []string, action string) ([]string, error) {
	if spec.Scope != ScopeList {
		return nil, errors.New("setup-list needs a list destination")
	}
	switch action {
	case "block", "managed_challenge", "challenge", "js_challenge":
	default:
		return nil, fmt.Errorf("action %q: use block, managed_challenge, challenge or js_challenge", action)
	}
	c, err := cloudflare.New(cloudflare.Options{BaseURL: spec.API, Auth: auth, HTTPClient: hc})
	if err != nil {
		return nil, err
	}
	var steps []string
	lists, err := c.Lists(ctx, spec.Account)
	if err != nil {
		return steps, fmt.Errorf("reading lists: %w", err)
	}
	found := false
	for _, l := range lists {
		if strings.EqualFold(l.Name, spec.List) {
			found = true
			steps = append(steps, fmt.Sprintf("list %s exists (%s, %d items)", l.Name, l.ID, l.NumItems))
		}
	}
	if !found {
		l, err := c.CreateList(ctx, spec.Account, spec.List, "ip", "Bans from edgeban (fail2ban jails)")
		if err != nil {
			return steps, fmt.Errorf("creating list %s: %w", spec.List, err)
		}
		steps = append(steps, fmt.Sprintf("created list %s (%s)", l.Name, l.ID))
	}
	const phase = "http_request_firewall_custom"
	expr := "ip.src in $" + spec.List
	rule := cloudflare.RulesetRule{Description: "edgeban: " + spec.List, Expression: expr, Action: action, Enabled: true}
	for _, z := range zones {
		z = strings.TrimSpace(z)
		zspec := spec
		zspec.Scope, zspec.Zone = ScopeZone, z
		sc, err := scopeOf(ctx, c, zspec)
		if err != nil {
			return steps, err
		}
		rs, err := c.EntrypointRuleset(ctx, sc.ID, phase)
		switch {
		case cloudflare.IsNotFound(err):
			if _, err := c.PutEntrypointRuleset(ctx, sc.ID, phase, []cloudflare.RulesetRule{rule}); err != nil {
				return steps, fmt.Errorf("zone %s: creating the custom rules entry point: %w", z, err)
			}
			steps = append(steps, fmt.Sprintf("zone %s: created the custom rule %q (%s)", z, expr, action))
		case err != nil:
			return steps, fmt.Errorf("zone %s: reading custom rules: %w", z, err)
		default:
			exists := false
			for _, r := range rs.Rules {
				if strings.TrimSpace(r.Expression) == expr {
					exists = true
					steps = append(steps, fmt.Sprintf("zone %s: custom rule %q exists (%s, %s)", z, expr, r.ID, r.Action))
				}
			}
			if !exists {
				if _, err := c.CreateRulesetRule(ctx, sc.ID, rs.ID, rule); err != nil {
					return steps, fmt.Errorf("zone %s: adding the custom rule: %w", z, err)
				}
				steps = append(steps, fmt.Sprintf("zone %s: added the custom rule %q (%s)", z, expr, action))
			}
		}
	}
	return steps, nil
}

package delivery

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeban/edgeban/internal/cloudflare"
	"github.com/edgeban/edgeban/internal/cloudflare/cfsim"
	"github.com/edgeban/edgeban/internal/cloudflare/contract"
	"github.com/edgeban/edgeban/internal/store"
)

const (
	testToken = "test-token-0123456789abcdef0123456789"
	testEmail = "admin@example.com"
	testKey   = "0123456789abcdef0123456789abcdef01234"
)

// env is a simulator behind a contract check, a database, and an outbox.
type env struct {
	t      *testing.T
	sim    *cfsim.Server
	srv    *httptest.Server
	hc     *http.Client
	db     *store.DB
	outbox *Outbox
}

// newEnv starts cfsim on loopback. Every response it sends and every
// request the client makes is checked against Cloudflare's OpenAPI schema.
func newEnv(t *testing.T, cfg cfsim.Config) *env {
	t.Helper()
	v, err := contract.Load(contract.SchemaPath(t))
	if err != nil {
		t.Fatal(err)
	}
	v.Allow("GET", "/zones")
	report := func(err error) { t.Errorf("contract: %v", err) }
	if cfg.Tokens == nil && cfg.Email == "" {
		cfg.Tokens = []cfsim.Token{{Value: testToken}}
		cfg.Email, cfg.Key = testEmail, testKey
	}
	if cfg.Seed == 0 {
		cfg.Seed = 7
	}
	sim := cfsim.New(cfg)
	srv := httptest.NewServer(v.Handler(sim, report))
	t.Cleanup(srv.Close)
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "edgeban.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &env{
		t: t, sim: sim, srv: srv, db: db, outbox: NewOutbox(db),
		hc: &http.Client{Transport: v.Transport(http.DefaultTransport, report), Timeout: 10 * time.Second},
	}
}

func (e *env) api() string { return e.srv.URL + "/client/v4" }

func (e *env) register(spec Spec, auth cloudflare.Auth) Dest {
	e.t.Helper()
	spec.API = e.api()
	d, err := e.outbox.Register(context.Background(), spec, auth)
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

func (e *env) deliverer(owner string, mut ...func(*Config)) *Deliverer {
	e.t.Helper()
	cfg := Config{DB: e.db, Owner: owner, HTTPClient: e.hc, ListFlush: 50 * time.Millisecond, MaxRetries: 3}
	for _, m := range mut {
		m(&cfg)
	}
	d, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

func (e *env) drain(d *Deliverer) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := d.Drain(ctx, store.ClaimFilter{}, time.Minute); err != nil {
		e.t.Fatal(err)
	}
}

// rules returns "value note" for every rule of a scope, sorted.
func (e *env) rules(scope string) []string {
	var out []string
	for _, r := range e.sim.AccessRules(scope) {
		out = append(out, r.Value+" "+r.Notes)
	}
	sort.Strings(out)
	return out
}

// createByHand makes a rule as a person would in the dashboard.
func (e *env) createByHand(scope cloudflare.Scope, ip, notes string) {
	e.t.Helper()
	c, err := cloudflare.New(cloudflare.Options{BaseURL: e.api(), Auth: cloudflare.Auth{Token: testToken}, HTTPClient: e.hc})
	if err != nil {
		e.t.Fatal(err)
	}
	cfg, _ := cloudflare.TargetFor(ip, false)
	if _, err := c.CreateAccessRule(context.Background(), scope, "whitelist", cfg, notes); err != nil {
		e.t.Fatal(err)
	}
}

func TestAccessRuleScopes(t *testing.T) {
	tests := []struct {
		name  string
		spec  Spec
		auth  cloudflare.Auth
		scope string
	}{
		{"user scope with the global key (seed)", Spec{Scope: ScopeUser}, cloudflare.Auth{Email: testEmail, Key: testKey}, cfsim.UserScope},
		{"account scope with a token", Spec{Scope: ScopeAccount, Account: cfsim.DefaultAccountID, Notes: "edgeban {jail}"}, cloudflare.Auth{Token: testToken}, cfsim.AccountScope(cfsim.DefaultAccountID)},
		{"zone by id", Spec{Scope: ScopeZone, Zone: cfsim.DefaultZoneID, Mode: "managed_challenge"}, cloudflare.Auth{Token: testToken}, cfsim.ZoneScope(cfsim.DefaultZoneID)},
		{"zone by name", Spec{Scope: ScopeZone, Zone: cfsim.DefaultZoneName}, cloudflare.Auth{Token: testToken}, cfsim.ZoneScope(cfsim.DefaultZoneID)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, cfsim.Config{})
			d := e.register(tt.spec, tt.auth)
			note := d.Spec.Note("sshd")
			if _, err := e.outbox.Ban(ctx, d, "sshd", "192.0.2.1", "2001:db8::5"); err != nil {
				t.Fatal(err)
			}
			e.drain(e.deliverer("t"))
			want := []string{"192.0.2.1 " + note, "2001:db8::5 " + note}
			if got := e.rules(tt.scope); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("after ban: %v, want %v", got, want)
			}
			for _, r := range e.sim.AccessRules(tt.scope) {
				if r.Mode != d.Spec.Mode {
					t.Errorf("mode %s, want %s", r.Mode, d.Spec.Mode)
				}
			}
			if _, err := e.outbox.Unban(ctx, d, "sshd", "192.0.2.1", "2001:db8::5"); err != nil {
				t.Fatal(err)
			}
			e.drain(e.deliverer("t"))
			if got := e.rules(tt.scope); len(got) != 0 {
				t.Fatalf("after unban: %v", got)
			}
		})
	}
}

func TestForeignRuleIsLeftAlone(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, cfsim.Config{})
	e.createByHand(cloudflare.Scope{Kind: "user"}, "192.0.2.7", "office VPN, do not touch")
	d := e.register(Spec{Scope: ScopeUser}, cloudflare.Auth{Email: testEmail, Key: testKey})
	e.outbox.Ban(ctx, d, "sshd", "192.0.2.7", "192.0.2.8")
	e.drain(e.deliverer("t"))
	want := []string{"192.0.2.7 office VPN, do not touch", "192.0.2.8 Banned by Fail2Ban"}
	if got := e.rules(cfsim.UserScope); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after ban: %v", got)
	}
	entry, _ := e.db.Entry(ctx, d.ID, "192.0.2.7")
	if !entry.Foreign {
		t.Errorf("the hand-made rule was not recorded as foreign: %+v", entry)
	}
	e.outbox.Unban(ctx, d, "sshd", "192.0.2.7", "192.0.2.8")
	e.drain(e.deliverer("t"))
	want = []string{"192.0.2.7 office VPN, do not touch"}
	if got := e.rules(cfsim.UserScope); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after unban: %v", got)
	}
}

func TestUnbanWithoutStoredID(t *testing.T) {
	// Rules the seed's shell action made before edgeban: fail2ban unbans
	// them through edgeban, which finds them by address and note across
	// pages, and deletes only ours.
	ctx := context.Background()
	e := newEnv(t, cfsim.Config{})
	c, _ := cloudflare.New(cloudflare.Options{BaseURL: e.api(), Auth: cloudflare.Auth{Email: testEmail, Key: testKey}, HTTPClient: e.hc})
	user := cloudflare.Scope{Kind: "user"}
	for i := range 130 { // more than one page of 100
		cfg, _ := cloudflare.TargetFor(fmt.Sprintf("198.51.100.%d", i), false)
		if _, err := c.CreateAccessRule(ctx, user, "block", cfg, "Banned by Fail2Ban"); err != nil {
			t.Fatal(err)
		}
	}
	cfg, _ := cloudflare.TargetFor("203.0.113.9", false)
	c.CreateAccessRule(ctx, user, "block", cfg, "someone else's")

	d := e.register(Spec{Scope: ScopeUser}, cloudflare.Auth{Email: testEmail, Key: testKey})
	e.outbox.Unban(ctx, d, "sshd", "198.51.100.129", "203.0.113.9", "192.0.2.200")
	e.drain(e.deliverer("t"))
	got := e.rules(cfsim.UserScope)
	if len(got) != 130 {
		t.Fatalf("%d rules left, want 130", len(got))
	}
	for _, r := range got {
		if strings.HasPrefix(r, "198.51.100.129 ") {
			t.Error("our old rule was not deleted")
		}
	}
	if !strings.Contains(fmt.Sprint(got), "203.0.113.9 someone else's") {
		t.Error("a rule that is not ours was deleted")
	}
}

func TestSharedRuleAcrossJails(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, cfsim.Config{})
	d := e.register(Spec{Scope: ScopeZone, Zone: cfsim.DefaultZoneID}, cloudflare.Auth{Token: testToken})
	e.outbox.Ban(ctx, d, "sshd", "192.0.2.1")
	e.drain(e.deliverer("t"))
	e.outbox.Ban(ctx, d, "nginx", "192.0.2.1")
	e.drain(e.deliverer("t"))
	e.outbox.Unban(ctx, d, "sshd", "192.0.2.1")
	e.drain(e.deliverer("t"))
	if got := e.rules(cfsim.ZoneScope(cfsim.DefaultZoneID)); len(got) != 1 {
		t.Fatalf("after the first jail's unban: %v, want the rule kept", got)
	}
	e.outbox.Unban(ctx, d, "nginx", "192.0.2.1")
	e.drain(e.deliverer("t"))
	if got := e.rules(cfsim.ZoneScope(cfsim.DefaultZoneID)); len(got) != 0 {
		t.Fatalf("after the last jail's unban: %v", got)
	}
	st := e.sim.Stats()
	if n := st.ByRoute["POST /zones/{zone_id}/firewall/access_rules/rules"]; n != 1 {
		t.Errorf("%d creates, want 1", n)
	}
}

func TestLostAnswerIsAdopted(t *testing.T) {
	// Every create is applied and then answered 5xx: the retry gets 10009
	// and adopts the rule, so there is exactly one rule and its id is ours.
	ctx := context.Background()
	e := newEnv(t, cfsim.Config{Faults: cfsim.Faults{Applied5xx: 1}})
	d := e.register(Spec{Scope: ScopeAccount, Account: cfsim.DefaultAccountID}, cloudflare.Auth{Token: testToken})
	e.outbox.Ban(ctx, d, "sshd", "192.0.2.1")
	e.drain(e.deliverer("t", func(c *Config) { c.MaxRetries = 2 }))
	rules := e.sim.AccessRules(cfsim.AccountScope(cfsim.DefaultAccountID))
	if len(rules) != 1 {
		t.Fatalf("%d rules", len(rules))
	}
	entry, _ := e.db.Entry(ctx, d.ID, "192.0.2.1")
	if !entry.Have || entry.RemoteID != rules[0].ID || entry.Foreign {
		t.Errorf("entry %+v, want have with id %s", entry, rules[0].ID)
	}
}

// TestUnbanAfterUnansweredWrite: a ban whose write reached Cloudflare
// but whose outcome was never recorded, and which is then unbanned before
// its next attempt, is removed at Cloudflare, not left there for ever.
// The create of an access rule is applied and answered 5xx; the write of
// a list is accepted, and the worker stops before the operation is done
// (as when it is killed: the claim is released, nothing recorded).
func TestUnbanAfterUnansweredWrite(t *testing.T) {
	tests := []struct {
		name  string
		list  bool
		cfg   cfsim.Config
		write string // the request after whose answer the worker stops
	}{
		{"access rule, create answered 5xx after it was applied", false, cfsim.Config{Faults: cfsim.Faults{Applied5xx: 1}}, ""},
		{"list, the worker stops once the write is accepted", true, cfsim.Config{}, "POST /items"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, tt.cfg)
			auth := cloudflare.Auth{Token: testToken}
			spec := Spec{Scope: ScopeAccount, Account: cfsim.DefaultAccountID}
			if tt.list {
				spec = Spec{Scope: ScopeList, Account: cfsim.DefaultAccountID, List: "edgeban", API: e.api(), Cred: auth.Fingerprint()}
				spec, _ = spec.Normalize()
				if steps, err := SetupList(ctx, spec, auth, e.hc, []string{cfsim.DefaultZoneName}, "block"); err != nil {
					t.Fatal(steps, err)
				}
			}
			d := e.register(spec, auth)
			ips := []string{"192.0.2.1", "192.0.2.2"}
			if _, err := e.outbox.Ban(ctx, d, "sshd", ips...); err != nil {
				t.Fatal(err)
			}
			// One attempt, cut short after the write: the failed entry's
			// retry is not due before the drain's end.
			dctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			hc := e.hc
			if tt.write != "" {
				method, suffix, _ := strings.Cut(tt.write, " ")
				hc = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
					res, err := e.hc.Transport.RoundTrip(r)
					if err == nil && res.StatusCode == http.StatusOK && r.Method == method && strings.HasSuffix(r.URL.Path, suffix) {
						cancel()
					}
					return res, err
				})}
			}
			w := e.deliverer("worker:1", func(c *Config) { c.MaxRetries = -1; c.HTTPClient = hc })
			if _, err := w.Drain(dctx, store.ClaimFilter{}, time.Minute); err != nil {
				t.Fatal(err)
			}
			held := func() int {
				if tt.list {
					return len(e.sim.ListItems("edgeban"))
				}
				return len(e.sim.AccessRules(cfsim.AccountScope(cfsim.DefaultAccountID)))
			}
			// The list's write completes after the worker stopped.
			for i := 0; held() != len(ips); i++ {
				if i == 50 {
					t.Fatalf("%d held at Cloudflare after the unanswered write, want %d", held(), len(ips))
				}
				time.Sleep(20 * time.Millisecond)
			}
			for _, ip := range ips {
				if en, _ := e.db.Entry(ctx, d.ID, ip); en.Have || !en.Sent {
					t.Fatalf("entry %+v: want have false and sent", en)
				}
			}
			if _, err := e.outbox.Unban(ctx, d, "sshd", ips...); err != nil {
				t.Fatal(err)
			}
			e.drain(e.deliverer("worker:2", func(c *Config) { c.MaxRetries = 5 }))
			if n := held(); n != 0 {
				t.Errorf("%d left at Cloudflare after the unbans", n)
			}
			for _, ip := range ips {
				if en, _ := e.db.Entry(ctx, d.ID, ip); en.Pending() || en.Have || en.Sent {
					t.Errorf("entry %+v after the unbans", en)
				}
			}
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestListMode(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, cfsim.Config{})
	auth := cloudflare.Auth{Token: testToken}
	spec := Spec{Scope: ScopeList, Account: cfsim.DefaultAccountID, List: "edgeban", API: e.api()}
	spec.Cred = auth.Fingerprint()
	spec, _ = spec.Normalize()
	steps, err := SetupList(ctx, spec, auth, e.hc, []string{cfsim.DefaultZoneName}, "block")
	if err != nil {
		t.Fatal(steps, err)
	}
	// Running it again changes nothing.
	if steps, err := SetupList(ctx, spec, auth, e.hc, []string{cfsim.DefaultZoneName}, "block"); err != nil || !strings.Contains(strings.Join(steps, "\n"), "exists") {
		t.Fatal(steps, err)
	}
	d := e.register(spec, auth)
	var ips []string
	for i := range 300 {
		ips = append(ips, fmt.Sprintf("10.%d.%d.%d", i/65536, i/256%256, i%256))
	}
	ips = append(ips, "2001:db8:1:2::77")
	if _, err := e.outbox.Ban(ctx, d, "sshd", ips...); err != nil {
		t.Fatal(err)
	}
	e.drain(e.deliverer("t"))
	items := e.sim.ListItems("edgeban")
	if len(items) != 301 {
		t.Fatalf("%d items, want 301", len(items))
	}
	for _, it := range items {
		if !strings.HasPrefix(it.Comment, "edgeban jail=sshd banned=") {
			t.Errorf("comment %q", it.Comment)
		}
	}
	before := e.sim.Stats().Requests
	if _, err := e.outbox.Unban(ctx, d, "sshd", ips[:200]...); err != nil {
		t.Fatal(err)
	}
	e.drain(e.deliverer("t"))
	if n := len(e.sim.ListItems("edgeban")); n != 101 {
		t.Fatalf("%d items after unban, want 101", n)
	}
	// One listing page, one bulk delete, a few polls: not one request per IP.
	if n := e.sim.Stats().Requests - before; n > 10 {
		t.Errorf("unbanning 200 items took %d requests", n)
	}
}

func TestCapacityPolicies(t *testing.T) {
	tests := []struct {
		policy   string
		wantLive []string
		wantHeld int
	}{
		{PolicyKeepOldest, []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"}, 2},
		{PolicyEvictOldest, []string{"192.0.2.3", "192.0.2.4", "192.0.2.5"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.policy, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, cfsim.Config{})
			d := e.register(Spec{Scope: ScopeAccount, Account: cfsim.DefaultAccountID, Capacity: 3, Policy: tt.policy}, cloudflare.Auth{Token: testToken})
			for i := 1; i <= 5; i++ {
				e.outbox.Ban(ctx, d, "sshd", fmt.Sprintf("192.0.2.%d", i))
				e.drain(e.deliverer("t"))
			}
			var live []string
			for _, r := range e.sim.AccessRules(cfsim.AccountScope(cfsim.DefaultAccountID)) {
				live = append(live, r.Value)
			}
			sort.Strings(live)
			if fmt.Sprint(live) != fmt.Sprint(tt.wantLive) {
				t.Errorf("live %v, want %v", live, tt.wantLive)
			}
			failing, _ := e.db.Failing(ctx, 10)
			if len(failing) != tt.wantHeld {
				t.Errorf("%d reported as held back, want %d: %+v", len(failing), tt.wantHeld, failing)
			}
			for _, f := range failing {
				if !strings.Contains(f.LastError, "capacity") {
					t.Errorf("reason %q does not say capacity", f.LastError)
				}
			}
		})
	}
}

func TestCapacityAggregate(t *testing.T) {
	tests := []struct {
		name     string
		spec     Spec
		list     bool
		wantLive []string
	}{
		// Merging the /24 frees enough: the IPv6 address keeps its own rule.
		{"access rules", Spec{Scope: ScopeAccount, Account: cfsim.DefaultAccountID, Capacity: 3, Policy: PolicyAggregate}, false,
			[]string{"192.0.2.0/24", "198.51.100.1", "2001:db8::1"}},
		{"list", Spec{Scope: ScopeList, Account: cfsim.DefaultAccountID, List: "edgeban", Capacity: 3, Policy: PolicyAggregate}, true,
			[]string{"192.0.2.0/24", "198.51.100.1", "2001:db8::/64"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, cfsim.Config{})
			auth := cloudflare.Auth{Token: testToken}
			if tt.list {
				spec := tt.spec
				spec.API, spec.Cred = e.api(), auth.Fingerprint()
				spec, _ = spec.Normalize()
				if _, err := SetupList(ctx, spec, auth, e.hc, []string{cfsim.DefaultZoneName}, "block"); err != nil {
					t.Fatal(err)
				}
			}
			d := e.register(tt.spec, auth)
			live := func() []string {
				var out []string
				if tt.list {
					for _, it := range e.sim.ListItems("edgeban") {
						out = append(out, it.Value)
					}
				} else {
					for _, r := range e.sim.AccessRules(cfsim.AccountScope(cfsim.DefaultAccountID)) {
						out = append(out, r.Value)
					}
				}
				sort.Strings(out)
				return out
			}
			for _, ip := range []string{"192.0.2.1", "192.0.2.2", "198.51.100.1", "192.0.2.3", "2001:db8::1"} {
				e.outbox.Ban(ctx, d, "sshd", ip)
				e.drain(e.deliverer("t"))
			}
			// A later ban inside an aggregated range joins it.
			e.outbox.Ban(ctx, d, "nginx", "192.0.2.9")
			e.drain(e.deliverer("t"))
			if got := live(); fmt.Sprint(got) != fmt.Sprint(tt.wantLive) {
				t.Fatalf("live %v, want %v", got, tt.wantLive)
			}
			rep, _ := Status(ctx, e.db, 1150, 5*time.Minute, 50)
			if rep.Dests[0].PendingBan+rep.Dests[0].PendingUnban != 0 {
				t.Errorf("pending after aggregation: %+v", rep.Dests[0])
			}
			hist := fmt.Sprint(rep.History)
			if !strings.Contains(hist, "aggregated") {
				t.Errorf("the aggregation is not reported in the history: %s", hist)
			}
			// The range stays while any covered address is banned.
			e.outbox.Unban(ctx, d, "sshd", "192.0.2.1", "192.0.2.2", "192.0.2.3")
			e.drain(e.deliverer("t"))
			if got := live(); !strings.Contains(fmt.Sprint(got), "192.0.2.0/24") {
				t.Fatalf("range removed while 192.0.2.9 is banned: %v", got)
			}
			e.outbox.Unban(ctx, d, "nginx", "192.0.2.9")
			e.drain(e.deliverer("t"))
			if got := live(); strings.Contains(fmt.Sprint(got), "192.0.2.0/24") {
				t.Fatalf("range kept after its last address was unbanned: %v", got)
			}
		})
	}
}

func TestRateLimitIsShared(t *testing.T) {
	// Two deliverers (two processes' worth) on one credential stay together
	// under the budget: the simulator never has to say 429.
	ctx := context.Background()
	e := newEnv(t, cfsim.Config{RateLimit: 40, RateWindow: 2 * time.Second, Lockout: 10 * time.Second})
	d := e.register(Spec{Scope: ScopeAccount, Account: cfsim.DefaultAccountID}, cloudflare.Auth{Token: testToken})
	var ips []string
	for i := range 60 {
		ips = append(ips, fmt.Sprintf("192.0.2.%d", i))
	}
	e.outbox.Ban(ctx, d, "sshd", ips...)
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dl := e.deliverer(fmt.Sprintf("w%d", w), func(c *Config) { c.RateLimit, c.RateWindow = 35, 2*time.Second })
			e.drain(dl)
		}()
	}
	wg.Wait()
	if n := len(e.sim.AccessRules(cfsim.AccountScope(cfsim.DefaultAccountID))); n != 60 {
		t.Errorf("%d rules, want 60", n)
	}
	if st := e.sim.Stats(); st.RateLimited != 0 {
		t.Errorf("the simulator sent %d 429s", st.RateLimited)
	}
}

func TestSync(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, cfsim.Config{})
	d := e.register(Spec{Scope: ScopeUser}, cloudflare.Auth{Email: testEmail, Key: testKey})
	e.outbox.Ban(ctx, d, "sshd", "192.0.2.1", "192.0.2.2")
	e.drain(e.deliverer("t"))
	// Drift: someone deletes one of our rules, and an old rule of ours (no
	// hold) and a foreign one exist.
	c, _ := cloudflare.New(cloudflare.Options{BaseURL: e.api(), Auth: cloudflare.Auth{Email: testEmail, Key: testKey}, HTTPClient: e.hc})
	for _, r := range e.sim.AccessRules(cfsim.UserScope) {
		if r.Value == "192.0.2.1" {
			c.DeleteAccessRule(ctx, cloudflare.Scope{Kind: "user"}, r.ID)
		}
	}
	cfg, _ := cloudflare.TargetFor("198.51.100.1", false)
	c.CreateAccessRule(ctx, cloudflare.Scope{Kind: "user"}, "block", cfg, "Banned by Fail2Ban")
	cfg, _ = cloudflare.TargetFor("198.51.100.2", false)
	c.CreateAccessRule(ctx, cloudflare.Scope{Kind: "user"}, "block", cfg, "not ours")

	dl := e.deliverer("sync")
	rep, err := dl.Sync(ctx, d.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(rep.Missing, rep.Orphans) != "[192.0.2.1] [198.51.100.1]" {
		t.Fatalf("dry run: missing %v orphans %v", rep.Missing, rep.Orphans)
	}
	if n := len(e.sim.AccessRules(cfsim.UserScope)); n != 3 {
		t.Fatalf("dry run changed something: %d rules", n)
	}
	if _, err := dl.Sync(ctx, d.ID, false); err != nil {
		t.Fatal(err)
	}
	want := []string{"192.0.2.1 Banned by Fail2Ban", "192.0.2.2 Banned by Fail2Ban", "198.51.100.2 not ours"}
	if got := e.rules(cfsim.UserScope); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after sync: %v, want %v", got, want)
	}
}

func TestVerify(t *testing.T) {
	ctx := context.Background()
	const readOnly = "read-only-token-0123456789abcdef"
	e := newEnv(t, cfsim.Config{Tokens: []cfsim.Token{{Value: testToken}, {Value: readOnly, ReadOnly: true}}})
	zone := Spec{API: e.api(), Scope: ScopeZone, Zone: cfsim.DefaultZoneName, Cred: "x"}
	zone, _ = zone.Normalize()
	list := Spec{API: e.api(), Scope: ScopeList, Account: cfsim.DefaultAccountID, List: "edgeban", Cred: "x"}
	list, _ = list.Normalize()
	if _, err := SetupList(ctx, list, cloudflare.Auth{Token: testToken}, e.hc, []string{cfsim.DefaultZoneName}, "block"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		spec   Spec
		token  string
		write  bool
		wantOK bool
	}{
		{"good token reads a zone", zone, testToken, false, true},
		{"good token writes a zone", zone, testToken, true, true},
		{"good token writes the list", list, testToken, true, true},
		{"bad token", zone, "wrong-token-0123456789abcdef", false, false},
		{"read-only token reads", zone, readOnly, false, true},
		{"read-only token cannot write rules", zone, readOnly, true, false},
		{"read-only token cannot write the list", list, readOnly, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checks, err := Verify(ctx, tt.spec, cloudflare.Auth{Token: tt.token}, e.hc, tt.write)
			if (err == nil) != tt.wantOK {
				t.Errorf("err = %v, checks %+v", err, checks)
			}
		})
	}
	if n := len(e.sim.AccessRules(cfsim.ZoneScope(cfsim.DefaultZoneID))) + len(e.sim.ListItems("edgeban")); n != 0 {
		t.Errorf("verify left %d rules or items behind", n)
	}
}

func TestRegisterKeepsBansAcrossTokenRotation(t *testing.T) {
	// A rotated token or a changed policy is the same destination: the bans
	// already held stay with it, and the new settings apply.
	ctx := context.Background()
	const newToken = "rotated-token-0123456789abcdef"
	e := newEnv(t, cfsim.Config{Tokens: []cfsim.Token{{Value: testToken}, {Value: newToken}}})
	spec := Spec{Scope: ScopeAccount, Account: cfsim.DefaultAccountID}
	d1 := e.register(spec, cloudflare.Auth{Token: testToken})
	e.outbox.Ban(ctx, d1, "sshd", "192.0.2.1")
	dl := e.deliverer("t")
	e.drain(dl)
	spec.Policy = PolicyEvictOldest
	d2 := e.register(spec, cloudflare.Auth{Token: newToken})
	if d1.ID != d2.ID {
		t.Fatalf("a new destination %d for the same scope (was %d)", d2.ID, d1.ID)
	}
	e.outbox.Unban(ctx, d2, "sshd", "192.0.2.1")
	e.drain(dl) // the same deliverer picks the new spec up
	if n := len(e.sim.AccessRules(cfsim.AccountScope(cfsim.DefaultAccountID))); n != 0 {
		t.Fatalf("%d rules left after the unban", n)
	}
	ds, err := dl.dest(ctx, d2.ID)
	if err != nil || ds.spec.Policy != PolicyEvictOldest || ds.spec.Cred != (cloudflare.Auth{Token: newToken}).Fingerprint() {
		t.Errorf("deliverer still on the old spec: %+v %v", ds.spec, err)
	}
}

package cfsim

import (
	"cmp"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// state is everything the API can change. Reset replaces it whole.
type state struct {
	seq uint64

	user       *ruleScope
	account    *ruleScope
	zones      map[string]*ruleScope
	ruleIDs    map[string]bool
	ruleCount  int
	lists      map[string]*list
	totalItems int
	ops        map[string]*bulkOp
	opOrder    []*bulkOp
	pending    *bulkOp

	listWrites  window // item-modifying requests
	listChanges window // item modifications

	rulesets    map[string]*ruleset // by id
	entrypoints map[string]*ruleset // by zone id and phase
}

func newState(cfg *Config) *state {
	email := cfg.Email
	if email == "" {
		email = defaultUserEmail
	}
	st := &state{
		user:        newRuleScope(scopeUser, defaultUserID, email),
		account:     newRuleScope(scopeAccount, cfg.AccountID, ""),
		zones:       make(map[string]*ruleScope, len(cfg.Zones)),
		ruleIDs:     make(map[string]bool),
		lists:       make(map[string]*list),
		ops:         make(map[string]*bulkOp),
		rulesets:    make(map[string]*ruleset),
		entrypoints: make(map[string]*ruleset),
	}
	for id, name := range cfg.Zones {
		st.zones[id] = newRuleScope(scopeZone, id, name)
	}
	return st
}

func (st *state) listByName(name string) *list {
	for _, l := range st.lists {
		if l.name == name {
			return l
		}
	}
	return nil
}

// references counts the ruleset rules whose expression names the list.
func (st *state) references(name string) int {
	n := 0
	for _, rs := range st.rulesets {
		for _, r := range rs.rules {
			for _, m := range listRef.FindAllStringSubmatch(r.expression, -1) {
				if m[1] == name {
					n++
					break
				}
			}
		}
	}
	return n
}

// listQuota charges one item-modifying request of changes items against the
// lists write quotas (API-NOTES §2.6), or answers 429 with code 10040.
func (st *state) listQuota(cfg *Config, now time.Time, changes int) *response {
	w := cfg.ListQuotaWindow
	st.listWrites.prune(now, w)
	st.listChanges.prune(now, w)
	var wait time.Duration
	if cfg.ListWriteRequests > 0 && st.listWrites.sum+1 > cfg.ListWriteRequests {
		wait = st.listWrites.wait(now, w, cfg.ListWriteRequests, 1)
	}
	if cfg.ListItemChanges > 0 && st.listChanges.sum+changes > cfg.ListItemChanges {
		wait = max(wait, st.listChanges.wait(now, w, cfg.ListItemChanges, changes))
	}
	if wait > 0 {
		res := fail(http.StatusTooManyRequests, codeListRateLimit,
			"you have been ratelimited please wait and try again: lists write quota spent")
		res.header = http.Header{"Retry-After": {strconv.Itoa(max(1, ceilSeconds(wait)))}}
		return res
	}
	st.listWrites.add(now, 1)
	st.listChanges.add(now, changes)
	return nil
}

// Stats counts what the simulator did since it started or was reset. Only
// API requests (under /client/v4) count.
type Stats struct {
	// Requests is every API request, answered or dropped.
	Requests int64 `json:"requests"`
	// ByRoute counts requests by method and path template, such as
	// "POST /zones/{zone_id}/firewall/access_rules/rules"; requests that
	// match no route count as "METHOD (unknown)".
	ByRoute map[string]int64 `json:"by_route"`
	// ByStatus counts answered requests by HTTP status.
	ByStatus map[int]int64 `json:"by_status"`
	// RateLimited counts 429 responses of every cause: lockouts, injected
	// bursts and lists conflicts.
	RateLimited int64 `json:"rate_limited"`
	// Lockouts counts the times a credential went over the rate limit.
	Lockouts int64 `json:"lockouts"`
	// Injected429 counts the 429s of Faults.Burst429Every.
	Injected429 int64 `json:"injected_429"`
	// Injected5xx counts injected 5xx responses of both kinds; Applied5xx
	// counts those whose write had been applied.
	Injected5xx int64 `json:"injected_5xx"`
	Applied5xx  int64 `json:"applied_5xx"`
	// Drops counts connections closed without a response.
	Drops int64 `json:"drops"`
	// Malformed counts responses whose JSON body was cut.
	Malformed int64 `json:"malformed"`
}

func newStats() Stats {
	return Stats{ByRoute: make(map[string]int64), ByStatus: make(map[int]int64)}
}

// Stats returns a copy of the statistics.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.ByRoute = maps.Clone(s.stats.ByRoute)
	st.ByStatus = maps.Clone(s.stats.ByStatus)
	return st
}

// AccessRule is an IP Access rule in a Snapshot.
type AccessRule struct {
	ID         string    `json:"id"`
	Scope      string    `json:"scope"` // "user", "account:<id>" or "zone:<id>"
	Mode       string    `json:"mode"`
	Target     string    `json:"target"`
	Value      string    `json:"value"`
	Notes      string    `json:"notes"`
	CreatedOn  time.Time `json:"created_on"`
	ModifiedOn time.Time `json:"modified_on"`
}

// List is a custom list in a Snapshot, with its items in API order.
type List struct {
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	Kind        string     `json:"kind"`
	Description string     `json:"description"`
	CreatedOn   time.Time  `json:"created_on"`
	ModifiedOn  time.Time  `json:"modified_on"`
	Items       []ListItem `json:"items"`
}

// ListItem is a list item in a Snapshot. Value is the canonical IP or CIDR,
// the ASN, the hostname or the redirect's source URL.
type ListItem struct {
	ID         string    `json:"id"`
	Value      string    `json:"value"`
	Comment    string    `json:"comment,omitempty"`
	CreatedOn  time.Time `json:"created_on"`
	ModifiedOn time.Time `json:"modified_on"`
}

// BulkOperation is a list bulk operation in a Snapshot, in submission order.
type BulkOperation struct {
	ID     string `json:"id"`
	ListID string `json:"list_id"`
	// Action is "append" (POST), "replace" (PUT) or "delete" (DELETE).
	Action string `json:"action"`
	// Status is pending, running, completed or failed.
	Status      string    `json:"status"`
	Error       string    `json:"error,omitempty"`
	CreatedOn   time.Time `json:"created_on"`
	CompletedOn time.Time `json:"completed_on,omitzero"`
}

// Ruleset is a zone entry point ruleset in a Snapshot.
type Ruleset struct {
	ID      string        `json:"id"`
	ZoneID  string        `json:"zone_id"`
	Phase   string        `json:"phase"`
	Name    string        `json:"name"`
	Version int           `json:"version"`
	Rules   []RulesetRule `json:"rules"`
}

// RulesetRule is a rule of a Ruleset.
type RulesetRule struct {
	ID          string `json:"id"`
	Ref         string `json:"ref"`
	Action      string `json:"action"`
	Expression  string `json:"expression"`
	Description string `json:"description"`
	Enabled     bool   `json:"enabled"`
}

// State is a copy of everything the API has stored.
type State struct {
	// AccessRules maps a scope ("user", "account:<id>", "zone:<id>") to its
	// rules, oldest first. Every configured scope has an entry.
	AccessRules    map[string][]AccessRule `json:"access_rules"`
	Lists          []List                  `json:"lists"`
	BulkOperations []BulkOperation         `json:"bulk_operations"`
	Rulesets       []Ruleset               `json:"rulesets"`
}

// UserScope is the State.AccessRules key of user-level rules.
const UserScope = "user"

// AccountScope returns the State.AccessRules key of an account's rules.
func AccountScope(accountID string) string { return scopeAccount + ":" + accountID }

// ZoneScope returns the State.AccessRules key of a zone's rules.
func ZoneScope(zoneID string) string { return scopeZone + ":" + zoneID }

// Snapshot returns a copy of the stored state, with due bulk operations
// completed first.
func (s *Server) Snapshot() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	s.tickLocked(now)
	st := s.st
	out := State{AccessRules: make(map[string][]AccessRule), Lists: []List{}, BulkOperations: []BulkOperation{}, Rulesets: []Ruleset{}}
	scopes := []*ruleScope{st.user, st.account}
	for _, sc := range st.zones {
		scopes = append(scopes, sc)
	}
	for _, sc := range scopes {
		out.AccessRules[sc.stateKey()] = accessRules(sc)
	}
	ls := slices.Collect(maps.Values(st.lists))
	slices.SortFunc(ls, func(a, b *list) int { return cmp.Compare(a.seq, b.seq) })
	for _, l := range ls {
		out.Lists = append(out.Lists, listState(l))
	}
	for _, op := range st.opOrder {
		out.BulkOperations = append(out.BulkOperations, BulkOperation{
			ID: op.id, ListID: op.listID, Action: op.action, Status: op.statusAt(now, s.cfg.BulkDelay),
			Error: op.err, CreatedOn: op.created, CompletedOn: op.completed,
		})
	}
	rss := slices.Collect(maps.Values(st.rulesets))
	slices.SortFunc(rss, func(a, b *ruleset) int {
		if c := cmp.Compare(a.zoneID, b.zoneID); c != 0 {
			return c
		}
		return cmp.Compare(a.phase, b.phase)
	})
	for _, rs := range rss {
		r := Ruleset{ID: rs.id, ZoneID: rs.zoneID, Phase: rs.phase, Name: rs.name, Version: rs.version, Rules: []RulesetRule{}}
		for _, rr := range rs.rules {
			r.Rules = append(r.Rules, RulesetRule{
				ID: rr.id, Ref: rr.ref, Action: rr.action, Expression: rr.expression,
				Description: rr.description, Enabled: rr.enabled,
			})
		}
		out.Rulesets = append(out.Rulesets, r)
	}
	return out
}

// AccessRules returns the rules of one scope (UserScope, AccountScope(id)
// or ZoneScope(id)), oldest first, or nil for an unknown scope. It is
// cheaper than Snapshot when a test needs only that.
func (s *Server) AccessRules(scope string) []AccessRule {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sc := range append([]*ruleScope{s.st.user, s.st.account}, slices.Collect(maps.Values(s.st.zones))...) {
		if sc.stateKey() == scope {
			return accessRules(sc)
		}
	}
	return nil
}

// ListItems returns the items of the list named name in API order, or nil
// when there is no such list, with due bulk operations completed first.
func (s *Server) ListItems(name string) []ListItem {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tickLocked(s.cfg.Now())
	l := s.st.listByName(name)
	if l == nil {
		return nil
	}
	return listState(l).Items
}

func accessRules(sc *ruleScope) []AccessRule {
	rules := slices.Collect(maps.Values(sc.rules))
	slices.SortFunc(rules, func(a, b *rule) int { return cmp.Compare(a.seq, b.seq) })
	out := make([]AccessRule, len(rules))
	for i, r := range rules {
		out[i] = AccessRule{
			ID: r.id, Scope: sc.stateKey(), Mode: r.mode, Target: r.target, Value: r.value,
			Notes: r.notes, CreatedOn: r.created, ModifiedOn: r.modified,
		}
	}
	return out
}

func listState(l *list) List {
	out := List{
		ID: l.id, Name: l.name, Kind: l.kind, Description: l.description,
		CreatedOn: l.created, ModifiedOn: l.modified, Items: []ListItem{},
	}
	for _, it := range l.ordered() {
		out.Items = append(out.Items, ListItem{
			ID: it.id, Value: it.key, Comment: it.comment, CreatedOn: it.created, ModifiedOn: it.modified,
		})
	}
	return out
}

// serveAdmin serves the introspection endpoints. They need no credentials
// and are not counted, rate limited or faulted.
func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) {
	var v any
	switch {
	case r.URL.Path == adminPrefix+"state" && r.Method == http.MethodGet:
		v = s.Snapshot()
	case r.URL.Path == adminPrefix+"stats" && r.Method == http.MethodGet:
		v = s.Stats()
	case r.URL.Path == adminPrefix+"reset" && r.Method == http.MethodPost:
		s.Reset()
		v = map[string]bool{"reset": true}
	case r.URL.Path == adminPrefix+"state" || r.URL.Path == adminPrefix+"stats" || r.URL.Path == adminPrefix+"reset":
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v) //nolint:errcheck // the client may have gone
}

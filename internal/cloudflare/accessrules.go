package cloudflare

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ScopeKind is the level an IP Access Rule lives at.
type ScopeKind string

// The three scopes of IP Access Rules. User scope is legacy (the upstream
// fail2ban actions use it); new configurations should use account or zone.
const (
	ScopeUser    ScopeKind = "user"
	ScopeAccount ScopeKind = "account"
	ScopeZone    ScopeKind = "zone"
)

// Scope says where access rules are read and written: the user, one
// account (all its zones) or one zone. ID is empty for the user scope.
type Scope struct {
	Kind ScopeKind
	ID   string
}

// String returns "user", "account:<id>" or "zone:<id>".
func (s Scope) String() string {
	if s.Kind == ScopeUser {
		return string(s.Kind)
	}
	return string(s.Kind) + ":" + s.ID
}

// Valid reports whether s names a scope the API has.
func (s Scope) Valid() error {
	_, err := s.prefix()
	return err
}

// prefix returns the path prefix of the scope.
func (s Scope) prefix() (string, error) {
	switch s.Kind {
	case ScopeUser:
		if s.ID != "" {
			return "", fmt.Errorf("cloudflare: user scope takes no id (got %q)", s.ID)
		}
		return "/user", nil
	case ScopeAccount:
		return idPath("/accounts/", "account", s.ID)
	case ScopeZone:
		return idPath("/zones/", "zone", s.ID)
	}
	return "", fmt.Errorf("cloudflare: unknown scope kind %q (want user, account or zone)", s.Kind)
}

func (s Scope) rulesPath() (string, error) {
	p, err := s.prefix()
	return p + "/firewall/access_rules/rules", err
}

// checkID reports whether id is safe to put in a path segment. Cloudflare's
// ids are 32 hex digits; tests and operations use other short tokens, so
// any run of letters, digits, '-' and '_' is accepted.
func checkID(what, id string) error {
	if id == "" {
		return fmt.Errorf("cloudflare: missing %s id", what)
	}
	if len(id) > 128 {
		return fmt.Errorf("cloudflare: %s id is too long", what)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("cloudflare: invalid %s id %q", what, id)
		}
	}
	return nil
}

func idPath(prefix, what, id string) (string, error) {
	if err := checkID(what, id); err != nil {
		return "", err
	}
	return prefix + id, nil
}

// IsID reports whether s has the shape of a Cloudflare object id (32
// lowercase hex digits), as opposed to a name such as "example.com".
func IsID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'f') {
			return false
		}
	}
	return true
}

// Configuration is what an access rule matches: a target ("ip", "ip6",
// "ip_range", "asn" or "country") and its value.
type Configuration struct {
	Target string `json:"target"`
	Value  string `json:"value"`
}

// AccessRule is an IP Access Rule as the API returns it.
type AccessRule struct {
	ID            string
	Mode          string // block, challenge, whitelist, js_challenge or managed_challenge
	Notes         string
	Configuration Configuration
	CreatedOn     time.Time
	ModifiedOn    time.Time
	Scope         *RuleScope // owner of the rule; nil when the response has none (zone schema)
}

// RuleScope is the owner of an access rule. A zone listing may include
// rules inherited from the user or organization level, which the zone
// endpoint cannot edit.
type RuleScope struct {
	ID    string
	Email string
	Type  string // "user", "organization", "account" or "zone"
}

// RuleFilter holds the query parameters of ListAccessRules. Empty fields
// are not sent. Matching on Value and Notes is not exact (Notes is a
// case-insensitive substring match); filter results on the client.
type RuleFilter struct {
	Mode      string // mode
	Target    string // configuration.target
	Value     string // configuration.value
	Notes     string // notes
	Match     string // match: "all" (default) or "any"
	Order     string // order: configuration.target, configuration.value or mode
	Direction string // direction: asc or desc
	Page      int    // page, from 1
	PerPage   int    // per_page; the API's maximum is 100
}

func (f RuleFilter) query() url.Values {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("mode", f.Mode)
	set("configuration.target", f.Target)
	set("configuration.value", f.Value)
	set("notes", f.Notes)
	set("match", f.Match)
	set("order", f.Order)
	set("direction", f.Direction)
	if f.Page > 0 {
		q.Set("page", strconv.Itoa(f.Page))
	}
	if f.PerPage > 0 {
		q.Set("per_page", strconv.Itoa(f.PerPage))
	}
	return q
}

// ResultInfo is the envelope's result_info: page counters for page-based
// listings, cursors for cursor-based ones. Absent fields are zero.
type ResultInfo struct {
	Page, PerPage, Count, TotalCount, TotalPages int
	Cursors                                      struct{ Before, After string }
}

// wireRule is an access rule on the wire.
type wireRule struct {
	ID            string        `json:"id"`
	Mode          string        `json:"mode"`
	Notes         string        `json:"notes"`
	Configuration Configuration `json:"configuration"`
	CreatedOn     cfTime        `json:"created_on"`
	ModifiedOn    cfTime        `json:"modified_on"`
	Scope         *struct {
		ID    string `json:"id"`
		Email string `json:"email"`
		Type  string `json:"type"`
	} `json:"scope"`
}

func (w wireRule) rule() AccessRule {
	r := AccessRule{ID: w.ID, Mode: w.Mode, Notes: w.Notes, Configuration: w.Configuration,
		CreatedOn: w.CreatedOn.time(), ModifiedOn: w.ModifiedOn.time()}
	if w.Scope != nil {
		r.Scope = &RuleScope{ID: w.Scope.ID, Email: w.Scope.Email, Type: w.Scope.Type}
	}
	return r
}

func validMode(mode string) error {
	switch mode {
	case "block", "challenge", "whitelist", "js_challenge", "managed_challenge":
		return nil
	}
	return fmt.Errorf("cloudflare: invalid access rule mode %q (want block, challenge, whitelist, js_challenge or managed_challenge)", mode)
}

// CreateAccessRule creates a rule in scope s. A rule with the same
// configuration already in s makes it fail with an error for which
// IsDuplicate is true; the caller should then find and adopt that rule.
// notes is always sent: it is edgeban's ownership tag.
func (c *Client) CreateAccessRule(ctx context.Context, s Scope, mode string, cfg Configuration, notes string) (AccessRule, error) {
	path, err := s.rulesPath()
	if err != nil {
		return AccessRule{}, err
	}
	if err := validMode(mode); err != nil {
		return AccessRule{}, err
	}
	if cfg.Target == "" || cfg.Value == "" {
		return AccessRule{}, errors.New("cloudflare: access rule configuration needs a target and a value")
	}
	body := struct {
		Mode          string        `json:"mode"`
		Configuration Configuration `json:"configuration"`
		Notes         string        `json:"notes"`
	}{mode, cfg, notes}
	var w wireRule
	if err := c.send(ctx, http.MethodPost, path, body, &w); err != nil {
		return AccessRule{}, err
	}
	if w.ID == "" {
		return AccessRule{}, fmt.Errorf("cloudflare: POST %s: success without a rule id", path)
	}
	return w.rule(), nil
}

// ListAccessRules returns one page of the rules in scope s that match f.
func (c *Client) ListAccessRules(ctx context.Context, s Scope, f RuleFilter) ([]AccessRule, ResultInfo, error) {
	path, err := s.rulesPath()
	if err != nil {
		return nil, ResultInfo{}, err
	}
	var ws []wireRule
	info, err := c.get(ctx, path, f.query(), &ws)
	if err != nil {
		return nil, ResultInfo{}, err
	}
	rules := make([]AccessRule, 0, len(ws))
	for _, w := range ws {
		rules = append(rules, w.rule())
	}
	return rules, info, nil
}

// maxRulePages bounds FindAccessRules: 50,000 rules per account at 100 a
// page, with room to spare. A server that never ends its listing is an error.
const maxRulePages = 1000

// FindAccessRules returns every rule in scope s that matches f, reading
// pages of 100 (or f.PerPage, if smaller) from f.Page (default 1) until
// the last page or an empty one. On error it returns the rules read so
// far together with the error.
func (c *Client) FindAccessRules(ctx context.Context, s Scope, f RuleFilter) ([]AccessRule, error) {
	if f.PerPage <= 0 || f.PerPage > 100 {
		f.PerPage = 100
	}
	if f.Page <= 0 {
		f.Page = 1
	}
	var all []AccessRule
	for n := 0; ; n++ {
		if n == maxRulePages {
			return all, fmt.Errorf("cloudflare: listing access rules in %s: more than %d pages", s, maxRulePages)
		}
		rules, info, err := c.ListAccessRules(ctx, s, f)
		if err != nil {
			return all, fmt.Errorf("cloudflare: listing access rules in %s, page %d: %w", s, f.Page, err)
		}
		all = append(all, rules...)
		if lastPage(len(rules), f.Page, f.PerPage, info) {
			return all, nil
		}
		f.Page++
	}
}

// lastPage decides whether page (holding n rules) ends a listing.
func lastPage(n, page, perPage int, info ResultInfo) bool {
	switch {
	case n == 0:
		return true
	case info.TotalPages > 0:
		return page >= info.TotalPages
	case info.TotalCount > 0:
		return page*perPage >= info.TotalCount
	}
	per := perPage
	if info.PerPage > 0 {
		per = info.PerPage
	}
	return n < per
}

// UpdateAccessRule changes the mode and/or notes of rule id; an empty
// argument is left unchanged. Changing the configuration needs a delete and
// a create.
func (c *Client) UpdateAccessRule(ctx context.Context, s Scope, id, mode, notes string) (AccessRule, error) {
	path, err := s.rulesPath()
	if err != nil {
		return AccessRule{}, err
	}
	if err := checkID("rule", id); err != nil {
		return AccessRule{}, err
	}
	if mode == "" && notes == "" {
		return AccessRule{}, errors.New("cloudflare: access rule update needs a mode or notes")
	}
	if mode != "" {
		if err := validMode(mode); err != nil {
			return AccessRule{}, err
		}
	}
	body := struct {
		Mode  string `json:"mode,omitempty"`
		Notes string `json:"notes,omitempty"`
	}{mode, notes}
	var w wireRule
	if err := c.send(ctx, http.MethodPatch, path+"/"+id, body, &w); err != nil {
		return AccessRule{}, err
	}
	return w.rule(), nil
}

// DeleteAccessRule deletes rule id from scope s. A zone delete sends
// {"cascade":"none"} so that the owner's other zones are untouched; user
// and account deletes send no body. A rule that is already gone yields an
// error for which IsNotFound is true.
func (c *Client) DeleteAccessRule(ctx context.Context, s Scope, id string) error {
	path, err := s.rulesPath()
	if err != nil {
		return err
	}
	if err := checkID("rule", id); err != nil {
		return err
	}
	var body any
	if s.Kind == ScopeZone {
		body = map[string]string{"cascade": "none"}
	}
	return c.send(ctx, http.MethodDelete, path+"/"+id, body, nil)
}

// TargetFor returns the access-rule configuration for an address or CIDR,
// normalized with net/netip:
//
//   - an IPv4 address (or an IPv4-mapped IPv6 one) → "ip";
//   - an IPv6 address → "ip6" in compressed lowercase form, or, when
//     aggregateV6 is set, "ip_range" with its /64;
//   - an IPv4 CIDR → "ip_range" with /16 or /24 (a /32 is an "ip");
//   - an IPv6 CIDR → "ip_range" with /32, /48 or /64 (a /128 is treated
//     as an address).
//
// Other prefix lengths are an error: Cloudflare accepts no others.
func TargetFor(addr string, aggregateV6 bool) (Configuration, error) {
	s := strings.TrimSpace(addr)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return Configuration{}, fmt.Errorf("cloudflare: invalid CIDR %q: %w", addr, err)
		}
		p = unmapPrefix(p).Masked()
		bits := p.Bits()
		switch {
		case p.Addr().Is4() && bits == 32, p.Addr().Is6() && bits == 128:
			return targetForAddr(p.Addr(), aggregateV6), nil
		case p.Addr().Is4() && (bits == 16 || bits == 24):
			return Configuration{Target: "ip_range", Value: p.String()}, nil
		case p.Addr().Is6() && (bits == 32 || bits == 48 || bits == 64):
			return Configuration{Target: "ip_range", Value: p.String()}, nil
		case p.Addr().Is4():
			return Configuration{}, fmt.Errorf("cloudflare: IPv4 range %s: access rules allow only /16 and /24", p)
		default:
			return Configuration{}, fmt.Errorf("cloudflare: IPv6 range %s: access rules allow only /32, /48 and /64", p)
		}
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return Configuration{}, fmt.Errorf("cloudflare: invalid IP address %q: %w", addr, err)
	}
	if a.Zone() != "" {
		return Configuration{}, fmt.Errorf("cloudflare: IP address %q has a zone", addr)
	}
	return targetForAddr(a, aggregateV6), nil
}

func targetForAddr(a netip.Addr, aggregateV6 bool) Configuration {
	a = a.Unmap()
	switch {
	case a.Is4():
		return Configuration{Target: "ip", Value: a.String()}
	case aggregateV6:
		return Configuration{Target: "ip_range", Value: netip.PrefixFrom(a, 64).Masked().String()}
	}
	return Configuration{Target: "ip6", Value: a.String()}
}

// unmapPrefix turns an IPv4-mapped IPv6 prefix (::ffff:a.b.c.d/n, n ≥ 96)
// into the IPv4 prefix it stands for.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p
}

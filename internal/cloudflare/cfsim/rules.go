package cfsim

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Access rule scopes, as used in Config.NotEntitled and in State keys.
const (
	scopeUser    = "user"
	scopeAccount = "account"
	scopeZone    = "zone"
)

// modes are the access rule modes, in the order Cloudflare lists them in
// allowed_modes.
var modes = []string{"whitelist", "block", "challenge", "js_challenge", "managed_challenge"}

// Error codes the simulator uses where API-NOTES documents none. They are in
// Cloudflare's style and stable, so clients can be tested against them.
const (
	codeMalformedJSON  = 6007  // request body is not JSON
	codeNotFound       = 10001 // rule, list, item or operation not found
	codeDuplicate      = 10009 // firewallaccessrules.api.duplicate_of_existing
	codeNotEntitled    = 10010 // firewallaccessrules.api.not_entitled
	codeInvalidMode    = 10012 // mode missing or not in the enum
	codeInvalidTarget  = 10013 // configuration.target missing or not in the oneOf
	codeInvalidValue   = 10014 // configuration.value does not fit the target
	codeCountryBlock   = 10015 // country block needs the enterprise plan
	codeRuleCap        = 10016 // the account's access rule cap is reached
	codeImmutable      = 10017 // PATCH tried to change the configuration
	codeInvalidRequest = 10018 // a query parameter or body field is invalid
)

// ruleScope holds the access rules of one scope, unique by configuration.
type ruleScope struct {
	kind   string // scopeUser, scopeAccount or scopeZone
	id     string
	name   string // zone name, or the user's email
	rules  map[string]*rule
	byConf map[string]*rule // target + "\x00" + value
}

func newRuleScope(kind, id, name string) *ruleScope {
	return &ruleScope{kind: kind, id: id, name: name, rules: make(map[string]*rule), byConf: make(map[string]*rule)}
}

// stateKey is the key of the scope in State.AccessRules.
func (sc *ruleScope) stateKey() string {
	if sc.kind == scopeUser {
		return scopeUser
	}
	return sc.kind + ":" + sc.id
}

type rule struct {
	id       string
	seq      uint64
	scope    *ruleScope
	mode     string
	target   string
	value    string
	notes    string
	created  time.Time
	modified time.Time
}

func confKey(target, value string) string { return target + "\x00" + value }

type configurationJSON struct {
	Target string `json:"target"`
	Value  string `json:"value"`
}

type scopeJSON struct {
	ID    string `json:"id"`
	Email string `json:"email,omitempty"`
	Name  string `json:"name,omitempty"`
	Type  string `json:"type"`
}

type ruleJSON struct {
	ID            string            `json:"id"`
	Paused        bool              `json:"paused"`
	Mode          string            `json:"mode"`
	AllowedModes  []string          `json:"allowed_modes"`
	Configuration configurationJSON `json:"configuration"`
	Notes         string            `json:"notes"`
	CreatedOn     string            `json:"created_on"`
	ModifiedOn    string            `json:"modified_on"`
	Scope         scopeJSON         `json:"scope"`
}

// timestamp formats t as Cloudflare does: RFC 3339 in UTC with fractions.
func timestamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func (r *rule) json() ruleJSON {
	sc := scopeJSON{ID: r.scope.id}
	switch r.scope.kind {
	case scopeUser:
		sc.Type, sc.Email = "user", r.scope.name
	case scopeAccount:
		// Accounts were organizations; the legacy API and the schema's
		// enum still say so.
		sc.Type = "organization"
	default:
		sc.Type, sc.Name = "zone", r.scope.name
	}
	return ruleJSON{
		ID: r.id, Mode: r.mode, AllowedModes: modes,
		Configuration: configurationJSON{Target: r.target, Value: r.value},
		Notes:         r.notes, CreatedOn: timestamp(r.created), ModifiedOn: timestamp(r.modified),
		Scope: sc,
	}
}

// ruleScopeOf resolves the scope named by the route: the user, the account
// in the path, or the zone in the path.
func (s *Server) ruleScopeOf(c *call) (*ruleScope, *response) {
	if id, ok := c.params["zone_id"]; ok {
		sc := s.st.zones[id]
		if sc == nil {
			return nil, s.noRoute(c)
		}
		return sc, nil
	}
	if id, ok := c.params["account_id"]; ok {
		if id != s.cfg.AccountID {
			return nil, s.noRoute(c)
		}
		return s.st.account, nil
	}
	return s.st.user, nil
}

// decodeBody decodes a JSON request body into v. An empty body decodes to
// nothing when optional.
func decodeBody(body []byte, v any, optional bool) *response {
	if len(bytes.TrimSpace(body)) == 0 {
		if optional {
			return nil
		}
		return fail(http.StatusBadRequest, codeMalformedJSON, "Malformed JSON in request body")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return failf(http.StatusBadRequest, codeInvalidRequest, "invalid request body: field %s: %s is not a %s",
				typeErr.Field, typeErr.Value, typeErr.Type)
		}
		return fail(http.StatusBadRequest, codeMalformedJSON, "Malformed JSON in request body")
	}
	if _, err := dec.Token(); err != io.EOF {
		return fail(http.StatusBadRequest, codeMalformedJSON, "Malformed JSON in request body")
	}
	return nil
}

var (
	asnPattern     = regexp.MustCompile(`^(?i)AS[0-9]{1,10}$`)
	countryPattern = regexp.MustCompile(`^(?i)([A-Z]{2}|T1)$`) // ISO alpha-2, T1 (Tor), XX
)

// normalizeConfiguration validates a configuration and returns its canonical
// value: addresses as netip prints them (IPv6 lowercase and compressed),
// ranges masked, ASNs and countries upper case.
func normalizeConfiguration(target, value string) (string, *response) {
	bad := func(format string, args ...any) (string, *response) {
		return "", failf(http.StatusBadRequest, codeInvalidValue, "firewallaccessrules.api.validation.invalid_value: "+format, args...)
	}
	value = strings.TrimSpace(value)
	switch target {
	case "ip":
		a, err := netip.ParseAddr(value)
		if err != nil || !a.Is4() {
			return bad("%q is not an IPv4 address (use target ip6 for IPv6)", value)
		}
		return a.String(), nil
	case "ip6":
		a, err := netip.ParseAddr(value)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return bad("%q is not an IPv6 address", value)
		}
		return a.String(), nil
	case "ip_range":
		p, err := netip.ParsePrefix(value)
		if err != nil {
			return bad("%q is not a CIDR range", value)
		}
		if p.Addr().Is4() && p.Bits() != 16 && p.Bits() != 24 {
			return bad("IPv4 ranges must be /16 or /24, not /%d", p.Bits())
		}
		if p.Addr().Is6() && p.Bits() != 32 && p.Bits() != 48 && p.Bits() != 64 {
			return bad("IPv6 ranges must be /32, /48 or /64, not /%d", p.Bits())
		}
		return p.Masked().String(), nil
	case "asn":
		if !asnPattern.MatchString(value) {
			return bad("%q is not an AS number such as AS13335", value)
		}
		return strings.ToUpper(value), nil
	case "country":
		if !countryPattern.MatchString(value) {
			return bad("%q is not a two-letter country code, T1 or XX", value)
		}
		return strings.ToUpper(value), nil
	}
	return "", failf(http.StatusBadRequest, codeInvalidTarget,
		"firewallaccessrules.api.validation.invalid_target: %q is not one of ip, ip6, ip_range, asn, country", target)
}

func validMode(m string) bool { return slices.Contains(modes, m) }

func invalidMode(m string) *response {
	return failf(http.StatusBadRequest, codeInvalidMode,
		"firewallaccessrules.api.validation.invalid_mode: %q is not one of block, challenge, whitelist, js_challenge, managed_challenge", m)
}

func (s *Server) createRule(c *call) *response {
	sc, res := s.ruleScopeOf(c)
	if res != nil {
		return res
	}
	var in struct {
		Mode          *string `json:"mode"`
		Configuration *struct {
			Target *string `json:"target"`
			Value  *string `json:"value"`
		} `json:"configuration"`
		Notes *string `json:"notes"`
	}
	if res := decodeBody(c.body, &in, false); res != nil {
		return res
	}
	if slices.Contains(s.cfg.NotEntitled, sc.kind) {
		return fail(http.StatusForbidden, codeNotEntitled, "firewallaccessrules.api.not_entitled")
	}
	if in.Mode == nil {
		return fail(http.StatusBadRequest, codeInvalidMode, "firewallaccessrules.api.validation.invalid_mode: mode is required")
	}
	if !validMode(*in.Mode) {
		return invalidMode(*in.Mode)
	}
	if in.Configuration == nil || in.Configuration.Target == nil {
		return fail(http.StatusBadRequest, codeInvalidTarget, "firewallaccessrules.api.validation.invalid_target: configuration.target is required")
	}
	if in.Configuration.Value == nil {
		return fail(http.StatusBadRequest, codeInvalidValue, "firewallaccessrules.api.validation.invalid_value: configuration.value is required")
	}
	target := *in.Configuration.Target
	value, res := normalizeConfiguration(target, *in.Configuration.Value)
	if res != nil {
		return res
	}
	if target == "country" && *in.Mode == "block" && s.cfg.Plan != PlanEnterprise {
		return fail(http.StatusBadRequest, codeCountryBlock,
			"firewallaccessrules.api.validation.country_block_not_entitled: blocking a country requires the enterprise plan")
	}
	if _, dup := sc.byConf[confKey(target, value)]; dup {
		return fail(http.StatusBadRequest, codeDuplicate, "firewallaccessrules.api.duplicate_of_existing")
	}
	if s.st.ruleCount >= s.cfg.RuleCap {
		return failf(http.StatusBadRequest, codeRuleCap,
			"firewallaccessrules.api.quota_exceeded: the account has reached its maximum of %d IP Access rules", s.cfg.RuleCap)
	}
	id := s.newID()
	for s.st.ruleIDs[id] {
		id = s.newID()
	}
	s.st.seq++
	r := &rule{id: id, seq: s.st.seq, scope: sc, mode: *in.Mode, target: target, value: value, created: c.now, modified: c.now}
	if in.Notes != nil {
		r.notes = *in.Notes
	}
	sc.rules[id] = r
	sc.byConf[confKey(target, value)] = r
	s.st.ruleIDs[id] = true
	s.st.ruleCount++
	return ok(r.json())
}

func (s *Server) findRule(c *call) (*rule, *response) {
	sc, res := s.ruleScopeOf(c)
	if res != nil {
		return nil, res
	}
	r := sc.rules[c.params["rule_id"]]
	if r == nil {
		return nil, fail(http.StatusNotFound, codeNotFound, "firewallaccessrules.api.not_found")
	}
	return r, nil
}

func (s *Server) getRule(c *call) *response {
	r, res := s.findRule(c)
	if res != nil {
		return res
	}
	return ok(r.json())
}

func (s *Server) patchRule(c *call) *response {
	r, res := s.findRule(c)
	if res != nil {
		return res
	}
	var in struct {
		Mode          *string            `json:"mode"`
		Notes         *string            `json:"notes"`
		Configuration *configurationJSON `json:"configuration"`
	}
	if res := decodeBody(c.body, &in, false); res != nil {
		return res
	}
	if in.Mode != nil && !validMode(*in.Mode) {
		return invalidMode(*in.Mode)
	}
	if in.Configuration != nil {
		value, res := normalizeConfiguration(in.Configuration.Target, in.Configuration.Value)
		if res != nil {
			return res
		}
		if in.Configuration.Target != r.target || value != r.value {
			return fail(http.StatusBadRequest, codeImmutable,
				"firewallaccessrules.api.validation.configuration_immutable: delete the rule and create a new one to change its configuration")
		}
	}
	mode := r.mode
	if in.Mode != nil {
		mode = *in.Mode
	}
	if r.target == "country" && mode == "block" && s.cfg.Plan != PlanEnterprise {
		return fail(http.StatusBadRequest, codeCountryBlock,
			"firewallaccessrules.api.validation.country_block_not_entitled: blocking a country requires the enterprise plan")
	}
	r.mode = mode
	if in.Notes != nil {
		r.notes = *in.Notes
	}
	r.modified = c.now
	return ok(r.json())
}

func (s *Server) removeRule(r *rule) {
	delete(r.scope.rules, r.id)
	delete(r.scope.byConf, confKey(r.target, r.value))
	delete(s.st.ruleIDs, r.id)
	s.st.ruleCount--
}

func (s *Server) deleteRule(c *call) *response {
	r, res := s.findRule(c)
	if res != nil {
		return res
	}
	// The body is optional everywhere; only the zone level reads cascade.
	var in struct {
		Cascade *string `json:"cascade"`
	}
	if res := decodeBody(c.body, &in, true); res != nil {
		return res
	}
	cascade := "none"
	if in.Cascade != nil && r.scope.kind == scopeZone {
		cascade = *in.Cascade
	}
	switch cascade {
	case "none", "basic", "aggressive":
	default:
		return failf(http.StatusBadRequest, codeInvalidRequest, "cascade must be none, basic or aggressive, not %q", cascade)
	}
	s.removeRule(r)
	if cascade != "none" {
		// Rules of the same owner in the other zones: this simulator has one
		// owner, so every other zone.
		for _, sc := range s.st.zones {
			if sc == r.scope {
				continue
			}
			other := sc.byConf[confKey(r.target, r.value)]
			if other != nil && (cascade == "aggressive" || other.mode == r.mode) {
				s.removeRule(other)
			}
		}
	}
	return ok(map[string]string{"id": r.id})
}

// ruleFilter is the parsed query of a rule list.
type ruleFilter struct {
	mode, target, value, notes string
	hasMode, hasTarget         bool
	hasValue, hasNotes         bool
	any                        bool
}

func (f *ruleFilter) active() bool { return f.hasMode || f.hasTarget || f.hasValue || f.hasNotes }

func (f *ruleFilter) match(r *rule) bool {
	if !f.active() {
		return true
	}
	checks := make([]bool, 0, 4)
	if f.hasMode {
		checks = append(checks, r.mode == f.mode)
	}
	if f.hasTarget {
		checks = append(checks, r.target == f.target)
	}
	if f.hasValue {
		checks = append(checks, strings.EqualFold(r.value, f.value))
	}
	if f.hasNotes {
		checks = append(checks, strings.Contains(strings.ToLower(r.notes), f.notes))
	}
	if f.any {
		return slices.Contains(checks, true)
	}
	return !slices.Contains(checks, false)
}

// queryValue returns the first of the given keys present in q. Both the
// documented dotted keys and the underscore keys that fail2ban and
// cloudflare-go v0 send are accepted (API-NOTES §1.3).
func queryValue(q url.Values, keys ...string) (string, bool) {
	for _, k := range keys {
		if vs, ok := q[k]; ok && len(vs) > 0 {
			return vs[0], true
		}
	}
	return "", false
}

func invalidQuery(format string, args ...any) *response {
	return failf(http.StatusBadRequest, codeInvalidRequest, "firewallaccessrules.api.validation.invalid_filter: "+format, args...)
}

// pageParams parses page and per_page. per_page defaults to def and is
// capped at maxPer (API-NOTES §1.3: "API max is 100").
func pageParams(q url.Values, def, maxPer int) (int, int, *response) {
	num := func(key string, fallback int) (int, *response) {
		v, ok := queryValue(q, key)
		if !ok || v == "" {
			return fallback, nil
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f != float64(int(f)) || f < 1 {
			return 0, invalidQuery("%s must be a positive integer, not %q", key, v)
		}
		return int(f), nil
	}
	page, res := num("page", 1)
	if res != nil {
		return 0, 0, res
	}
	perPage, res := num("per_page", def)
	if res != nil {
		return 0, 0, res
	}
	return page, min(perPage, maxPer), nil
}

func (s *Server) listRules(c *call) *response {
	sc, res := s.ruleScopeOf(c)
	if res != nil {
		return res
	}
	q := c.query
	var f ruleFilter
	f.mode, f.hasMode = queryValue(q, "mode")
	if f.hasMode && !validMode(f.mode) {
		return invalidQuery("mode %q is not one of block, challenge, whitelist, js_challenge, managed_challenge", f.mode)
	}
	f.target, f.hasTarget = queryValue(q, "configuration.target", "configuration_target")
	if f.hasTarget && !slices.Contains([]string{"ip", "ip6", "ip_range", "asn", "country"}, f.target) {
		return invalidQuery("configuration.target %q is not one of ip, ip_range, asn, country", f.target)
	}
	f.value, f.hasValue = queryValue(q, "configuration.value", "configuration_value")
	if f.hasValue {
		f.value = canonicalValue(f.value)
	}
	f.notes, f.hasNotes = queryValue(q, "notes")
	f.notes = strings.ToLower(f.notes)
	switch m, _ := queryValue(q, "match"); m {
	case "", "all":
	case "any":
		f.any = true
	default:
		return invalidQuery("match must be all or any, not %q", m)
	}
	order, _ := queryValue(q, "order")
	switch order {
	case "", "configuration.target", "configuration.value", "mode":
	default:
		return invalidQuery("order must be configuration.target, configuration.value or mode, not %q", order)
	}
	direction, _ := queryValue(q, "direction")
	switch direction {
	case "", "asc", "desc":
	default:
		return invalidQuery("direction must be asc or desc, not %q", direction)
	}
	page, perPage, res := pageParams(q, 20, 100)
	if res != nil {
		return res
	}

	scopes := []*ruleScope{sc}
	if sc.kind == scopeZone && s.cfg.ZoneListInherited {
		scopes = append(scopes, s.st.account, s.st.user)
	}
	var matched []*rule
	for _, sc := range scopes {
		for _, r := range sc.rules {
			if f.match(r) {
				matched = append(matched, r)
			}
		}
	}
	field := func(r *rule) string {
		switch order {
		case "configuration.target":
			return r.target
		case "configuration.value":
			return r.value
		case "mode":
			return r.mode
		}
		return ""
	}
	slices.SortFunc(matched, func(a, b *rule) int {
		if order != "" {
			if c := strings.Compare(field(a), field(b)); c != 0 {
				if direction == "desc" {
					return -c
				}
				return c
			}
		}
		// Newest first, as Cloudflare lists by default.
		return -cmp.Compare(a.seq, b.seq)
	})
	pageRules, info := paginate(matched, page, perPage)
	out := make([]ruleJSON, len(pageRules))
	for i, r := range pageRules {
		out[i] = r.json()
	}
	return okInfo(out, info)
}

// canonicalValue puts an address or range in the form rules store, so that
// a filter on "2001:DB8::1" finds "2001:db8::1".
func canonicalValue(v string) string {
	if a, err := netip.ParseAddr(v); err == nil {
		return a.String()
	}
	if p, err := netip.ParsePrefix(v); err == nil {
		return p.Masked().String()
	}
	return v
}

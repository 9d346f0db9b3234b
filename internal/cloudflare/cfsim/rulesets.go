package cfsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// Error codes of the rulesets API that API-NOTES does not document.
const (
	codeNoEntrypoint   = 10003 // no entry point ruleset in the phase yet
	codeRulesetMissing = 10004 // ruleset or rule not found
	codeBadExpression  = 20120 // the expression names a list that does not exist
	codeBadAction      = 20121 // the action is not allowed in the phase
	codeRuleQuota      = 20122 // the plan's custom rules per zone are used up
	codeRulesetExists  = 20217 // POST /rulesets for a phase that has one
)

// phaseCustom is the phase of WAF custom rules, the one edgeban uses.
const phaseCustom = "http_request_firewall_custom"

// phases is the schema's enum of ruleset phases.
var phases = []string{
	"ddos_l4", "ddos_l7", "http_config_settings", "http_custom_errors", "http_log_custom_fields",
	"http_ratelimit", "http_request_cache_settings", "http_request_dynamic_redirect",
	phaseCustom, "http_request_firewall_managed", "http_request_late_transform",
	"http_request_origin", "http_request_redirect", "http_request_sanitize", "http_request_sbfm",
	"http_request_select_configuration", "http_request_transform", "http_response_compression",
	"http_response_firewall_managed", "http_response_headers_transform", "magic_transit",
	"magic_transit_ids_managed", "magic_transit_managed",
}

// customActions are the actions of WAF custom rules (API-NOTES §2.5).
var customActions = []string{"block", "challenge", "js_challenge", "managed_challenge", "log", "skip"}

var listRef = regexp.MustCompile(`\$([A-Za-z0-9_]+)`)

type ruleset struct {
	id, name, description, phase, zoneID string
	version                              int
	updated                              time.Time
	rules                                []*rsRule
}

type rsRule struct {
	id, ref, action, expression, description string
	enabled                                  bool
	version                                  int
	updated                                  time.Time
	actionParameters, logging                json.RawMessage
}

// rsRuleIn is a rule as clients send it.
type rsRuleIn struct {
	ID               string          `json:"id"`
	Ref              string          `json:"ref"`
	Action           string          `json:"action"`
	Expression       string          `json:"expression"`
	Description      string          `json:"description"`
	Enabled          *bool           `json:"enabled"`
	ActionParameters json.RawMessage `json:"action_parameters"`
	Logging          json.RawMessage `json:"logging"`
}

type rsRuleJSON struct {
	ID               string          `json:"id"`
	Version          string          `json:"version"`
	Action           string          `json:"action"`
	Expression       string          `json:"expression"`
	Description      string          `json:"description"`
	Enabled          bool            `json:"enabled"`
	Ref              string          `json:"ref"`
	LastUpdated      string          `json:"last_updated"`
	ActionParameters json.RawMessage `json:"action_parameters,omitempty"`
	Logging          json.RawMessage `json:"logging,omitempty"`
}

type rulesetJSON struct {
	ID          string       `json:"id"`
	Name        string       `json:"name"`
	Description string       `json:"description"`
	Kind        string       `json:"kind"`
	Phase       string       `json:"phase"`
	Version     string       `json:"version"`
	LastUpdated string       `json:"last_updated"`
	Rules       []rsRuleJSON `json:"rules"`
}

func (rs *ruleset) json() rulesetJSON {
	out := rulesetJSON{
		ID: rs.id, Name: rs.name, Description: rs.description, Kind: "zone", Phase: rs.phase,
		Version: strconv.Itoa(rs.version), LastUpdated: timestamp(rs.updated), Rules: []rsRuleJSON{},
	}
	for _, r := range rs.rules {
		out.Rules = append(out.Rules, rsRuleJSON{
			ID: r.id, Version: strconv.Itoa(r.version), Action: r.action, Expression: r.expression,
			Description: r.description, Enabled: r.enabled, Ref: r.ref, LastUpdated: timestamp(r.updated),
			ActionParameters: r.actionParameters, Logging: r.logging,
		})
	}
	return out
}

func entrypointKey(zoneID, phase string) string { return zoneID + "/" + phase }

func (s *Server) zoneOf(c *call) *response {
	if _, ok := s.cfg.Zones[c.params["zone_id"]]; !ok {
		return s.noRoute(c)
	}
	return nil
}

func rulesetError(status, code int, pointer, format string, args ...any) *response {
	e := apiError{Code: code, Message: fmt.Sprintf(format, args...)}
	if pointer != "" {
		e.Source = &errPointer{Pointer: pointer}
	}
	return failErrs(status, e)
}

func (s *Server) getEntrypoint(c *call) *response {
	if res := s.zoneOf(c); res != nil {
		return res
	}
	phase := c.params["phase"]
	rs := s.st.entrypoints[entrypointKey(c.params["zone_id"], phase)]
	if rs == nil {
		return rulesetError(http.StatusNotFound, codeNoEntrypoint, "", "could not find entrypoint ruleset in the %s phase", phase)
	}
	return ok(rs.json())
}

// checkRule validates a rule for a phase; pointer locates it in the body.
func (s *Server) checkRule(in *rsRuleIn, phase, pointer string) *response {
	if in.Action == "" {
		return rulesetError(http.StatusBadRequest, codeBadAction, pointer+"/action", "a rule needs an action")
	}
	if phase == phaseCustom && !slices.Contains(customActions, in.Action) {
		return rulesetError(http.StatusBadRequest, codeBadAction, pointer+"/action",
			"%q is not a valid action for the %s phase", in.Action, phase)
	}
	if phase == phaseCustom && in.Action == "log" && s.cfg.Plan != PlanEnterprise {
		return rulesetError(http.StatusBadRequest, codeBadAction, pointer+"/action", "the log action needs the enterprise plan")
	}
	if in.Expression == "" {
		return rulesetError(http.StatusBadRequest, codeBadExpression, pointer+"/expression", "a rule needs an expression")
	}
	for _, m := range listRef.FindAllStringSubmatch(in.Expression, -1) {
		if s.st.listByName(m[1]) == nil {
			return rulesetError(http.StatusBadRequest, codeBadExpression, pointer+"/expression",
				"filter parsing error: list $%s does not exist in this account", m[1])
		}
	}
	return nil
}

func (s *Server) checkQuota(phase string, n int) *response {
	if phase == phaseCustom && n > s.cfg.Plan.maxCustomRules() {
		return rulesetError(http.StatusBadRequest, codeRuleQuota, "",
			"exceeded maximum number of rules in the %s phase: %d on the %s plan", phase, s.cfg.Plan.maxCustomRules(), s.cfg.Plan)
	}
	return nil
}

func (s *Server) newRsRule(in *rsRuleIn, now time.Time) *rsRule {
	r := &rsRule{
		id: in.ID, ref: in.Ref, action: in.Action, expression: in.Expression, description: in.Description,
		enabled: in.Enabled == nil || *in.Enabled, version: 1, updated: now,
		actionParameters: orNil(in.ActionParameters), logging: orNil(in.Logging),
	}
	if !hex32.MatchString(r.id) {
		r.id = s.newID()
	}
	if r.ref == "" {
		r.ref = r.id
	}
	return r
}

// replaceRules validates a whole rule list and builds it, keeping the ids
// of rules that name an existing one.
func (s *Server) replaceRules(ins []rsRuleIn, phase string, now time.Time) ([]*rsRule, *response) {
	if res := s.checkQuota(phase, len(ins)); res != nil {
		return nil, res
	}
	rules := make([]*rsRule, 0, len(ins))
	for i := range ins {
		if res := s.checkRule(&ins[i], phase, fmt.Sprintf("/rules/%d", i)); res != nil {
			return nil, res
		}
		rules = append(rules, s.newRsRule(&ins[i], now))
	}
	return rules, nil
}

func (s *Server) putEntrypoint(c *call) *response {
	if res := s.zoneOf(c); res != nil {
		return res
	}
	phase := c.params["phase"]
	if !slices.Contains(phases, phase) {
		return rulesetError(http.StatusBadRequest, codeBadAction, "", "%q is not a ruleset phase", phase)
	}
	var in struct {
		Name        *string    `json:"name"`
		Description *string    `json:"description"`
		Rules       []rsRuleIn `json:"rules"`
	}
	if res := decodeBody(c.body, &in, false); res != nil {
		return res
	}
	rules, res := s.replaceRules(in.Rules, phase, c.now)
	if res != nil {
		return res
	}
	key := entrypointKey(c.params["zone_id"], phase)
	rs := s.st.entrypoints[key]
	if rs == nil {
		rs = &ruleset{id: s.newID(), name: "default", phase: phase, zoneID: c.params["zone_id"]}
		s.st.entrypoints[key] = rs
		s.st.rulesets[rs.id] = rs
	}
	if in.Name != nil {
		rs.name = *in.Name
	}
	if in.Description != nil {
		rs.description = *in.Description
	}
	rs.rules = rules
	rs.version++
	rs.updated = c.now
	return ok(rs.json())
}

// createRuleset serves POST /zones/{zone_id}/rulesets for the entry point
// of a phase (API-NOTES §2.5 step 3). It is not in the 2024 subset.
func (s *Server) createRuleset(c *call) *response {
	if res := s.zoneOf(c); res != nil {
		return res
	}
	var in struct {
		Name        string     `json:"name"`
		Description string     `json:"description"`
		Kind        string     `json:"kind"`
		Phase       string     `json:"phase"`
		Rules       []rsRuleIn `json:"rules"`
	}
	if res := decodeBody(c.body, &in, false); res != nil {
		return res
	}
	if in.Kind != "zone" {
		return rulesetError(http.StatusBadRequest, codeBadAction, "/kind", "kind must be zone, not %q", in.Kind)
	}
	if !slices.Contains(phases, in.Phase) {
		return rulesetError(http.StatusBadRequest, codeBadAction, "/phase", "%q is not a ruleset phase", in.Phase)
	}
	if in.Name == "" {
		return rulesetError(http.StatusBadRequest, codeBadAction, "/name", "a ruleset needs a name")
	}
	key := entrypointKey(c.params["zone_id"], in.Phase)
	if s.st.entrypoints[key] != nil {
		return rulesetError(http.StatusBadRequest, codeRulesetExists, "",
			"'zone' is not a valid value for kind because exceeded maximum number of zone rulesets for phase %s", in.Phase)
	}
	rules, res := s.replaceRules(in.Rules, in.Phase, c.now)
	if res != nil {
		return res
	}
	rs := &ruleset{
		id: s.newID(), name: in.Name, description: in.Description, phase: in.Phase,
		zoneID: c.params["zone_id"], version: 1, updated: c.now, rules: rules,
	}
	s.st.entrypoints[key] = rs
	s.st.rulesets[rs.id] = rs
	return ok(rs.json())
}

func (s *Server) findRuleset(c *call) (*ruleset, *response) {
	if res := s.zoneOf(c); res != nil {
		return nil, res
	}
	rs := s.st.rulesets[c.params["ruleset_id"]]
	if rs == nil || rs.zoneID != c.params["zone_id"] {
		return nil, rulesetError(http.StatusNotFound, codeRulesetMissing, "", "could not find ruleset %s", c.params["ruleset_id"])
	}
	return rs, nil
}

func (s *Server) createRulesetRule(c *call) *response {
	rs, res := s.findRuleset(c)
	if res != nil {
		return res
	}
	var in rsRuleIn
	if res := decodeBody(c.body, &in, false); res != nil {
		return res
	}
	if res := s.checkRule(&in, rs.phase, ""); res != nil {
		return res
	}
	if res := s.checkQuota(rs.phase, len(rs.rules)+1); res != nil {
		return res
	}
	in.ID = "" // the server assigns ids
	rs.rules = append(rs.rules, s.newRsRule(&in, c.now))
	rs.version++
	rs.updated = c.now
	return ok(rs.json())
}

func (s *Server) findRsRule(c *call) (*ruleset, int, *response) {
	rs, res := s.findRuleset(c)
	if res != nil {
		return nil, 0, res
	}
	id := c.params["rule_id"]
	i := slices.IndexFunc(rs.rules, func(r *rsRule) bool { return r.id == id })
	if i < 0 {
		return nil, 0, rulesetError(http.StatusNotFound, codeRulesetMissing, "", "could not find rule %s in ruleset %s", id, rs.id)
	}
	return rs, i, nil
}

func (s *Server) patchRulesetRule(c *call) *response {
	rs, i, res := s.findRsRule(c)
	if res != nil {
		return res
	}
	var in map[string]json.RawMessage
	if res := decodeBody(c.body, &in, false); res != nil {
		return res
	}
	r := rs.rules[i]
	merged := rsRuleIn{
		ID: r.id, Ref: r.ref, Action: r.action, Expression: r.expression, Description: r.description,
		Enabled: &r.enabled, ActionParameters: r.actionParameters, Logging: r.logging,
	}
	// Overlay the fields sent on the current rule.
	cur, _ := json.Marshal(merged)
	var m map[string]json.RawMessage
	json.Unmarshal(cur, &m) //nolint:errcheck // cur is our own JSON
	for k, v := range in {
		if k == "position" || k == "id" {
			continue
		}
		m[k] = v
	}
	b, _ := json.Marshal(m)
	merged = rsRuleIn{}
	if res := decodeBody(b, &merged, false); res != nil {
		return res
	}
	if res := s.checkRule(&merged, rs.phase, ""); res != nil {
		return res
	}
	r.ref, r.action, r.expression, r.description = merged.Ref, merged.Action, merged.Expression, merged.Description
	r.enabled = merged.Enabled == nil || *merged.Enabled
	r.actionParameters, r.logging = orNil(merged.ActionParameters), orNil(merged.Logging)
	if r.ref == "" {
		r.ref = r.id
	}
	r.version++
	r.updated = c.now
	rs.version++
	rs.updated = c.now
	return ok(rs.json())
}

func (s *Server) deleteRulesetRule(c *call) *response {
	rs, i, res := s.findRsRule(c)
	if res != nil {
		return res
	}
	rs.rules = slices.Delete(rs.rules, i, i+1)
	rs.version++
	rs.updated = c.now
	return ok(rs.json())
}

// orNil drops an absent or null JSON value, so that it is omitted on output.
func orNil(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	return raw
}

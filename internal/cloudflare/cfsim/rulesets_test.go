package cfsim_test

import (
	"fmt"
	"testing"

	"github.com/edgeban/edgeban/internal/cloudflare/cfsim"
)

type rulesetObj struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	Phase   string `json:"phase"`
	Version string `json:"version"`
	Rules   []struct {
		ID          string `json:"id"`
		Ref         string `json:"ref"`
		Action      string `json:"action"`
		Expression  string `json:"expression"`
		Description string `json:"description"`
		Enabled     bool   `json:"enabled"`
		Version     string `json:"version"`
	} `json:"rules"`
}

func customRule(desc, expr string) map[string]any {
	return map[string]any{"description": desc, "expression": expr, "action": "block", "enabled": true}
}

func TestRulesets(t *testing.T) {
	e := newEnv(t, cfsim.Config{})
	e.call("GET", entry, nil).must(t, 404, 10003)

	// An expression must name an existing list.
	e.call("PUT", entry, map[string]any{"rules": []any{customRule("f2b", "ip.src in $f2b_banned")}}).must(t, 400, 20120)
	listID := e.createList("f2b_banned")

	var rs rulesetObj
	e.call("PUT", entry, map[string]any{"rules": []any{customRule("theirs", "ip.src eq 203.0.113.1")}}).must(t, 200, 0).decode(t, &rs)
	if !hex32.MatchString(rs.ID) || rs.Kind != "zone" || rs.Phase != "http_request_firewall_custom" || len(rs.Rules) != 1 || rs.Version != "1" {
		t.Fatalf("ruleset = %+v", rs)
	}
	e.call("GET", entry, nil).must(t, 200, 0).decode(t, &rs)

	// POST appends.
	e.call("POST", "/zones/"+zoneA+"/rulesets/"+rs.ID+"/rules", customRule("edgeban", "ip.src in $f2b_banned")).must(t, 200, 0).decode(t, &rs)
	if len(rs.Rules) != 2 || rs.Rules[1].Description != "edgeban" || rs.Rules[1].Ref != rs.Rules[1].ID || !rs.Rules[1].Enabled {
		t.Fatalf("after append = %+v", rs)
	}
	mine := rs.Rules[1].ID
	var l listObj
	e.call("GET", lists+"/"+listID, nil).must(t, 200, 0).decode(t, &l)
	if l.NumReferencingFilters != 1 {
		t.Errorf("num_referencing_filters = %d", l.NumReferencingFilters)
	}

	// A referenced list cannot be deleted.
	e.call("DELETE", lists+"/"+listID, nil).must(t, 400, 10031)

	// PATCH by id.
	rulePath := "/zones/" + zoneA + "/rulesets/" + rs.ID + "/rules/" + mine
	e.call("PATCH", rulePath, map[string]any{"action": "managed_challenge", "expression": "ip.src in $f2b_banned", "enabled": false}).must(t, 200, 0).decode(t, &rs)
	if r := rs.Rules[1]; r.Action != "managed_challenge" || r.Enabled || r.Version != "2" || r.Description != "edgeban" {
		t.Errorf("patched = %+v", r)
	}
	e.call("PATCH", rulePath, map[string]any{"action": "managed_challenge", "expression": "ip.src in $nope"}).must(t, 400, 20120)
	e.call("PATCH", rulePath, map[string]any{"action": "rewrite", "expression": "ip.src in $f2b_banned"}).must(t, 400, 20121)

	// DELETE by id, then the list can go.
	e.call("DELETE", rulePath, nil).must(t, 200, 0).decode(t, &rs)
	if len(rs.Rules) != 1 {
		t.Errorf("after delete = %+v", rs)
	}
	e.call("DELETE", rulePath, nil).must(t, 404, 10004)
	e.call("DELETE", lists+"/"+listID, nil).must(t, 200, 0)

	// PUT replaces every rule.
	e.call("PUT", entry, map[string]any{"rules": []any{}}).must(t, 200, 0).decode(t, &rs)
	if len(rs.Rules) != 0 {
		t.Errorf("after PUT [] = %+v", rs)
	}
	// POST /rulesets for a phase that has an entry point fails.
	e.call("POST", "/zones/"+zoneA+"/rulesets", map[string]any{"name": "default", "kind": "zone", "phase": "http_request_firewall_custom", "rules": []any{}}).must(t, 400, 20217)
	e.call("POST", "/zones/"+zoneA+"/rulesets/ffffffffffffffffffffffffffffffff/rules", customRule("x", "ip.src eq 192.0.2.1")).must(t, 404, 10004)
	e.call("GET", "/zones/ffffffffffffffffffffffffffffffff/rulesets/phases/http_request_firewall_custom/entrypoint", nil).must(t, 404, 7003)

	st := e.sim.Snapshot()
	if len(st.Rulesets) != 1 || st.Rulesets[0].ZoneID != zoneA {
		t.Errorf("rulesets = %+v", st.Rulesets)
	}
}

func TestCreateRulesetAndQuota(t *testing.T) {
	e := newEnv(t, cfsim.Config{})
	var rs rulesetObj
	e.call("POST", "/zones/"+zoneB+"/rulesets", map[string]any{
		"name": "default", "kind": "zone", "phase": "http_request_firewall_custom",
		"rules": []any{customRule("one", "ip.src eq 192.0.2.1")},
	}).must(t, 200, 0).decode(t, &rs)
	path := "/zones/" + zoneB + "/rulesets/" + rs.ID + "/rules"
	for i := 2; i <= 5; i++ {
		e.call("POST", path, customRule(fmt.Sprint(i), "ip.src eq 192.0.2.1")).must(t, 200, 0)
	}
	// Free: 5 custom rules per zone.
	e.call("POST", path, customRule("6", "ip.src eq 192.0.2.1")).must(t, 400, 20122)
	// log is enterprise only.
	rules := []any{map[string]any{"expression": "ip.src eq 192.0.2.1", "action": "log"}}
	e.call("PUT", "/zones/"+zoneB+"/rulesets/phases/http_request_firewall_custom/entrypoint", map[string]any{"rules": rules}).must(t, 400, 20121)
}

package cfsim_test

import (
	"encoding/json"
	"testing"

	"github.com/edgeban/edgeban/internal/cloudflare/cfsim"
)

func TestStats(t *testing.T) {
	e := newEnv(t, cfsim.Config{})
	e.createRule(zoneRules, "block", "ip", "192.0.2.1", "")
	e.call("POST", zoneRules, ruleBody("block", "ip", "192.0.2.1", "")).must(t, 400, 10009)
	e.call("GET", zoneRules, nil).must(t, 200, 0)
	e.call("GET", "/nowhere", nil, invalid).must(t, 404, 7000)
	st := e.sim.Stats()
	if st.Requests != 4 {
		t.Errorf("requests = %d", st.Requests)
	}
	wantRoutes := map[string]int64{
		"POST /zones/{zone_id}/firewall/access_rules/rules": 2,
		"GET /zones/{zone_id}/firewall/access_rules/rules":  1,
		"GET (unknown)": 1,
	}
	for k, v := range wantRoutes {
		if st.ByRoute[k] != v {
			t.Errorf("by_route[%q] = %d, want %d (all: %v)", k, st.ByRoute[k], v, st.ByRoute)
		}
	}
	if st.ByStatus[200] != 2 || st.ByStatus[400] != 1 || st.ByStatus[404] != 1 {
		t.Errorf("by_status = %v", st.ByStatus)
	}
}

func TestAdminEndpoints(t *testing.T) {
	e := newEnv(t, cfsim.Config{})
	e.createRule(acctRules, "block", "ip", "192.0.2.1", "admin")
	id := e.createList("f2b")
	e.finish(e.submit("POST", id, []map[string]string{{"ip": "192.0.2.1"}}))

	resp, raw := e.send("GET", "/__cfsim/state", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("state: %d %s", resp.StatusCode, raw)
	}
	var st cfsim.State
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	if len(st.AccessRules[cfsim.AccountScope(acct)]) != 1 || len(st.Lists) != 1 || len(st.Lists[0].Items) != 1 ||
		len(st.BulkOperations) != 1 || len(st.AccessRules) != 4 {
		t.Errorf("state = %s", raw)
	}

	resp, raw = e.send("GET", "/__cfsim/stats", nil)
	var stats cfsim.Stats
	if err := json.Unmarshal(raw, &stats); err != nil || resp.StatusCode != 200 || stats.Requests != 4 {
		t.Errorf("stats: %d %s (%v)", resp.StatusCode, raw, err)
	}

	resp, _ = e.send("GET", "/__cfsim/reset", nil)
	if resp.StatusCode != 405 {
		t.Errorf("GET reset: %d", resp.StatusCode)
	}
	resp, _ = e.send("POST", "/__cfsim/reset", nil)
	if resp.StatusCode != 200 {
		t.Errorf("reset: %d", resp.StatusCode)
	}
	st = e.sim.Snapshot()
	if len(st.AccessRules[cfsim.AccountScope(acct)]) != 0 || len(st.Lists) != 0 || len(st.BulkOperations) != 0 {
		t.Errorf("after reset: %+v", st)
	}
	if s := e.sim.Stats(); s.Requests != 0 {
		t.Errorf("stats after reset: %+v", s)
	}
	resp, _ = e.send("GET", "/__cfsim/nothing", nil)
	if resp.StatusCode != 404 {
		t.Errorf("unknown admin path: %d", resp.StatusCode)
	}
}

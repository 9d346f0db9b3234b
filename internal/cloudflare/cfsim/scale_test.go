package cfsim_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/edgeban/edgeban/internal/cloudflare/cfsim"
)

// direct sends a request straight to the simulator's handler, in process.
// The scale test seeds this way; validating 150,000 exchanges against the
// schema would take minutes under -race, and the seeding requests are the
// same shapes the other tests validate. Every read at scale goes through
// the validated server.
func (e *env) direct(method, path string, body any) *httptest.ResponseRecorder {
	e.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		e.t.Fatal(err)
	}
	req := httptest.NewRequest(method, cfsim.APIPrefix+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+rwToken)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	e.sim.ServeHTTP(rec, req)
	return rec
}

func TestScale(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds 50,000 rules and 100,000 list items")
	}
	e := newEnv(t, cfsim.Config{Plan: cfsim.PlanEnterprise, RateLimit: -1, ListItemChanges: -1})

	// 50,000 rules, the account cap: the last thousand creates take about
	// as long as the first thousand.
	const n = 50_000
	var first, last time.Duration
	start := time.Now()
	for i := range n {
		if i == 1000 {
			first = time.Since(start)
		}
		if i == n-1000 {
			start = time.Now()
		}
		ip := fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255)
		if i%500 == 0 {
			e.createRule(acctRules, "block", "ip", ip, fmt.Sprintf("rule %d", i))
			continue
		}
		if rec := e.direct("POST", acctRules, ruleBody("block", "ip", ip, fmt.Sprintf("rule %d", i))); rec.Code != 200 {
			t.Fatalf("create %d: %d %s", i, rec.Code, rec.Body)
		}
	}
	last = time.Since(start)
	t.Logf("first 1000 creates %v, last 1000 %v", first, last)
	if last > 5*first+100*time.Millisecond {
		t.Errorf("creates slow down with size: first 1000 %v, last 1000 %v", first, last)
	}
	e.call("POST", acctRules, ruleBody("block", "ip", "192.0.2.1", "")).must(t, 400, 10016)
	var rules []accessRule
	r := e.call("GET", acctRules+"?configuration.value=10.0.100.1&notes=rule", nil).must(t, 200, 0)
	r.decode(t, &rules)
	if len(rules) != 1 {
		t.Fatalf("lookup found %d rules", len(rules))
	}
	e.call("DELETE", acctRules+"/"+rules[0].ID, nil).must(t, 200, 0)
	var info pageInfo
	r = e.call("GET", acctRules+"?per_page=100&page=300", nil).must(t, 200, 0)
	json.Unmarshal(r.ResultInfo, &info)
	if info.TotalCount != n-1 || info.Count != 100 {
		t.Errorf("result_info = %+v", info)
	}

	// 100,000 list items in one write, then every page of 500.
	id := e.createList("big")
	items := make([]map[string]string, 100_000)
	for i := range items {
		items[i] = map[string]string{"ip": fmt.Sprintf("172.%d.%d.%d", 16+i>>16, (i>>8)&255, i&255), "comment": "scale"}
	}
	rec := e.direct("POST", lists+"/"+id+"/items", items)
	if rec.Code != http.StatusOK {
		t.Fatalf("add items: %d %s", rec.Code, rec.Body)
	}
	e.clock.Advance(time.Second)
	start = time.Now()
	got := e.items(id, 500)
	t.Logf("walked %d items in %v", len(got), time.Since(start))
	if len(got) != len(items) {
		t.Fatalf("walked %d items, want %d", len(got), len(items))
	}
	// An upsert of one item and a delete of another are cheap at this size.
	op := e.submit("POST", id, []map[string]string{{"ip": "172.16.0.0", "comment": "again"}})
	if s := e.finish(op); s.Status != "completed" {
		t.Errorf("op = %+v", s)
	}
	op = e.submit("DELETE", id, map[string]any{"items": []map[string]string{{"id": got[1].ID}}})
	if s := e.finish(op); s.Status != "completed" {
		t.Errorf("op = %+v", s)
	}
	var page []listItem
	e.call("GET", lists+"/"+id+"/items?per_page=2", nil).must(t, 200, 0).decode(t, &page)
	if len(page) != 2 || page[0].Comment != "again" || page[1].ID == got[1].ID {
		t.Errorf("first page = %+v", page)
	}
}

// BenchmarkCreateRule measures one access rule create at 0 to b.N rules.
func BenchmarkCreateRule(b *testing.B) {
	sim := cfsim.New(cfsim.Config{RateLimit: -1, RuleCap: -1 >> 1, Tokens: []cfsim.Token{{Value: rwToken}}})
	bodies := make([][]byte, b.N)
	for i := range bodies {
		bodies[i], _ = json.Marshal(ruleBody("block", "ip", fmt.Sprintf("10.%d.%d.%d", (i>>16)&255, (i>>8)&255, i&255), "bench"))
	}
	b.ResetTimer()
	for i := range b.N {
		req := httptest.NewRequest("POST", cfsim.APIPrefix+acctRules, bytes.NewReader(bodies[i]))
		req.Header.Set("Authorization", "Bearer "+rwToken)
		rec := httptest.NewRecorder()
		sim.ServeHTTP(rec, req)
		if rec.Code != 200 && rec.Code != 400 {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
}

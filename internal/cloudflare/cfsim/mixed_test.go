package cfsim_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/edgeban/edgeban/internal/cloudflare/cfsim"
)

// TestMixedSequence drives a session like edgeban's through every kind of
// call, with every exchange checked against the contract: a mismatch fails
// the test.
func TestMixedSequence(t *testing.T) {
	e := newEnv(t, cfsim.Config{Plan: cfsim.PlanPro, MaxListItems: 6, RateLimit: 60, RateWindow: time.Minute, Lockout: 2 * time.Minute})

	// Start-up: verify the token, find the zone.
	e.call("GET", "/user/tokens/verify", nil).must(t, 200, 0)
	e.call("GET", "/accounts/"+acct+"/tokens/verify", nil).must(t, 200, 0)
	var zones []struct{ ID string }
	e.call("GET", "/zones?name=a.example", nil).must(t, 200, 0).decode(t, &zones)
	if len(zones) != 1 || zones[0].ID != zoneA {
		t.Fatalf("zones = %+v", zones)
	}

	// Bans as access rules; a second jail adopts the first one's rule.
	a := e.createRule(acctRules, "block", "ip", "192.0.2.1", "edgeban sshd")
	e.createRule(acctRules, "block", "ip6", "2001:db8::1", "edgeban sshd")
	e.createRule(zoneRules, "managed_challenge", "ip_range", "198.51.100.0/24", "edgeban nginx")
	e.call("POST", acctRules, ruleBody("block", "ip", "192.0.2.1", "edgeban recidive")).must(t, 400, 10009)
	var found []accessRule
	e.call("GET", acctRules+"?configuration.target=ip&configuration.value=192.0.2.1&match=all", nil).must(t, 200, 0).decode(t, &found)
	if len(found) != 1 || found[0].ID != a.ID {
		t.Fatalf("adoption lookup = %+v", found)
	}
	e.call("GET", acctRules+"?notes=EDGEBAN&per_page=1&page=2&order=mode&direction=desc", nil).must(t, 200, 0)
	e.call("PATCH", acctRules+"/"+a.ID, map[string]string{"notes": "edgeban sshd,recidive"}).must(t, 200, 0)
	e.call("POST", acctRules, ruleBody("block", "ip_range", "192.0.2.0/25", "")).must(t, 400, 10014)
	e.call("DELETE", acctRules+"/"+a.ID, nil).must(t, 200, 0)
	e.call("DELETE", acctRules+"/"+a.ID, nil).must(t, 404, 10001)
	e.call("POST", zoneRules, ruleBody("block", "ip", "192.0.2.1", ""), bearer(roToken)).must(t, 403, 10000)
	e.call("GET", zoneRules, nil, bearer("revoked-token")).must(t, 401, 1000)
	e.call("GET", userRules, nil, globalKey(email, "old-key")).must(t, 403, 9103)

	// Bans as a list and one custom rule.
	listID := e.createList("edgeban")
	e.call("POST", lists, map[string]string{"name": "edgeban_v6", "kind": "ip"}).must(t, 200, 0)
	e.call("GET", entry, nil).must(t, 404, 10003)
	var rs rulesetObj
	e.call("PUT", entry, map[string]any{"rules": []any{customRule("edgeban", "ip.src in $edgeban")}}).must(t, 200, 0).decode(t, &rs)
	e.call("POST", "/zones/"+zoneA+"/rulesets/"+rs.ID+"/rules", customRule("v6", "ip.src in $edgeban_v6")).must(t, 200, 0)

	op := e.submit("POST", listID, []map[string]string{{"ip": "192.0.2.1", "comment": "sshd"}, {"ip": "2001:db8::/64", "comment": "sshd"}})
	e.call("POST", lists+"/"+listID+"/items", []map[string]string{{"ip": "192.0.2.2"}}).must(t, 429, 10040)
	if s := e.finish(op); s.Status != "completed" {
		t.Fatalf("op = %+v", s)
	}
	items := e.items(listID, 1)
	if len(items) != 2 {
		t.Fatalf("items = %+v", items)
	}
	e.call("GET", lists+"/"+listID+"/items?search=192.0.2", nil).must(t, 200, 0)
	e.call("GET", lists+"/"+listID+"/items/"+items[0].ID, nil).must(t, 200, 0)
	// The cap: 2 + 5 > 6 fails whole.
	var five []map[string]string
	for i := range 5 {
		five = append(five, map[string]string{"ip": fmt.Sprintf("203.0.113.%d", i)})
	}
	if s := e.finish(e.submit("POST", listID, five)); s.Status != "failed" || s.Error != cfsim.MaxItemsMessage {
		t.Fatalf("op = %+v", s)
	}
	e.finish(e.submit("DELETE", listID, map[string]any{"items": []map[string]string{{"id": items[0].ID}}}))
	e.finish(e.submit("PUT", listID, []map[string]string{{"ip": "192.0.2.7"}}))
	var l listObj
	e.call("GET", lists+"/"+listID, nil).must(t, 200, 0).decode(t, &l)
	if l.NumItems != 1 || l.NumReferencingFilters != 1 {
		t.Errorf("list = %+v", l)
	}
	e.call("DELETE", lists+"/"+listID, nil).must(t, 400, 10031)
	e.call("DELETE", "/zones/"+zoneA+"/rulesets/"+rs.ID+"/rules/"+rs.Rules[0].ID, nil).must(t, 200, 0)
	e.call("DELETE", lists+"/"+listID, nil).must(t, 200, 0)
	e.call("GET", lists, nil).must(t, 200, 0)

	// Finally go over the rate limit and sit out the lockout.
	for {
		r := e.call("GET", zoneRules, nil)
		if r.Status == http.StatusTooManyRequests {
			r.must(t, 429, 971)
			break
		}
		r.must(t, 200, 0)
	}
	e.call("POST", zoneRules, ruleBody("block", "ip", "192.0.2.99", "")).must(t, 429, 971)
	e.clock.Advance(2*time.Minute + time.Second)
	e.createRule(zoneRules, "block", "ip", "192.0.2.99", "after the lockout")

	st := e.sim.Stats()
	if st.Lockouts != 1 || st.ByStatus[200] == 0 || st.ByStatus[429] < 3 {
		t.Errorf("stats = %+v", st)
	}
}

// TestConcurrentUse hammers one simulator from several goroutines; run with
// -race. Every exchange is still checked against the contract.
func TestConcurrentUse(t *testing.T) {
	e := newEnv(t, cfsim.Config{Plan: cfsim.PlanEnterprise, RateLimit: -1, BulkDelay: -1})
	listID := e.createList("shared")
	client := e.srv.Client()
	do := func(method, path string, body any) (int, []byte, error) {
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, err := http.NewRequest(method, e.srv.URL+cfsim.APIPrefix+path, rd)
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Authorization", "Bearer "+rwToken)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		return resp.StatusCode, raw, err
	}

	const workers, perWorker = 6, 40
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				// All workers race on the same addresses: exactly one create
				// of each wins, the others get 10009.
				ip := fmt.Sprintf("10.1.0.%d", i)
				status, raw, err := do("POST", zoneRules, ruleBody("block", "ip", ip, fmt.Sprint(w)))
				if err != nil || (status != 200 && status != 400) {
					t.Errorf("create %s: %d %s %v", ip, status, raw, err)
				}
				if _, _, err := do("GET", zoneRules+"?configuration.value="+ip, nil); err != nil {
					t.Error(err)
				}
				status, _, err = do("POST", lists+"/"+listID+"/items", []map[string]string{{"ip": fmt.Sprintf("10.2.%d.%d", w, i)}})
				if err != nil || (status != 200 && status != 429) {
					t.Errorf("add item: %d %v", status, err)
				}
				if _, _, err := do("GET", lists+"/"+listID+"/items?per_page=50", nil); err != nil {
					t.Error(err)
				}
				_ = e.sim.Stats()
			}
		}()
	}
	wg.Wait()
	rules := e.sim.AccessRules(cfsim.ZoneScope(zoneA))
	if len(rules) != perWorker {
		t.Errorf("%d rules, want %d", len(rules), perWorker)
	}
	st := e.sim.Stats()
	if st.ByStatus[400] != (workers-1)*perWorker {
		t.Errorf("%d duplicates, want %d", st.ByStatus[400], (workers-1)*perWorker)
	}
	_ = e.sim.Snapshot()
}

package cfsim_test

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeban/edgeban/internal/cloudflare/cfsim"
	"github.com/edgeban/edgeban/internal/cloudflare/contract"
)

func isFaultPage(r *reply) bool {
	return (r.Status == 502 || r.Status == 503 || r.Status == 520) &&
		strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") &&
		strings.HasPrefix(string(r.Raw), "<!DOCTYPE html>")
}

func TestFault5xxIsNotApplied(t *testing.T) {
	e := newEnv(t, cfsim.Config{Faults: cfsim.Faults{Error5xx: 1}})
	for range 5 {
		r := e.call("POST", acctRules, ruleBody("block", "ip", "192.0.2.1", ""))
		if !isFaultPage(r) {
			t.Fatalf("got %d %q", r.Status, r.Raw)
		}
		if r.Header.Get("Ratelimit") == "" {
			t.Error("no Ratelimit header on a 5xx")
		}
	}
	if got := e.sim.AccessRules(cfsim.AccountScope(acct)); len(got) != 0 {
		t.Errorf("an injected 5xx applied %v", got)
	}
	if st := e.sim.Stats(); st.Injected5xx != 5 || st.Applied5xx != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestFaultApplied5xx(t *testing.T) {
	e := newEnv(t, cfsim.Config{Faults: cfsim.Faults{Applied5xx: 1}})
	if r := e.call("POST", acctRules, ruleBody("block", "ip", "192.0.2.1", "")); !isFaultPage(r) {
		t.Fatalf("got %d %q", r.Status, r.Raw)
	}
	if got := e.sim.AccessRules(cfsim.AccountScope(acct)); len(got) != 1 {
		t.Fatalf("the write was not applied: %v", got)
	}
	// The client's retry gets the duplicate, which it adopts.
	e.call("POST", acctRules, ruleBody("block", "ip", "192.0.2.1", "")).must(t, 400, 10009)
	// Reads are not affected.
	e.call("GET", acctRules, nil).must(t, 200, 0)
	if st := e.sim.Stats(); st.Injected5xx != 1 || st.Applied5xx != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func statusSequence(t *testing.T, seed uint64) []int {
	e := newEnv(t, cfsim.Config{Seed: seed, RateLimit: -1, Faults: cfsim.Faults{Error5xx: 0.5}})
	var seq []int
	for range 40 {
		seq = append(seq, e.call("GET", userRules, nil).Status)
	}
	return seq
}

func TestFaultsAreReproducible(t *testing.T) {
	a, b, c := statusSequence(t, 7), statusSequence(t, 7), statusSequence(t, 8)
	if !slices.Equal(a, b) {
		t.Errorf("same seed, different faults:\n%v\n%v", a, b)
	}
	if slices.Equal(a, c) {
		t.Errorf("different seeds, same faults: %v", a)
	}
	if !slices.Contains(a, 200) || !slices.ContainsFunc(a, func(s int) bool { return s >= 500 }) {
		t.Errorf("p=0.5 gave %v", a)
	}
}

func TestFaultBurst429(t *testing.T) {
	e := newEnv(t, cfsim.Config{Faults: cfsim.Faults{Burst429Every: 2, Burst429Len: 2}})
	want := []int{200, 200, 971, 10100, 200, 200, 971, 10100, 200}
	for i, w := range want {
		r := e.call("GET", userRules, nil)
		if w == 200 {
			r.must(t, 200, 0)
			continue
		}
		r.must(t, 429, w)
		if r.Header.Get("Retry-After") != "1" {
			t.Errorf("request %d: Retry-After = %q", i, r.Header.Get("Retry-After"))
		}
	}
	if st := e.sim.Stats(); st.Injected429 != 4 || st.RateLimited != 4 {
		t.Errorf("stats = %+v", st)
	}
}

func TestFaultLatency(t *testing.T) {
	e := newEnv(t, cfsim.Config{Faults: cfsim.Faults{Latency: 40 * time.Millisecond}})
	start := time.Now()
	e.call("GET", userRules, nil).must(t, 200, 0)
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Errorf("took %v", d)
	}
}

func TestFaultDrop(t *testing.T) {
	e := newEnv(t, cfsim.Config{Faults: cfsim.Faults{Drop: 1}})
	req, _ := http.NewRequest("POST", e.srv.URL+cfsim.APIPrefix+acctRules, strings.NewReader(`{"mode":"block","configuration":{"target":"ip","value":"192.0.2.1"}}`))
	req.Header.Set("Authorization", "Bearer "+rwToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.srv.Client().Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("got a response: %d", resp.StatusCode)
	}
	if got := e.sim.AccessRules(cfsim.AccountScope(acct)); len(got) != 0 {
		t.Errorf("a dropped request applied %v", got)
	}
	if st := e.sim.Stats(); st.Drops != 1 || st.Requests != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestFaultMalformed(t *testing.T) {
	var mu sync.Mutex
	var mismatches []error
	e := newEnvReport(t, cfsim.Config{Faults: cfsim.Faults{Malformed: 1}}, func(err error) {
		mu.Lock()
		defer mu.Unlock()
		mismatches = append(mismatches, err)
	})
	resp, raw := e.send("GET", cfsim.APIPrefix+userRules, nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("got %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if !strings.HasPrefix(string(raw), `{"success":true`) || strings.HasSuffix(string(raw), "}") {
		t.Errorf("body is not cut: %q", raw)
	}
	// The contract validator notices: that is the point of the fault.
	mu.Lock()
	defer mu.Unlock()
	var m *contract.Mismatch
	if len(mismatches) != 1 || !errors.As(mismatches[0], &m) || m.Part != contract.PartResponse {
		t.Errorf("mismatches = %v", mismatches)
	}
	if st := e.sim.Stats(); st.Malformed != 1 {
		t.Errorf("stats = %+v", st)
	}
}

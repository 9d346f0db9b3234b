package cfsim_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/edgeban/edgeban/internal/cloudflare/cfsim"
)

func TestRateLimitLockout(t *testing.T) {
	e := newEnv(t, cfsim.Config{RateLimit: 5, RateWindow: 10 * time.Second, Lockout: 30 * time.Second})
	for i := range 5 {
		r := e.call("GET", acctRules, nil).must(t, 200, 0)
		if got, want := r.Header.Get("Ratelimit"), fmt.Sprintf(`"default";r=%d;t=10`, 4-i); got != want {
			t.Errorf("request %d: Ratelimit = %q, want %q", i, got, want)
		}
		if got := r.Header.Get("Ratelimit-Policy"); got != `"burst";q=5;w=10` {
			t.Errorf("Ratelimit-Policy = %q", got)
		}
		if r.Header.Get("Retry-After") != "" {
			t.Error("Retry-After on a 200")
		}
	}
	// The sixth request goes over: 429 971 and a lockout.
	r := e.call("GET", acctRules, nil).must(t, 429, 971)
	if got := r.Header.Get("Retry-After"); got != "30" {
		t.Errorf("Retry-After = %q, want 30", got)
	}
	if got := r.Header.Get("Ratelimit"); got != `"default";r=0;t=30` {
		t.Errorf("Ratelimit = %q", got)
	}
	// Everything is blocked during the lockout, even after the window.
	e.clock.Advance(12500 * time.Millisecond)
	r = e.call("POST", acctRules, ruleBody("block", "ip", "192.0.2.1", "")).must(t, 429, 971)
	if got := r.Header.Get("Retry-After"); got != "18" { // 17.5 s rounded up
		t.Errorf("Retry-After = %q, want 18", got)
	}
	if n := len(e.sim.AccessRules(cfsim.AccountScope(acct))); n != 0 {
		t.Errorf("a write was applied during the lockout")
	}
	// Other credentials have their own window.
	e.call("GET", acctRules, nil, globalKey(email, gkey)).must(t, 200, 0)
	e.call("GET", acctRules, nil, bearer(roToken)).must(t, 200, 0)
	// Failed authentication is not counted.
	for range 10 {
		e.call("GET", acctRules, nil, bearer("bad")).must(t, 401, 1000)
	}
	e.call("GET", acctRules, nil, bearer(roToken)).must(t, 200, 0)

	e.clock.Advance(18 * time.Second)
	e.call("GET", acctRules, nil).must(t, 200, 0)

	st := e.sim.Stats()
	if st.Lockouts != 1 || st.RateLimited != 2 {
		t.Errorf("stats = %+v", st)
	}
}

func TestRateLimitSlidingWindow(t *testing.T) {
	e := newEnv(t, cfsim.Config{RateLimit: 3, RateWindow: 10 * time.Second})
	for range 3 {
		e.call("GET", userRules, nil).must(t, 200, 0)
		e.clock.Advance(4 * time.Second)
	}
	// At t=12 s the first request (t=0) has left the window.
	r := e.call("GET", userRules, nil).must(t, 200, 0)
	if got := r.Header.Get("Ratelimit"); got != `"default";r=0;t=2` {
		t.Errorf("Ratelimit = %q", got)
	}
}

func TestRateLimitDisabled(t *testing.T) {
	e := newEnv(t, cfsim.Config{RateLimit: -1})
	for range 20 {
		e.call("GET", userRules, nil).must(t, 200, 0)
	}
}

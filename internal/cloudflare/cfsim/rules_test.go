package cfsim_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"testing"

	"github.com/edgeban/edgeban/internal/cloudflare/cfsim"
)

var hex32 = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestAuth(t *testing.T) {
	e := newEnv(t, cfsim.Config{})
	tests := []struct {
		name   string
		method string
		path   string
		body   any
		opts   []opt
		status int
		code   int
	}{
		{"token reads", "GET", acctRules, nil, nil, 200, 0},
		{"token writes", "POST", acctRules, ruleBody("block", "ip", "192.0.2.1", "t"), nil, 200, 0},
		{"global key reads", "GET", userRules, nil, []opt{globalKey(email, gkey)}, 200, 0},
		{"global key email is case-insensitive", "GET", userRules, nil, []opt{globalKey("OPS@example.com", gkey)}, 200, 0},
		{"unknown token", "GET", acctRules, nil, []opt{bearer("nope")}, 401, 1000},
		{"token wins over a wrong key", "GET", acctRules, nil, []opt{header("X-Auth-Email", email), header("X-Auth-Key", "wrong")}, 200, 0},
		{"wrong key", "GET", acctRules, nil, []opt{globalKey(email, "wrong")}, 403, 9103},
		{"wrong email", "GET", acctRules, nil, []opt{globalKey("x@example.com", gkey)}, 403, 9103},
		{"token sent as X-Auth-Key", "GET", userRules, nil, []opt{globalKey(email, rwToken)}, 403, 9103},
		{"no credentials", "GET", acctRules, nil, []opt{noAuth, invalid}, 400, 9106},
		{"email without key", "GET", acctRules, nil, []opt{noAuth, header("X-Auth-Email", email), invalid}, 400, 9107},
		{"not a bearer header", "GET", acctRules, nil, []opt{header("Authorization", "Basic eDp5"), invalid}, 400, 6003},
		{"read-only token reads", "GET", zoneRules, nil, []opt{bearer(roToken)}, 200, 0},
		{"read-only token cannot write", "POST", zoneRules, ruleBody("block", "ip", "192.0.2.2", "t"), []opt{bearer(roToken)}, 403, 10000},
		{"read-only token cannot delete", "DELETE", acctRules + "/0123456789abcdef0123456789abcdef", nil, []opt{bearer(roToken)}, 403, 10000},
		{"demo token is off when credentials are configured", "GET", acctRules, nil, []opt{bearer(cfsim.DemoToken)}, 401, 1000},
		{"unknown account", "GET", "/accounts/ffffffffffffffffffffffffffffffff/firewall/access_rules/rules", nil, nil, 404, 7003},
		{"unknown zone", "GET", "/zones/ffffffffffffffffffffffffffffffff/firewall/access_rules/rules", nil, nil, 404, 7003},
		{"no route", "GET", "/nothing/here", nil, []opt{invalid}, 404, 7000},
		{"user rules have no GET by id", "GET", userRules + "/0123456789abcdef0123456789abcdef", nil, []opt{invalid}, 405, 7001},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.t = t
			e.call(tt.method, tt.path, tt.body, tt.opts...).must(t, tt.status, tt.code)
		})
	}
	if got := e.sim.AccessRules(cfsim.ZoneScope(zoneA)); len(got) != 0 {
		t.Errorf("read-only token created %v", got)
	}
}

func TestNoAuthFailureIsTwoErrors(t *testing.T) {
	e := newEnv(t, cfsim.Config{})
	r := e.call("GET", userRules, nil, noAuth, invalid).must(t, 400, 9106)
	if len(r.Errors) != 2 || r.Errors[1].Code != 9107 {
		t.Errorf("errors = %v, want 9106 and 9107", r.Errors)
	}
}

func TestDemoToken(t *testing.T) {
	// A non-nil empty token list keeps newEnv from adding credentials.
	e := newEnv(t, cfsim.Config{Tokens: []cfsim.Token{}})
	e.call("GET", "/user/tokens/verify", nil, bearer(cfsim.DemoToken)).must(t, 200, 0)
	e.call("POST", acctRules, ruleBody("block", "ip", "192.0.2.1", "demo"), bearer(cfsim.DemoToken)).must(t, 200, 0)
	e.call("GET", "/user/tokens/verify", nil, bearer(rwToken)).must(t, 401, 1000)
	e.call("GET", userRules, nil, globalKey(email, gkey)).must(t, 403, 9103)
}

func TestTokenVerify(t *testing.T) {
	e := newEnv(t, cfsim.Config{})
	r := e.call("GET", "/user/tokens/verify", nil).must(t, 200, 0)
	var res struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	r.decode(t, &res)
	if !hex32.MatchString(res.ID) || res.Status != "active" {
		t.Errorf("result = %+v", res)
	}
	var msg struct {
		Code    int             `json:"code"`
		Message string          `json:"message"`
		Type    json.RawMessage `json:"type"`
	}
	if len(r.Messages) != 1 || json.Unmarshal(r.Messages[0], &msg) != nil || msg.Code != 10000 || string(msg.Type) != "null" {
		t.Errorf("messages = %s", r.Messages)
	}
	e.call("GET", "/accounts/"+acct+"/tokens/verify", nil, bearer(roToken)).must(t, 200, 0)
	e.call("GET", "/accounts/ffffffffffffffffffffffffffffffff/tokens/verify", nil).must(t, 404, 7003)
	e.call("GET", "/user/tokens/verify", nil, bearer("bad")).must(t, 401, 1000)
	// The Global API Key is not a token.
	e.call("GET", "/user/tokens/verify", nil, globalKey(email, gkey), invalid).must(t, 401, 1000)
}

func TestZoneLookup(t *testing.T) {
	e := newEnv(t, cfsim.Config{})
	var zones []struct {
		ID, Name, Status string
	}
	e.call("GET", "/zones?name=b.example", nil).must(t, 200, 0).decode(t, &zones)
	if len(zones) != 1 || zones[0].ID != zoneB || zones[0].Status != "active" {
		t.Errorf("zones = %+v", zones)
	}
	e.call("GET", "/zones?name=c.example", nil).must(t, 200, 0).decode(t, &zones)
	if len(zones) != 0 {
		t.Errorf("zones = %+v", zones)
	}
	e.call("GET", "/zones", nil).must(t, 200, 0).decode(t, &zones)
	if len(zones) != 2 {
		t.Errorf("zones = %+v", zones)
	}
}

func TestCreateRule(t *testing.T) {
	scopes := []struct {
		name, path, scopeType, scopeID string
	}{
		{"user", userRules, "user", ""},
		{"account", acctRules, "organization", acct},
		{"zone", zoneRules, "zone", zoneA},
	}
	tests := []struct {
		name         string
		body         any
		opts         []opt
		status, code int
		wantValue    string
	}{
		{"ipv4", ruleBody("block", "ip", "198.51.100.4", "f2b sshd"), nil, 200, 0, "198.51.100.4"},
		{"ipv6 lower-cased", ruleBody("challenge", "ip6", "2001:DB8:0::CF", "n"), nil, 200, 0, "2001:db8::cf"},
		{"ipv4 /24", ruleBody("block", "ip_range", "198.51.100.0/24", "n"), nil, 200, 0, "198.51.100.0/24"},
		{"ipv4 /16 masked", ruleBody("block", "ip_range", "198.51.100.4/16", "n"), nil, 200, 0, "198.51.0.0/16"},
		{"ipv6 /64", ruleBody("block", "ip_range", "2001:db8:1:2::/64", "n"), nil, 200, 0, "2001:db8:1:2::/64"},
		{"asn", ruleBody("js_challenge", "asn", "as13335", "n"), nil, 200, 0, "AS13335"},
		{"country challenge", ruleBody("managed_challenge", "country", "tw", "n"), nil, 200, 0, "TW"},
		{"whitelist", ruleBody("whitelist", "ip", "203.0.113.9", "n"), nil, 200, 0, "203.0.113.9"},
		{"without notes", map[string]any{"mode": "block", "configuration": map[string]string{"target": "ip", "value": "192.0.2.77"}}, nil, 200, 0, "192.0.2.77"},
		{"duplicate in another mode", ruleBody("challenge", "ip", "198.51.100.4", "again"), nil, 400, 10009, ""},
		{"duplicate after normalisation", ruleBody("block", "ip6", "2001:db8::cf", "again"), nil, 400, 10009, ""},
		{"bad mode", ruleBody("ban", "ip", "192.0.2.3", "n"), []opt{invalid}, 400, 10012, ""},
		{"no mode", map[string]any{"configuration": map[string]string{"target": "ip", "value": "192.0.2.3"}}, []opt{invalid}, 400, 10012, ""},
		{"bad target", ruleBody("block", "ipv4", "192.0.2.3", "n"), []opt{invalid}, 400, 10013, ""},
		{"ipv6 as ip", ruleBody("block", "ip", "2001:db8::1", "n"), nil, 400, 10014, ""},
		{"not an address", ruleBody("block", "ip", "192.0.2.300", "n"), nil, 400, 10014, ""},
		{"ipv4 /20", ruleBody("block", "ip_range", "192.0.0.0/20", "n"), nil, 400, 10014, ""},
		{"ipv6 /56", ruleBody("block", "ip_range", "2001:db8::/56", "n"), nil, 400, 10014, ""},
		{"bad asn", ruleBody("block", "asn", "13335", "n"), nil, 400, 10014, ""},
		{"country block off enterprise", ruleBody("block", "country", "CN", "n"), nil, 400, 10015, ""},
		{"malformed JSON", `{"mode":`, []opt{invalid}, 400, 6007, ""},
	}
	for _, sc := range scopes {
		t.Run(sc.name, func(t *testing.T) {
			e := newEnv(t, cfsim.Config{})
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					e.t = t
					r := e.call("POST", sc.path, tt.body, tt.opts...).must(t, tt.status, tt.code)
					if tt.status != 200 {
						return
					}
					var got accessRule
					r.decode(t, &got)
					if !hex32.MatchString(got.ID) {
						t.Errorf("id %q is not 32 hex", got.ID)
					}
					if got.Configuration.Value != tt.wantValue {
						t.Errorf("value = %q, want %q", got.Configuration.Value, tt.wantValue)
					}
					if got.Scope.Type != sc.scopeType || (sc.scopeID != "" && got.Scope.ID != sc.scopeID) {
						t.Errorf("scope = %+v, want type %s id %s", got.Scope, sc.scopeType, sc.scopeID)
					}
					if len(got.AllowedModes) != 5 || got.CreatedOn == "" || got.ModifiedOn == "" {
						t.Errorf("rule = %+v", got)
					}
				})
			}
		})
	}
}

func TestCountryBlockOnEnterprise(t *testing.T) {
	e := newEnv(t, cfsim.Config{Plan: cfsim.PlanEnterprise})
	e.call("POST", acctRules, ruleBody("block", "country", "CN", "n")).must(t, 200, 0)
	e.call("POST", acctRules, ruleBody("block", "country", "T1", "tor")).must(t, 200, 0)
}

func TestRuleScopesAreSeparate(t *testing.T) {
	e := newEnv(t, cfsim.Config{})
	for _, p := range []string{userRules, acctRules, zoneRules, "/zones/" + zoneB + "/firewall/access_rules/rules"} {
		e.createRule(p, "block", "ip", "192.0.2.1", "same ip, other scope")
	}
	st := e.sim.Snapshot()
	for _, k := range []string{cfsim.UserScope, cfsim.AccountScope(acct), cfsim.ZoneScope(zoneA), cfsim.ZoneScope(zoneB)} {
		if len(st.AccessRules[k]) != 1 {
			t.Errorf("scope %s has %d rules", k, len(st.AccessRules[k]))
		}
	}
}

func TestListRules(t *testing.T) {
	e := newEnv(t, cfsim.Config{})
	seed := []struct{ mode, target, value, notes string }{
		{"block", "ip", "192.0.2.1", "Fail2Ban sshd"},
		{"block", "ip", "192.0.2.2", "Fail2Ban nginx"},
		{"challenge", "ip", "192.0.2.3", "Attack 26/02"},
		{"block", "ip6", "2001:db8::1", "fail2ban sshd"},
		{"whitelist", "ip_range", "198.51.100.0/24", "office"},
		{"block", "country", "TW", "attack 27/02"},
	}
	for _, s := range seed {
		if s.target == "country" {
			s.mode = "challenge"
		}
		e.createRule(acctRules, s.mode, s.target, s.value, s.notes)
	}
	values := func(r *reply) []string {
		var rules []accessRule
		r.decode(t, &rules)
		out := []string{}
		for _, x := range rules {
			out = append(out, x.Configuration.Value)
		}
		return out
	}
	tests := []struct {
		name  string
		query string
		opts  []opt
		want  []string
	}{
		{"all, newest first", "", nil, []string{"TW", "198.51.100.0/24", "2001:db8::1", "192.0.2.3", "192.0.2.2", "192.0.2.1"}},
		{"mode", "mode=block", nil, []string{"2001:db8::1", "192.0.2.2", "192.0.2.1"}},
		{"dotted target", "configuration.target=ip", nil, []string{"192.0.2.3", "192.0.2.2", "192.0.2.1"}},
		{"underscore target", "configuration_target=ip_range", nil, []string{"198.51.100.0/24"}},
		{"ip6 target as fail2ban sends it", "configuration.target=ip6", []opt{invalid}, []string{"2001:db8::1"}},
		{"dotted value", "configuration.value=192.0.2.2", nil, []string{"192.0.2.2"}},
		{"underscore value", "configuration_value=2001:DB8::1", nil, []string{"2001:db8::1"}},
		{"value is exact", "configuration.value=192.0.2", nil, []string{}},
		{"notes substring, any case", "notes=ATTACK", nil, []string{"TW", "192.0.2.3"}},
		{"match all", "mode=block&notes=sshd", nil, []string{"2001:db8::1", "192.0.2.1"}},
		{"match any", "mode=whitelist&notes=nginx&match=any", nil, []string{"198.51.100.0/24", "192.0.2.2"}},
		{"order by value asc", "order=configuration.value&direction=asc&configuration.target=ip", nil, []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"}},
		{"order by value desc", "order=configuration.value&direction=desc&configuration.target=ip", nil, []string{"192.0.2.3", "192.0.2.2", "192.0.2.1"}},
		{"order by mode", "order=mode&mode=challenge&match=any&notes=office", nil, []string{"TW", "192.0.2.3", "198.51.100.0/24"}},
		{"fail2ban unban query", "mode=block&configuration_target=ip&configuration_value=192.0.2.2&page=1&per_page=1&notes=" + url.QueryEscape("Fail2Ban nginx"), nil, []string{"192.0.2.2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.t = t
			got := values(e.call("GET", acctRules+"?"+tt.query, nil, tt.opts...).must(t, 200, 0))
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("invalid filters", func(t *testing.T) {
		e.t = t
		for _, q := range []string{"mode=ban", "match=some", "order=notes", "direction=up", "page=0", "per_page=x"} {
			e.call("GET", acctRules+"?"+q, nil, invalid).must(t, 400, 10018)
		}
	})
}

func TestListRulesPaging(t *testing.T) {
	e := newEnv(t, cfsim.Config{RateLimit: -1})
	for i := range 250 {
		e.createRule(zoneRules, "block", "ip", fmt.Sprintf("10.0.%d.%d", i/100, i%100), "bulk")
	}
	tests := []struct {
		query string
		want  pageInfo
	}{
		{"", pageInfo{Page: 1, PerPage: 20, Count: 20, TotalCount: 250, TotalPages: 13}},
		{"page=13", pageInfo{Page: 13, PerPage: 20, Count: 10, TotalCount: 250, TotalPages: 13}},
		{"page=14", pageInfo{Page: 14, PerPage: 20, Count: 0, TotalCount: 250, TotalPages: 13}},
		{"per_page=100&page=3", pageInfo{Page: 3, PerPage: 100, Count: 50, TotalCount: 250, TotalPages: 3}},
		{"per_page=1000", pageInfo{Page: 1, PerPage: 100, Count: 100, TotalCount: 250, TotalPages: 3}},
		{"per_page=5&mode=block", pageInfo{Page: 1, PerPage: 5, Count: 5, TotalCount: 250, TotalPages: 50}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			e.t = t
			r := e.call("GET", zoneRules+"?"+tt.query, nil).must(t, 200, 0)
			var info pageInfo
			if err := json.Unmarshal(r.ResultInfo, &info); err != nil {
				t.Fatal(err)
			}
			if info != tt.want {
				t.Errorf("result_info = %+v, want %+v", info, tt.want)
			}
			var rules []accessRule
			r.decode(t, &rules)
			if len(rules) != tt.want.Count {
				t.Errorf("%d rules, want %d", len(rules), tt.want.Count)
			}
		})
	}
	// Walking the pages sees every rule once.
	seen := map[string]bool{}
	for page := 1; ; page++ {
		var rules []accessRule
		e.call("GET", zoneRules+"?per_page=100&page="+fmt.Sprint(page), nil).must(t, 200, 0).decode(t, &rules)
		if len(rules) == 0 {
			break
		}
		for _, r := range rules {
			if seen[r.ID] {
				t.Fatalf("rule %s seen twice", r.ID)
			}
			seen[r.ID] = true
		}
	}
	if len(seen) != 250 {
		t.Errorf("saw %d rules, want 250", len(seen))
	}
}

func TestGetPatchDeleteRule(t *testing.T) {
	e := newEnv(t, cfsim.Config{})
	a := e.createRule(acctRules, "block", "ip", "192.0.2.10", "jail a")
	e.clock.Advance(1e9)

	var got accessRule
	e.call("GET", acctRules+"/"+a.ID, nil).must(t, 200, 0).decode(t, &got)
	if got.ID != a.ID || got.Notes != "jail a" {
		t.Errorf("get = %+v", got)
	}
	e.call("PATCH", acctRules+"/"+a.ID, map[string]string{"mode": "managed_challenge", "notes": "jail b"}).must(t, 200, 0).decode(t, &got)
	if got.Mode != "managed_challenge" || got.Notes != "jail b" || got.ModifiedOn == got.CreatedOn {
		t.Errorf("patched = %+v", got)
	}
	e.call("PATCH", acctRules+"/"+a.ID, map[string]string{"mode": "ban"}, invalid).must(t, 400, 10012)
	e.call("PATCH", acctRules+"/"+a.ID, map[string]any{"configuration": map[string]string{"target": "ip", "value": "192.0.2.11"}}).must(t, 400, 10017)
	e.call("PATCH", acctRules+"/ffffffffffffffffffffffffffffffff", map[string]string{"notes": "x"}).must(t, 404, 10001)

	// Delete without a body (SDKs, fail2ban), then again: 404 10001.
	var del struct{ ID string }
	e.call("DELETE", acctRules+"/"+a.ID, nil).must(t, 200, 0).decode(t, &del)
	if del.ID != a.ID {
		t.Errorf("deleted id %q", del.ID)
	}
	e.call("DELETE", acctRules+"/"+a.ID, nil).must(t, 404, 10001)
	e.call("GET", acctRules+"/"+a.ID, nil).must(t, 404, 10001)

	// User level: PATCH and DELETE by id, with an empty JSON body.
	u := e.createRule(userRules, "block", "ip", "192.0.2.12", "u")
	e.call("PATCH", userRules+"/"+u.ID, map[string]string{"notes": "u2"}).must(t, 200, 0)
	e.call("DELETE", userRules+"/"+u.ID, "{}").must(t, 200, 0)

	// Zone level: GET by id (current API), DELETE with a cascade body.
	z := e.createRule(zoneRules, "block", "ip", "192.0.2.13", "z")
	e.call("GET", zoneRules+"/"+z.ID, nil).must(t, 200, 0)
	e.call("DELETE", zoneRules+"/"+z.ID, map[string]string{"cascade": "none"}).must(t, 200, 0)
	e.call("DELETE", zoneRules+"/"+z.ID, map[string]string{"cascade": "none"}).must(t, 404, 10001)
	// A rule of another scope is not found through this one.
	b := e.createRule(acctRules, "block", "ip", "192.0.2.14", "b")
	e.call("DELETE", zoneRules+"/"+b.ID, nil).must(t, 404, 10001)
}

func TestDeleteCascade(t *testing.T) {
	zoneBRules := "/zones/" + zoneB + "/firewall/access_rules/rules"
	tests := []struct {
		cascade   string
		modeB     string
		wantBLeft int
	}{
		{"none", "block", 1},
		{"basic", "block", 0},
		{"basic", "challenge", 1},
		{"aggressive", "challenge", 0},
	}
	for _, tt := range tests {
		t.Run(tt.cascade+"/"+tt.modeB, func(t *testing.T) {
			e := newEnv(t, cfsim.Config{})
			a := e.createRule(zoneRules, "block", "ip", "192.0.2.1", "n")
			e.createRule(zoneBRules, tt.modeB, "ip", "192.0.2.1", "n")
			e.call("DELETE", zoneRules+"/"+a.ID, map[string]string{"cascade": tt.cascade}).must(t, 200, 0)
			if got := len(e.sim.AccessRules(cfsim.ZoneScope(zoneB))); got != tt.wantBLeft {
				t.Errorf("zone B has %d rules, want %d", got, tt.wantBLeft)
			}
		})
	}
}

func TestRuleCap(t *testing.T) {
	e := newEnv(t, cfsim.Config{RuleCap: 3})
	e.createRule(userRules, "block", "ip", "192.0.2.1", "")
	e.createRule(acctRules, "block", "ip", "192.0.2.2", "")
	r := e.createRule(zoneRules, "block", "ip", "192.0.2.3", "")
	e.call("POST", acctRules, ruleBody("block", "ip", "192.0.2.4", "")).must(t, 400, 10016)
	// A duplicate is still a duplicate at the cap.
	e.call("POST", zoneRules, ruleBody("block", "ip", "192.0.2.3", "")).must(t, 400, 10009)
	e.call("DELETE", zoneRules+"/"+r.ID, nil).must(t, 200, 0)
	e.createRule(acctRules, "block", "ip", "192.0.2.4", "")
}

func TestNotEntitled(t *testing.T) {
	e := newEnv(t, cfsim.Config{NotEntitled: []string{"zone", "user"}})
	e.call("POST", zoneRules, ruleBody("block", "ip", "192.0.2.1", "")).must(t, 403, 10010)
	e.call("POST", userRules, ruleBody("block", "ip", "192.0.2.1", "")).must(t, 403, 10010)
	e.createRule(acctRules, "block", "ip", "192.0.2.1", "")
}

func TestZoneListInherited(t *testing.T) {
	e := newEnv(t, cfsim.Config{ZoneListInherited: true})
	e.createRule(userRules, "block", "ip", "192.0.2.1", "user")
	e.createRule(acctRules, "block", "ip", "192.0.2.2", "account")
	e.createRule(zoneRules, "block", "ip", "192.0.2.3", "zone")
	var rules []accessRule
	e.call("GET", zoneRules, nil).must(t, 200, 0).decode(t, &rules)
	types := map[string]int{}
	for _, r := range rules {
		types[r.Scope.Type]++
	}
	if len(rules) != 3 || types["user"] != 1 || types["organization"] != 1 || types["zone"] != 1 {
		t.Errorf("zone list = %+v", rules)
	}
}

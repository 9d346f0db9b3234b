package cloudflare

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

const (
	acct   = "01a7362d577a6c3019a474fd6f485823"
	zoneID = "023e105f4ecef8ad9ca31a8372d0c353"
	ruleID = "92f17202ed8bd63d69a66b86a49a8f6b"
	listID = "2c0fc9fa937b11eaa1b71c4d701ab86e"
	opID   = "4da8780eeb215e6cb7f48dd981c4ea02"
	rsID   = "2f2feab2026849078ba485f918791bdc"
)

// ruleJSON is an access rule as the API returns it.
func ruleJSON(id, value, scopeType string) json.RawMessage {
	scope := ""
	if scopeType != "" {
		scope = `,"scope":{"id":"` + acct + `","email":"` + testEmail + `","type":"` + scopeType + `"}`
	}
	return json.RawMessage(`{"id":"` + id + `","mode":"block",
	 "allowed_modes":["whitelist","block","challenge","js_challenge","managed_challenge"],
	 "configuration":{"target":"ip","value":"` + value + `"},"notes":"edgeban sshd",
	 "created_on":"2014-01-01T05:20:00.12345Z","modified_on":"2014-01-01T05:20:00Z"` + scope + `}`)
}

var (
	created   = time.Date(2014, 1, 1, 5, 20, 0, 123450000, time.UTC)
	modified  = time.Date(2014, 1, 1, 5, 20, 0, 0, time.UTC)
	wantRule  = AccessRule{ID: ruleID, Mode: "block", Notes: "edgeban sshd", Configuration: Configuration{"ip", "198.51.100.4"}, CreatedOn: created, ModifiedOn: modified}
	userScope = Scope{Kind: ScopeUser}
	acctScope = Scope{Kind: ScopeAccount, ID: acct}
	zoneScope = Scope{Kind: ScopeZone, ID: zoneID}
)

func withScope(r AccessRule, typ string) AccessRule {
	r.Scope = &RuleScope{ID: acct, Email: testEmail, Type: typ}
	return r
}

type endpointCase struct {
	name   string
	reply  reply
	call   func(ctx context.Context, c *Client) (any, error)
	method string
	path   string     // below /client/v4
	query  url.Values // exactly these parameters
	body   string     // JSON request body; "" for none
	want   any
}

func endpointCases() []endpointCase {
	rulesPath := map[ScopeKind]string{
		ScopeUser:    "/user/firewall/access_rules/rules",
		ScopeAccount: "/accounts/" + acct + "/firewall/access_rules/rules",
		ScopeZone:    "/zones/" + zoneID + "/firewall/access_rules/rules",
	}
	var cases []endpointCase
	for _, s := range []Scope{userScope, acctScope, zoneScope} {
		scopeType := "user"
		want := withScope(wantRule, scopeType)
		if s.Kind == ScopeZone {
			scopeType, want = "", wantRule // the zone schema has no scope
		}
		deleteBody := ""
		if s.Kind == ScopeZone {
			deleteBody = `{"cascade":"none"}`
		}
		cases = append(cases,
			endpointCase{
				name:  "CreateAccessRule/" + string(s.Kind),
				reply: ok(ruleJSON(ruleID, "198.51.100.4", scopeType)),
				call: func(ctx context.Context, c *Client) (any, error) {
					return c.CreateAccessRule(ctx, s, "block", Configuration{"ip", "198.51.100.4"}, "edgeban sshd")
				},
				method: "POST", path: rulesPath[s.Kind],
				body: `{"mode":"block","configuration":{"target":"ip","value":"198.51.100.4"},"notes":"edgeban sshd"}`,
				want: want,
			},
			endpointCase{
				name: "ListAccessRules/" + string(s.Kind),
				reply: okInfo([]json.RawMessage{ruleJSON(ruleID, "198.51.100.4", scopeType)},
					map[string]int{"page": 2, "per_page": 20, "count": 1, "total_count": 21, "total_pages": 2}),
				call: func(ctx context.Context, c *Client) (any, error) {
					rules, info, err := c.ListAccessRules(ctx, s, RuleFilter{Mode: "block", Target: "ip", Value: "198.51.100.4",
						Notes: "edgeban sshd", Match: "all", Order: "mode", Direction: "desc", Page: 2, PerPage: 20})
					return []any{rules, info}, err
				},
				method: "GET", path: rulesPath[s.Kind],
				query: url.Values{"mode": {"block"}, "configuration.target": {"ip"}, "configuration.value": {"198.51.100.4"},
					"notes": {"edgeban sshd"}, "match": {"all"}, "order": {"mode"}, "direction": {"desc"}, "page": {"2"}, "per_page": {"20"}},
				want: []any{[]AccessRule{want}, ResultInfo{Page: 2, PerPage: 20, Count: 1, TotalCount: 21, TotalPages: 2}},
			},
			endpointCase{
				name:  "UpdateAccessRule/" + string(s.Kind),
				reply: ok(ruleJSON(ruleID, "198.51.100.4", scopeType)),
				call: func(ctx context.Context, c *Client) (any, error) {
					return c.UpdateAccessRule(ctx, s, ruleID, "managed_challenge", "")
				},
				method: "PATCH", path: rulesPath[s.Kind] + "/" + ruleID,
				body: `{"mode":"managed_challenge"}`,
				want: want,
			},
			endpointCase{
				name:  "DeleteAccessRule/" + string(s.Kind),
				reply: ok(map[string]string{"id": ruleID}),
				call: func(ctx context.Context, c *Client) (any, error) {
					return nil, c.DeleteAccessRule(ctx, s, ruleID)
				},
				method: "DELETE", path: rulesPath[s.Kind] + "/" + ruleID,
				body: deleteBody,
			},
		)
	}
	listJSON := json.RawMessage(`{"id":"` + listID + `","name":"f2b_banned","description":"edgeban","kind":"ip",
		"num_items":3,"num_referencing_filters":1,"created_on":"2020-01-01T08:00:00Z","modified_on":"2020-01-10T14:00:00.5Z"}`)
	wantList := List{ID: listID, Name: "f2b_banned", Description: "edgeban", Kind: "ip", NumItems: 3, NumReferencingFilters: 1,
		CreatedOn:  time.Date(2020, 1, 1, 8, 0, 0, 0, time.UTC),
		ModifiedOn: time.Date(2020, 1, 10, 14, 0, 0, 500000000, time.UTC)}
	itemsPath := "/accounts/" + acct + "/rules/lists/" + listID + "/items"
	rulesetJSON := json.RawMessage(`{"id":"` + rsID + `","name":"default","kind":"zone","phase":"http_request_firewall_custom",
		"version":"2","last_updated":"2024-01-01T00:00:00Z","rules":[{"id":"r1","ref":"edgeban","description":"edgeban",
		"expression":"ip.src in $f2b_banned","action":"block","enabled":true,"version":"1"}]}`)
	wantRuleset := Ruleset{ID: rsID, Name: "default", Kind: "zone", Phase: PhaseCustom, Rules: []RulesetRule{
		{ID: "r1", Ref: "edgeban", Description: "edgeban", Expression: "ip.src in $f2b_banned", Action: "block", Enabled: true}}}
	banRule := RulesetRule{Description: "edgeban", Expression: "ip.src in $f2b_banned", Action: "block", Ref: "edgeban", Enabled: true}
	cases = append(cases,
		endpointCase{
			name:  "Lists",
			reply: ok([]json.RawMessage{listJSON}),
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.Lists(ctx, acct)
			},
			method: "GET", path: "/accounts/" + acct + "/rules/lists",
			want: []List{wantList},
		},
		endpointCase{
			name:  "CreateList",
			reply: ok(listJSON),
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.CreateList(ctx, acct, "f2b_banned", "", "edgeban")
			},
			method: "POST", path: "/accounts/" + acct + "/rules/lists",
			body: `{"name":"f2b_banned","kind":"ip","description":"edgeban"}`,
			want: wantList,
		},
		endpointCase{
			name:  "AddListItems",
			reply: reply{status: 201, body: envelopeJSON(true, map[string]string{"operation_id": opID}, nil, nil)},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.AddListItems(ctx, acct, listID, []ListItemInput{{IP: "198.51.100.4", Comment: "sshd"}, {IP: "2001:db8::/64"}})
			},
			method: "POST", path: itemsPath,
			body: `[{"ip":"198.51.100.4","comment":"sshd"},{"ip":"2001:db8::/64"}]`,
			want: opID,
		},
		endpointCase{
			name:  "ReplaceListItems/empty",
			reply: ok(map[string]string{"operation_id": opID}),
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.ReplaceListItems(ctx, acct, listID, nil)
			},
			method: "PUT", path: itemsPath,
			body: `[]`,
			want: opID,
		},
		endpointCase{
			name:  "DeleteListItems",
			reply: ok(map[string]string{"operation_id": opID}),
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.DeleteListItems(ctx, acct, listID, []string{"i1", "i2"})
			},
			method: "DELETE", path: itemsPath,
			body: `{"items":[{"id":"i1"},{"id":"i2"}]}`,
			want: opID,
		},
		endpointCase{
			name:  "BulkOperation",
			reply: ok(map[string]string{"id": opID, "status": "completed", "completed": "2020-01-01T08:00:00Z"}),
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.BulkOperation(ctx, acct, opID)
			},
			method: "GET", path: "/accounts/" + acct + "/rules/lists/bulk_operations/" + opID,
			want: BulkOperation{ID: opID, Status: "completed", Completed: time.Date(2020, 1, 1, 8, 0, 0, 0, time.UTC)},
		},
		endpointCase{
			name:  "EntrypointRuleset",
			reply: ok(rulesetJSON),
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.EntrypointRuleset(ctx, zoneID, PhaseCustom)
			},
			method: "GET", path: "/zones/" + zoneID + "/rulesets/phases/http_request_firewall_custom/entrypoint",
			want: wantRuleset,
		},
		endpointCase{
			name:  "PutEntrypointRuleset",
			reply: ok(rulesetJSON),
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.PutEntrypointRuleset(ctx, zoneID, PhaseCustom, []RulesetRule{banRule})
			},
			method: "PUT", path: "/zones/" + zoneID + "/rulesets/phases/http_request_firewall_custom/entrypoint",
			body: `{"rules":[{"description":"edgeban","expression":"ip.src in $f2b_banned","action":"block","ref":"edgeban","enabled":true}]}`,
			want: wantRuleset,
		},
		endpointCase{
			name:  "CreateRulesetRule",
			reply: ok(rulesetJSON),
			call: func(ctx context.Context, c *Client) (any, error) {
				r := banRule
				r.Enabled = false
				return c.CreateRulesetRule(ctx, zoneID, rsID, r)
			},
			method: "POST", path: "/zones/" + zoneID + "/rulesets/" + rsID + "/rules",
			body: `{"description":"edgeban","expression":"ip.src in $f2b_banned","action":"block","ref":"edgeban","enabled":false}`,
			want: wantRuleset,
		},
		endpointCase{
			name:  "ZoneIDByName",
			reply: okInfo([]map[string]string{{"id": zoneID, "name": "example.com"}}, map[string]int{"page": 1, "per_page": 20, "count": 1, "total_count": 1}),
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.ZoneIDByName(ctx, "Example.COM.")
			},
			method: "GET", path: "/zones",
			query: url.Values{"name": {"example.com"}},
			want:  zoneID,
		},
	)
	return cases
}

// TestEndpoints checks every endpoint's method, path, query, body and
// headers, for both kinds of credential, and the decoded result.
func TestEndpoints(t *testing.T) {
	for _, auth := range []Auth{tokenAuth, keyAuth} {
		for _, tc := range endpointCases() {
			t.Run(auth.Kind()+"/"+tc.name, func(t *testing.T) {
				f := newFakeAPI(t, func(int, seen) reply { return tc.reply })
				c := mustClient(t, f, auth, &sleepRecorder{}, nil)
				got, err := tc.call(context.Background(), c)
				if err != nil {
					t.Fatalf("call: %v", err)
				}
				if tc.want != nil && !reflect.DeepEqual(got, tc.want) {
					t.Errorf("result:\n got %+v\nwant %+v", got, tc.want)
				}
				reqs := f.requests()
				if len(reqs) != 1 {
					t.Fatalf("%d requests, want 1", len(reqs))
				}
				r := reqs[0]
				if r.Method != tc.method || r.Path != "/client/v4"+tc.path {
					t.Errorf("request %s %s, want %s /client/v4%s", r.Method, r.Path, tc.method, tc.path)
				}
				wantQuery := tc.query
				if wantQuery == nil {
					wantQuery = url.Values{}
				}
				if !reflect.DeepEqual(r.Query, wantQuery) {
					t.Errorf("query %v, want %v", r.Query, wantQuery)
				}
				if !jsonEqual(t, r.Body, tc.body) {
					t.Errorf("body %s, want %s", r.Body, tc.body)
				}
				checkHeaders(t, r, auth, tc.body != "")
			})
		}
	}
}

func checkHeaders(t *testing.T, r seen, auth Auth, hasBody bool) {
	t.Helper()
	if auth.Token != "" {
		if got := r.Header.Get("Authorization"); got != "Bearer "+auth.Token {
			t.Errorf("Authorization = %q", got)
		}
		if r.Header.Get("X-Auth-Key") != "" || r.Header.Get("X-Auth-Email") != "" {
			t.Error("token request also sent X-Auth headers")
		}
	} else {
		if r.Header.Get("X-Auth-Email") != auth.Email || r.Header.Get("X-Auth-Key") != auth.Key {
			t.Errorf("X-Auth-Email/Key = %q/%q", r.Header.Get("X-Auth-Email"), r.Header.Get("X-Auth-Key"))
		}
		if r.Header.Get("Authorization") != "" {
			t.Error("key request also sent Authorization")
		}
	}
	if got := r.Header.Get("Accept"); got != "application/json" {
		t.Errorf("Accept = %q", got)
	}
	if ct := r.Header.Get("Content-Type"); hasBody != (ct == "application/json") {
		t.Errorf("Content-Type = %q with body %v", ct, hasBody)
	}
}

func TestVerifyToken(t *testing.T) {
	tests := []struct {
		name    string
		account string
		path    string
		reply   reply
		want    TokenStatus
		wantErr func(error) bool
	}{
		{
			name: "user token", path: "/user/tokens/verify",
			reply: reply{body: `{"result":{"id":"ed17574386854bf78a67040be0a770b0","status":"active","expires_on":"2030-01-01T00:00:00Z"},
				"success":true,"errors":[],"messages":[{"code":10000,"message":"This API Token is valid and active","type":null}]}`},
			want: TokenStatus{ID: "ed17574386854bf78a67040be0a770b0", Status: "active", ExpiresOn: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)},
		},
		{
			name: "account token", account: acct, path: "/accounts/" + acct + "/tokens/verify",
			reply: ok(map[string]string{"id": "x", "status": "disabled", "not_before": "2020-01-01T00:00:00Z"}),
			want:  TokenStatus{ID: "x", Status: "disabled", NotBefore: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)},
		},
		{
			name: "invalid token", path: "/user/tokens/verify",
			reply:   fail(401, 1000, "Invalid API Token"),
			wantErr: IsPermanent,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAPI(t, func(int, seen) reply { return tc.reply })
			c := mustClient(t, f, tokenAuth, &sleepRecorder{}, nil)
			got, err := c.VerifyToken(context.Background(), tc.account)
			if tc.wantErr != nil {
				if err == nil || !tc.wantErr(err) {
					t.Fatalf("err = %v", err)
				}
				if n := len(f.requests()); n != 1 {
					t.Errorf("%d attempts for a permanent error, want 1", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if p := f.requests()[0].Path; p != "/client/v4"+tc.path {
				t.Errorf("path %s", p)
			}
		})
	}
	t.Run("key auth", func(t *testing.T) {
		f := newFakeAPI(t, func(int, seen) reply { return ok(nil) })
		c := mustClient(t, f, keyAuth, nil, nil)
		if _, err := c.VerifyToken(context.Background(), ""); err == nil {
			t.Error("VerifyToken with a Global API Key succeeded")
		}
		if len(f.requests()) != 0 {
			t.Error("request sent")
		}
	})
}

func TestZoneIDByNameNotFound(t *testing.T) {
	f := newFakeAPI(t, func(int, seen) reply {
		return okInfo([]map[string]string{{"id": "z2", "name": "sub.example.com"}}, map[string]int{"page": 1})
	})
	c := mustClient(t, f, tokenAuth, nil, nil)
	_, err := c.ZoneIDByName(context.Background(), "example.com")
	if !IsNotFound(err) {
		t.Fatalf("err = %v, want not found", err)
	}
}

func TestEntrypointRulesetNotFound(t *testing.T) {
	f := newFakeAPI(t, func(int, seen) reply {
		return fail(404, 10003, "could not find entrypoint ruleset in the http_request_firewall_custom phase")
	})
	c := mustClient(t, f, tokenAuth, &sleepRecorder{}, nil)
	_, err := c.EntrypointRuleset(context.Background(), zoneID, PhaseCustom)
	if !IsNotFound(err) || IsRetryable(err) || !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v: IsNotFound %v, IsRetryable %v", err, IsNotFound(err), IsRetryable(err))
	}
	if n := len(f.requests()); n != 1 {
		t.Errorf("%d attempts, want 1", n)
	}
}

func TestInvalidArguments(t *testing.T) {
	f := newFakeAPI(t, func(int, seen) reply { return ok(nil) })
	c := mustClient(t, f, tokenAuth, nil, nil)
	ctx := context.Background()
	calls := map[string]func() error{
		"user scope with id": func() error {
			_, err := c.CreateAccessRule(ctx, Scope{Kind: ScopeUser, ID: "x"}, "block", Configuration{"ip", "1.2.3.4"}, "")
			return err
		},
		"unknown scope": func() error {
			_, _, err := c.ListAccessRules(ctx, Scope{Kind: "org", ID: "x"}, RuleFilter{})
			return err
		},
		"path in account id": func() error { return c.DeleteAccessRule(ctx, Scope{Kind: ScopeAccount, ID: "../zones"}, ruleID) },
		"empty zone id":      func() error { return c.DeleteAccessRule(ctx, Scope{Kind: ScopeZone}, ruleID) },
		"bad rule id":        func() error { return c.DeleteAccessRule(ctx, acctScope, "a/b") },
		"bad mode": func() error {
			_, err := c.CreateAccessRule(ctx, acctScope, "deny", Configuration{"ip", "1.2.3.4"}, "")
			return err
		},
		"empty config": func() error {
			_, err := c.CreateAccessRule(ctx, acctScope, "block", Configuration{}, "")
			return err
		},
		"empty update": func() error {
			_, err := c.UpdateAccessRule(ctx, acctScope, ruleID, "", "")
			return err
		},
		"bad list name": func() error {
			_, err := c.CreateList(ctx, acct, "f2b-banned", "ip", "")
			return err
		},
		"bad list kind": func() error {
			_, err := c.CreateList(ctx, acct, "f2b", "ipv4", "")
			return err
		},
		"no items to add": func() error {
			_, err := c.AddListItems(ctx, acct, listID, nil)
			return err
		},
		"item without ip": func() error {
			_, err := c.AddListItems(ctx, acct, listID, []ListItemInput{{IP: "192.0.2.1"}, {Comment: "x"}})
			return err
		},
		"no items to delete": func() error {
			_, err := c.DeleteListItems(ctx, acct, listID, nil)
			return err
		},
		"bad phase": func() error {
			_, err := c.EntrypointRuleset(ctx, zoneID, "../x")
			return err
		},
		"rule without expression": func() error {
			_, err := c.CreateRulesetRule(ctx, zoneID, rsID, RulesetRule{Action: "block"})
			return err
		},
		"bad zone name": func() error {
			_, err := c.ZoneIDByName(ctx, "example.com&x=1")
			return err
		},
	}
	for name, call := range calls {
		if err := call(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if n := len(f.requests()); n != 0 {
		t.Errorf("%d requests sent for invalid arguments", n)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		ok   bool
	}{
		{"token", Options{Auth: tokenAuth}, true},
		{"key", Options{Auth: keyAuth, BaseURL: "http://127.0.0.1:8080/client/v4/"}, true},
		{"no auth", Options{}, false},
		{"both", Options{Auth: Auth{Token: testToken, Email: testEmail, Key: testKey}}, false},
		{"email only", Options{Auth: Auth{Email: testEmail}}, false},
		{"key only", Options{Auth: Auth{Key: testKey}}, false},
		{"bad email", Options{Auth: Auth{Email: "admin", Key: testKey}}, false},
		{"token with newline", Options{Auth: Auth{Token: "abc\nX-Evil: 1"}}, false},
		{"relative base", Options{Auth: tokenAuth, BaseURL: "api.cloudflare.com"}, false},
		{"ftp base", Options{Auth: tokenAuth, BaseURL: "ftp://api.cloudflare.com"}, false},
		{"base with user", Options{Auth: tokenAuth, BaseURL: "https://u:p@api.cloudflare.com"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.opts)
			if (err == nil) != tc.ok {
				t.Fatalf("New: %v, want ok=%v", err, tc.ok)
			}
			if err != nil && (strings.Contains(err.Error(), testToken) || strings.Contains(err.Error(), testKey) || strings.Contains(err.Error(), "u:p@")) {
				t.Errorf("error reveals the secret: %v", err)
			}
			if c != nil && strings.HasSuffix(c.base, "/") {
				t.Errorf("base %q keeps its trailing slash", c.base)
			}
		})
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	var target *fakeAPI
	target = newFakeAPI(t, func(int, seen) reply { return ok(nil) })
	f := newFakeAPI(t, func(int, seen) reply {
		return reply{status: http.StatusTemporaryRedirect, header: map[string]string{"Location": target.URL + "/steal"}}
	})
	c := mustClient(t, f, keyAuth, &sleepRecorder{}, nil)
	err := c.DeleteAccessRule(context.Background(), acctScope, ruleID)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusTemporaryRedirect {
		t.Fatalf("err = %v, want an APIError with status 307", err)
	}
	if n := len(target.requests()); n != 0 {
		t.Errorf("redirect followed with credentials (%d requests)", n)
	}
}

package contract_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/edgeban/edgeban/internal/cloudflare/contract"
)

// Example identifiers.
const (
	acct  = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
	zone  = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
	rid   = "92f17202ed8bd63d69a66b86a49a8f6b"
	lid   = "2c0fc9fa937b11eaa1b71c4d701ab86e"
	opid  = "4da8780eeb215e6cb7f48dd981c4ea02"
	stamp = "2026-11-24T10:00:00.12345Z"
)

const (
	ruleJSON    = `{"id":"` + rid + `","paused":false,"mode":"block","allowed_modes":["whitelist","block","challenge","js_challenge","managed_challenge"],"configuration":{"target":"ip","value":"198.51.100.4"},"notes":"f2b","created_on":"` + stamp + `","modified_on":"` + stamp + `","scope":{"id":"` + acct + `","type":"organization"}}`
	listJSON    = `{"id":"` + lid + `","name":"f2b","kind":"ip","num_items":1,"num_referencing_filters":0,"created_on":"` + stamp + `","modified_on":"` + stamp + `"}`
	itemJSON    = `{"id":"` + lid + `","ip":"2001:db8::/64","comment":"sshd","created_on":"` + stamp + `","modified_on":"` + stamp + `"}`
	rulesetJSON = `{"id":"` + lid + `","name":"default","description":"","kind":"zone","phase":"http_request_firewall_custom","version":"2","last_updated":"` + stamp + `","rules":[{"id":"` + rid + `","version":"1","action":"managed_challenge","expression":"ip.src in $f2b","description":"edgeban","enabled":true,"ref":"` + rid + `","last_updated":"` + stamp + `"}]}`
	dup         = `{"success":false,"errors":[{"code":10009,"message":"firewallaccessrules.api.duplicate_of_existing"}],"messages":[],"result":null}`
	rate971     = `{"success":false,"errors":[{"code":971,"message":"Please wait and consider throttling your request speed"}],"messages":[],"result":null}`
)

func ok(result string) string {
	return `{"success":true,"errors":[],"messages":[],"result":` + result + `}`
}

func okInfo(result, info string) string {
	return `{"success":true,"errors":[],"messages":[],"result":` + result + `,"result_info":` + info + `}`
}

func load(t *testing.T) *contract.Validator {
	t.Helper()
	v, err := contract.Load(contract.SchemaPath(t))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// exchange is a test case: the request and the response as on the wire.
type exchange struct {
	name        string
	method      string
	target      string // path under /client/v4, with the query
	auth        string // "token", "key" or "" for none
	body        string
	status      int
	contentType string // default application/json
	resp        string
	// want lists the parts expected to mismatch, in order.
	want []contract.Part
}

func (x exchange) build() *contract.Exchange {
	u, err := url.Parse(x.target)
	if err != nil {
		panic(err)
	}
	if !strings.HasPrefix(u.Path, "/__") {
		u.Path = contract.BasePath + u.Path
	}
	h := http.Header{}
	switch x.auth {
	case "token":
		h.Set("Authorization", "Bearer tok")
	case "key":
		h.Set("X-Auth-Email", "ops@example.com")
		h.Set("X-Auth-Key", "key")
	}
	if x.body != "" {
		h.Set("Content-Type", "application/json")
	}
	ct := x.contentType
	if ct == "" {
		ct = "application/json"
	}
	return &contract.Exchange{
		Method: x.method, URL: u, RequestHeader: h, RequestBody: []byte(x.body),
		Status: x.status, ResponseHeader: http.Header{"Content-Type": {ct}}, ResponseBody: []byte(x.resp),
	}
}

var (
	acctRules = "/accounts/" + acct + "/firewall/access_rules/rules"
	zoneRules = "/zones/" + zone + "/firewall/access_rules/rules"
	userRules = "/user/firewall/access_rules/rules"
	lists     = "/accounts/" + acct + "/rules/lists"
	entry     = "/zones/" + zone + "/rulesets/phases/http_request_firewall_custom/entrypoint"
)

var exchanges = []exchange{
	// Requests and responses Cloudflare really sends: accepted.
	{name: "create account rule with a token", method: "POST", target: acctRules, auth: "token",
		body: `{"mode":"block","configuration":{"target":"ip","value":"198.51.100.4"},"notes":"f2b"}`, status: 200, resp: ok(ruleJSON)},
	{name: "create user rule with the global key", method: "POST", target: userRules, auth: "key",
		body: `{"mode":"challenge","configuration":{"target":"ip6","value":"2001:db8::1"}}`, status: 200, resp: ok(ruleJSON)},
	{name: "create zone rule without notes", method: "POST", target: zoneRules, auth: "token",
		body: `{"mode":"block","configuration":{"target":"ip_range","value":"198.51.100.0/24"}}`, status: 200, resp: ok(ruleJSON)},
	{name: "duplicate", method: "POST", target: zoneRules, auth: "token",
		body: `{"mode":"block","configuration":{"target":"ip","value":"198.51.100.4"},"notes":"x"}`, status: 400, resp: dup},
	{name: "list rules with filters", method: "GET", target: acctRules + "?mode=block&configuration.target=ip&configuration.value=198.51.100.4&notes=f2b&match=all&order=mode&direction=desc&page=1&per_page=100", auth: "token",
		status: 200, resp: okInfo("["+ruleJSON+"]", `{"page":1,"per_page":100,"count":1,"total_count":1,"total_pages":1}`)},
	{name: "get account rule", method: "GET", target: acctRules + "/" + rid, auth: "token", status: 200, resp: ok(ruleJSON)},
	{name: "patch account rule", method: "PATCH", target: acctRules + "/" + rid, auth: "token", body: `{"notes":"x"}`, status: 200, resp: ok(ruleJSON)},
	{name: "delete account rule without a body", method: "DELETE", target: acctRules + "/" + rid, auth: "token", status: 200, resp: ok(`{"id":"` + rid + `"}`)},
	{name: "delete zone rule with cascade", method: "DELETE", target: zoneRules + "/" + rid, auth: "token", body: `{"cascade":"none"}`, status: 200, resp: ok(`{"id":"` + rid + `"}`)},
	{name: "delete a missing rule", method: "DELETE", target: userRules + "/" + rid, auth: "key", status: 404,
		resp: `{"success":false,"errors":[{"code":10001,"message":"firewallaccessrules.api.not_found"}],"messages":[],"result":null}`},
	{name: "lists", method: "GET", target: lists, auth: "token", status: 200, resp: ok("[" + listJSON + "]")},
	{name: "create list", method: "POST", target: lists, auth: "token", body: `{"name":"f2b","kind":"ip"}`, status: 200, resp: ok(listJSON)},
	{name: "delete list", method: "DELETE", target: lists + "/" + lid, auth: "token", status: 200, resp: ok(`{"id":"` + lid + `"}`)},
	{name: "items page", method: "GET", target: lists + "/" + lid + "/items?per_page=500&search=2001", auth: "token", status: 200,
		resp: okInfo("["+itemJSON+"]", `{"cursors":{"after":"YWZ0ZXI"}}`)},
	{name: "one item", method: "GET", target: "/accounts/" + acct + "/rules/lists/" + lid + "/items/" + lid, auth: "token", status: 200, resp: ok(itemJSON)},
	{name: "add items", method: "POST", target: lists + "/" + lid + "/items", auth: "token", body: `[{"ip":"192.0.2.1","comment":"sshd"}]`, status: 200,
		resp: ok(`{"operation_id":"` + opid + `"}`)},
	{name: "delete items", method: "DELETE", target: lists + "/" + lid + "/items", auth: "token", body: `{"items":[{"id":"` + lid + `"}]}`, status: 200,
		resp: ok(`{"operation_id":"` + opid + `"}`)},
	{name: "write during an operation", method: "PUT", target: lists + "/" + lid + "/items", auth: "token", body: `[]`, status: 429,
		resp: `{"success":false,"errors":[{"code":10040,"message":"you have been ratelimited please wait and try again"}],"messages":[],"result":null}`},
	{name: "failed operation", method: "GET", target: "/accounts/" + acct + "/rules/lists/bulk_operations/" + opid, auth: "token", status: 200,
		resp: ok(`{"id":"` + opid + `","status":"failed","error":"This list is at the maximum number of items","completed":"` + stamp + `"}`)},
	{name: "no entry point yet", method: "GET", target: entry, auth: "token", status: 404,
		resp: `{"success":false,"errors":[{"code":10003,"message":"could not find entrypoint ruleset in the http_request_firewall_custom phase"}],"messages":[],"result":null}`},
	{name: "put entry point", method: "PUT", target: entry, auth: "token",
		body: `{"rules":[{"description":"edgeban","expression":"ip.src in $f2b","action":"managed_challenge","enabled":true}]}`, status: 200, resp: ok(rulesetJSON)},
	{name: "append custom rule", method: "POST", target: "/zones/" + zone + "/rulesets/" + lid + "/rules", auth: "key",
		body: `{"description":"edgeban","expression":"ip.src in $f2b","action":"block","enabled":true}`, status: 200, resp: ok(rulesetJSON)},
	{name: "verify token", method: "GET", target: "/user/tokens/verify", auth: "token", status: 200,
		resp: `{"success":true,"errors":[],"messages":[{"code":10000,"message":"This API Token is valid and active","type":null}],"result":{"id":"` + rid + `","status":"active"}}`},
	{name: "invalid token", method: "GET", target: "/user/tokens/verify", auth: "token", status: 401,
		resp: `{"success":false,"errors":[{"code":1000,"message":"Invalid API Token"}],"messages":[],"result":null}`},
	{name: "global rate limit", method: "GET", target: acctRules, auth: "token", status: 429, resp: rate971},
	{name: "injected 502 page", method: "POST", target: acctRules, auth: "token", body: `{"mode":"block","configuration":{"target":"ip","value":"198.51.100.4"}}`,
		status: 502, contentType: "text/html; charset=UTF-8", resp: "<!DOCTYPE html><html><body>502</body></html>"},
	{name: "allowed zone lookup", method: "GET", target: "/zones?name=example.com", auth: "token", status: 200,
		resp: okInfo(`[{"id":"`+zone+`","name":"example.com","status":"active"}]`, `{"page":1,"per_page":20,"count":1,"total_count":1,"total_pages":1}`)},
	{name: "allowed admin endpoint", method: "GET", target: "/__cfsim/stats", status: 200, resp: `{"requests":1}`},

	// Deliberately wrong: rejected.
	{name: "mode outside the enum", method: "POST", target: acctRules, auth: "token",
		body: `{"mode":"ban","configuration":{"target":"ip","value":"198.51.100.4"}}`, status: 400, resp: dup, want: []contract.Part{contract.PartRequest}},
	{name: "target outside the oneOf", method: "POST", target: zoneRules, auth: "token",
		body: `{"mode":"block","configuration":{"target":"ipv4","value":"198.51.100.4"}}`, status: 200, resp: ok(ruleJSON), want: []contract.Part{contract.PartRequest}},
	{name: "no credentials", method: "GET", target: acctRules, status: 200,
		resp: okInfo("[]", `{"page":1,"per_page":20,"count":0,"total_count":0,"total_pages":0}`), want: []contract.Part{contract.PartRequest}},
	{name: "bearer on the header of a key", method: "GET", target: "/user/tokens/verify", auth: "key", status: 401,
		resp: `{"success":false,"errors":[{"code":1000,"message":"Invalid API Token"}],"messages":[],"result":null}`, want: []contract.Part{contract.PartRequest}},
	{name: "per_page over 500", method: "GET", target: lists + "/" + lid + "/items?per_page=501", auth: "token", status: 200,
		resp: okInfo("[]", `{"cursors":{}}`), want: []contract.Part{contract.PartRequest}},
	{name: "list name with a dash", method: "POST", target: lists, auth: "token", body: `{"name":"f2b-banned","kind":"ip"}`, status: 200,
		resp: ok(listJSON), want: []contract.Part{contract.PartRequest}},
	{name: "success missing", method: "POST", target: acctRules, auth: "token",
		body: `{"mode":"block","configuration":{"target":"ip","value":"198.51.100.4"}}`, status: 200,
		resp: `{"errors":[],"messages":[],"result":` + ruleJSON + `}`, want: []contract.Part{contract.PartResponse}},
	{name: "result not null on failure", method: "POST", target: zoneRules, auth: "token",
		body: `{"mode":"block","configuration":{"target":"ip","value":"198.51.100.4"}}`, status: 400,
		resp: `{"success":false,"errors":[{"code":10009,"message":"dup"}],"messages":[],"result":{}}`, want: []contract.Part{contract.PartResponse}},
	{name: "rule without allowed_modes", method: "POST", target: userRules, auth: "token",
		body: `{"mode":"block","configuration":{"target":"ip","value":"198.51.100.4"}}`, status: 200,
		resp: ok(`{"id":"` + rid + `","mode":"block","configuration":{"target":"ip","value":"198.51.100.4"}}`), want: []contract.Part{contract.PartResponse}},
	{name: "undeclared status", method: "GET", target: acctRules, auth: "token", status: 201,
		resp: okInfo("[]", `{"page":1}`), want: []contract.Part{contract.PartResponse}},
	{name: "JSON 5xx is not a fault page", method: "GET", target: acctRules, auth: "token", status: 500,
		resp: `{"success":false,"errors":[{"code":10000,"message":"x"}],"messages":[],"result":null}`, want: []contract.Part{contract.PartResponse}},
	{name: "HTML 429 is not the documented body", method: "GET", target: acctRules, auth: "token", status: 429,
		contentType: "text/html", resp: "<html>1015</html>", want: []contract.Part{contract.PartResponse}},
	{name: "971 with a result is not the documented body", method: "GET", target: acctRules, auth: "token", status: 429,
		resp: `{"success":false,"errors":[{"code":971,"message":"slow down"}],"messages":[],"result":{}}`, want: []contract.Part{contract.PartResponse}},
	{name: "item with two values", method: "GET", target: "/accounts/" + acct + "/rules/lists/" + lid + "/items/" + lid, auth: "token", status: 200,
		resp: ok(`{"id":"` + lid + `","ip":"192.0.2.1","asn":5}`), want: []contract.Part{contract.PartResponse}},
	{name: "operation status outside the enum", method: "GET", target: "/accounts/" + acct + "/rules/lists/bulk_operations/" + opid, auth: "token", status: 200,
		resp: ok(`{"id":"` + opid + `","status":"done"}`), want: []contract.Part{contract.PartResponse}},
	{name: "not in schema", method: "GET", target: "/zones/" + zone + "/dns_records", auth: "token", status: 200, resp: ok("[]"),
		want: []contract.Part{contract.PartRoute}},
	{name: "allowed but not an envelope", method: "GET", target: "/zones?name=x", auth: "token", status: 200, resp: `[]`,
		want: []contract.Part{contract.PartResponse}},
}

func TestValidate(t *testing.T) {
	v := load(t)
	v.Allow("GET", "/zones")
	v.Allow("*", "/__cfsim/*")
	for _, x := range exchanges {
		t.Run(x.name, func(t *testing.T) {
			errs := v.Validate(context.Background(), x.build())
			var parts []contract.Part
			for _, err := range errs {
				var m *contract.Mismatch
				if !errors.As(err, &m) {
					t.Fatalf("%T is not a *Mismatch: %v", err, err)
				}
				parts = append(parts, m.Part)
				if !strings.Contains(err.Error(), x.method) || !strings.Contains(err.Error(), "-> "+strconv.Itoa(x.status)) {
					t.Errorf("error does not name the method and status: %v", err)
				}
			}
			if !equalParts(parts, x.want) {
				t.Errorf("mismatches %v, want %v; errors:\n%v", parts, x.want, errs)
			}
		})
	}
}

func TestNotInSchemaError(t *testing.T) {
	v := load(t)
	x := exchange{method: "GET", target: "/zones", auth: "token", status: 200, resp: ok("[]")}
	errs := v.Validate(context.Background(), x.build())
	if len(errs) != 1 || !errors.Is(errs[0], contract.ErrNotInSchema) {
		t.Fatalf("errors = %v", errs)
	}
	if !strings.Contains(errs[0].Error(), "GET /client/v4/zones") {
		t.Errorf("error does not name the path: %v", errs[0])
	}
}

func TestAllowPatterns(t *testing.T) {
	v := load(t)
	v.Allow("get", "/accounts/{id}/tokens/verify")
	v.Allow("*", "/__cfsim/*")
	tests := []struct {
		method, target string
		allowed        bool
	}{
		{"GET", "/accounts/" + acct + "/tokens/verify", true},
		{"POST", "/accounts/" + acct + "/tokens/verify", false},
		{"GET", "/accounts/" + acct + "/tokens/verify/x", false},
		{"POST", "/__cfsim/reset", true},
		{"GET", "/__cfsim/state", true},
	}
	for _, tt := range tests {
		x := exchange{method: tt.method, target: tt.target, auth: "token", status: 200,
			resp: `{"success":true,"errors":[],"messages":[],"result":null}`}
		errs := v.Validate(context.Background(), x.build())
		if got := len(errs) == 0; got != tt.allowed {
			t.Errorf("%s %s: allowed = %t, want %t (%v)", tt.method, tt.target, got, tt.allowed, errs)
		}
	}
}

func equalParts(a, b []contract.Part) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// recorder collects mismatches from concurrent reports.
type recorder struct {
	mu   sync.Mutex
	errs []error
}

func (r *recorder) report(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, err)
}

func (r *recorder) parts() []contract.Part {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []contract.Part
	for _, err := range r.errs {
		var m *contract.Mismatch
		if errors.As(err, &m) {
			out = append(out, m.Part)
		}
	}
	return out
}

// canned serves the response of the exchange whose method and path match.
func canned(t *testing.T, xs []exchange) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		for _, x := range xs {
			b := x.build()
			if b.Method == r.Method && b.URL.Path == r.URL.Path && string(body) == x.body {
				ct := x.contentType
				if ct == "" {
					ct = "application/json"
				}
				w.Header().Set("Content-Type", ct)
				w.WriteHeader(x.status)
				io.WriteString(w, x.resp)
				return
			}
		}
		t.Errorf("no canned response for %s %s", r.Method, r.URL)
		http.Error(w, "no canned response", 500)
	})
}

func send(t *testing.T, client *http.Client, base string, x exchange) {
	t.Helper()
	b := x.build()
	var body io.Reader
	if x.body != "" {
		body = strings.NewReader(x.body)
	}
	req, err := http.NewRequest(x.method, base+b.URL.RequestURI(), body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = b.RequestHeader
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != x.resp || resp.StatusCode != x.status {
		t.Errorf("%s: the validator changed the response: %d %q", x.name, resp.StatusCode, got)
	}
}

func TestHandlerAndTransport(t *testing.T) {
	v := load(t)
	v.Allow("GET", "/zones")
	v.Allow("*", "/__cfsim/*")
	for _, x := range exchanges {
		t.Run(x.name, func(t *testing.T) {
			// Server side.
			var server recorder
			srv := httptest.NewServer(v.Handler(canned(t, []exchange{x}), server.report))
			defer srv.Close()
			send(t, srv.Client(), srv.URL, x)
			if got := server.parts(); !equalParts(got, x.want) {
				t.Errorf("Handler: mismatches %v, want %v: %v", got, x.want, server.errs)
			}

			// Client side, against a plain server.
			plain := httptest.NewServer(canned(t, []exchange{x}))
			defer plain.Close()
			var client recorder
			c := &http.Client{Transport: v.Transport(plain.Client().Transport, client.report)}
			send(t, c, plain.URL, x)
			if got := client.parts(); !equalParts(got, x.want) {
				t.Errorf("Transport: mismatches %v, want %v: %v", got, x.want, client.errs)
			}
		})
	}
}

func TestHijackedResponseChecksOnlyTheRequest(t *testing.T) {
	v := load(t)
	var rec recorder
	h := v.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		conn.Close()
	}), rec.report)
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, _ := http.NewRequest("POST", srv.URL+contract.BasePath+acctRules, strings.NewReader(`{"mode":"ban","configuration":{"target":"ip","value":"192.0.2.1"}}`))
	req.Header.Set("Authorization", "Bearer tok")
	req.Header.Set("Content-Type", "application/json")
	if resp, err := srv.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("got a response")
	}
	if got := rec.parts(); !equalParts(got, []contract.Part{contract.PartRequest}) {
		t.Errorf("mismatches %v: %v", got, rec.errs)
	}
}

func TestSchemaPath(t *testing.T) {
	p := contract.SchemaPath(t)
	if !strings.HasSuffix(p, "shared/cloudflare/openapi-subset.json") {
		t.Errorf("SchemaPath = %q", p)
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := contract.Load("/nonexistent/openapi.json"); err == nil {
		t.Error("Load of a missing file succeeded")
	}
}

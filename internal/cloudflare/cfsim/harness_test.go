package cfsim_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeban/edgeban/internal/cloudflare/cfsim"
	"github.com/edgeban/edgeban/internal/cloudflare/contract"
)

// Test fixtures.
const (
	acct    = cfsim.DefaultAccountID
	zoneA   = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	zoneB   = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	rwToken = "rw-token-0123456789abcdefghijklmnopqrstu"
	roToken = "ro-token-0123456789abcdefghijklmnopqrstu"
	email   = "ops@example.com"
	gkey    = "0123456789abcdef0123456789abcdef01234"
)

// expectInvalid is a request header the tests set on requests that are
// deliberately outside the schema (to test the simulator's own
// validation, or its answer to an unknown route). The contract report then
// ignores the request and route mismatches of that exchange; response
// mismatches still fail the test.
const expectInvalid = "X-Test-Expect-Invalid-Request"

var (
	validatorOnce sync.Once
	validator     *contract.Validator
	validatorErr  error
)

// sharedValidator loads the contract once for the package and allows the
// operations that are not in the 2024 subset.
func sharedValidator(t *testing.T) *contract.Validator {
	t.Helper()
	path := contract.SchemaPath(t)
	validatorOnce.Do(func() {
		validator, validatorErr = contract.Load(path)
		if validatorErr != nil {
			return
		}
		validator.Allow("GET", "/zones")                                                 // zone lookup
		validator.Allow("GET", "/accounts/{account_id}/tokens/verify")                   // account-owned tokens
		validator.Allow("GET", "/zones/{zone_id}/firewall/access_rules/rules/{rule_id}") // in the current API
		validator.Allow("POST", "/zones/{zone_id}/rulesets")                             // create an entry point
		validator.Allow("*", "/__cfsim/*")                                               // admin endpoints
	})
	if validatorErr != nil {
		t.Fatalf("load contract: %v", validatorErr)
	}
	return validator
}

// fakeClock is a settable clock for Config.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a simulator behind the contract validator on a loopback server.
type env struct {
	t     *testing.T
	sim   *cfsim.Server
	srv   *httptest.Server
	clock *fakeClock
}

// newEnv starts a simulator for cfg with a fake clock (unless cfg.Now is
// set) and the default credentials (unless cfg names some). Every exchange
// goes through the contract validator and a mismatch fails the test.
func newEnv(t *testing.T, cfg cfsim.Config) *env {
	t.Helper()
	return newEnvReport(t, cfg, func(err error) { t.Errorf("%v", err) })
}

// newEnvReport is newEnv with the mismatches of exchanges that are not
// marked expectInvalid going to report.
func newEnvReport(t *testing.T, cfg cfsim.Config, report func(error)) *env {
	t.Helper()
	v := sharedValidator(t)
	e := &env{t: t}
	if cfg.Now == nil {
		e.clock = newClock()
		cfg.Now = e.clock.Now
	}
	if cfg.Tokens == nil && cfg.Email == "" {
		cfg.Tokens = []cfsim.Token{{Value: rwToken}, {Value: roToken, ReadOnly: true}}
		cfg.Email, cfg.Key = email, gkey
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Zones == nil {
		cfg.Zones = map[string]string{zoneA: "a.example", zoneB: "b.example"}
	}
	e.sim = cfsim.New(cfg)
	h := v.Handler(e.sim, func(err error) {
		var m *contract.Mismatch
		if errors.As(err, &m) && m.Part != contract.PartResponse && m.Exchange.RequestHeader.Get(expectInvalid) != "" {
			return
		}
		report(err)
	})
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	return e
}

// opt changes a request before it is sent.
type opt func(*http.Request)

func bearer(tok string) opt {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

func globalKey(mail, key string) opt {
	return func(r *http.Request) {
		r.Header.Del("Authorization")
		r.Header.Set("X-Auth-Email", mail)
		r.Header.Set("X-Auth-Key", key)
	}
}

func header(k, v string) opt { return func(r *http.Request) { r.Header.Set(k, v) } }

func noAuth(r *http.Request) { r.Header.Del("Authorization") }

// invalid marks a request that is deliberately outside the schema.
func invalid(r *http.Request) { r.Header.Set(expectInvalid, "1") }

// reply is a decoded API response.
type reply struct {
	Status int
	Header http.Header
	Raw    []byte

	Success    bool              `json:"success"`
	Errors     []apiErr          `json:"errors"`
	Messages   []json.RawMessage `json:"messages"`
	Result     json.RawMessage   `json:"result"`
	ResultInfo json.RawMessage   `json:"result_info"`
}

type apiErr struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// code returns the first error code, or 0.
func (r *reply) code() int {
	if len(r.Errors) == 0 {
		return 0
	}
	return r.Errors[0].Code
}

func (r *reply) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Result, v); err != nil {
		t.Fatalf("decode result %s: %v", r.Result, err)
	}
}

// call sends a request to path under /client/v4 with the read-write token
// (unless an opt says otherwise) and decodes the envelope. body is sent as
// is when it is a string, JSON-encoded otherwise, and not at all when nil.
func (e *env) call(method, path string, body any, opts ...opt) *reply {
	e.t.Helper()
	resp, raw := e.send(method, cfsim.APIPrefix+path, body, opts...)
	r := &reply{Status: resp.StatusCode, Header: resp.Header, Raw: raw}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, r); err != nil {
			e.t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
		if r.Success != (r.Status/100 == 2) {
			e.t.Errorf("%s %s: success %t with status %d", method, path, r.Success, r.Status)
		}
		if !r.Success && (string(r.Result) != "null" || len(r.Errors) == 0) {
			e.t.Errorf("%s %s: failure without errors or with a result: %s", method, path, raw)
		}
	}
	return r
}

func (e *env) send(method, url string, body any, opts ...opt) (*http.Response, []byte) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.srv.URL+url, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+rwToken)
	for _, o := range opts {
		o(req)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp, raw
}

// must checks the status and, for failures, the first error code.
func (r *reply) must(t *testing.T, status, code int) *reply {
	t.Helper()
	if r.Status != status || (code != 0 && r.code() != code) {
		t.Fatalf("got %d %v, want %d code %d; body %s", r.Status, r.Errors, status, code, r.Raw)
	}
	return r
}

// Paths used throughout.
const (
	userRules = "/user/firewall/access_rules/rules"
	acctRules = "/accounts/" + acct + "/firewall/access_rules/rules"
	zoneRules = "/zones/" + zoneA + "/firewall/access_rules/rules"
	lists     = "/accounts/" + acct + "/rules/lists"
	entry     = "/zones/" + zoneA + "/rulesets/phases/http_request_firewall_custom/entrypoint"
)

func ruleBody(mode, target, value, notes string) map[string]any {
	return map[string]any{"mode": mode, "configuration": map[string]string{"target": target, "value": value}, "notes": notes}
}

// accessRule is a rule as the API returns it.
type accessRule struct {
	ID            string   `json:"id"`
	Mode          string   `json:"mode"`
	AllowedModes  []string `json:"allowed_modes"`
	Configuration struct {
		Target string `json:"target"`
		Value  string `json:"value"`
	} `json:"configuration"`
	Notes      string `json:"notes"`
	CreatedOn  string `json:"created_on"`
	ModifiedOn string `json:"modified_on"`
	Scope      struct {
		ID    string `json:"id"`
		Email string `json:"email"`
		Type  string `json:"type"`
	} `json:"scope"`
}

type pageInfo struct {
	Page       int `json:"page"`
	PerPage    int `json:"per_page"`
	Count      int `json:"count"`
	TotalCount int `json:"total_count"`
	TotalPages int `json:"total_pages"`
}

func (e *env) createRule(path, mode, target, value, notes string) accessRule {
	e.t.Helper()
	var r accessRule
	e.call("POST", path, ruleBody(mode, target, value, notes)).must(e.t, 200, 0).decode(e.t, &r)
	return r
}

// createList creates an ip list and returns its id.
func (e *env) createList(name string) string {
	e.t.Helper()
	var l struct {
		ID string `json:"id"`
	}
	e.call("POST", lists, map[string]string{"name": name, "kind": "ip", "description": "test"}).must(e.t, 200, 0).decode(e.t, &l)
	return l.ID
}

// submit sends an item write and returns the operation id.
func (e *env) submit(method, listID string, body any) string {
	e.t.Helper()
	var op struct {
		OperationID string `json:"operation_id"`
	}
	e.call(method, lists+"/"+listID+"/items", body).must(e.t, 200, 0).decode(e.t, &op)
	if op.OperationID == "" {
		e.t.Fatal("no operation_id")
	}
	return op.OperationID
}

type bulkOp struct {
	ID        string `json:"id"`
	Status    string `json:"status"`
	Error     string `json:"error"`
	Completed string `json:"completed"`
}

func (e *env) op(id string) bulkOp {
	e.t.Helper()
	var op bulkOp
	e.call("GET", "/accounts/"+acct+"/rules/lists/bulk_operations/"+id, nil).must(e.t, 200, 0).decode(e.t, &op)
	return op
}

// finish advances the fake clock past the bulk delay and returns the
// operation's final state.
func (e *env) finish(id string) bulkOp {
	e.t.Helper()
	e.clock.Advance(time.Second)
	return e.op(id)
}

type listItem struct {
	ID      string `json:"id"`
	IP      string `json:"ip"`
	Comment string `json:"comment"`
}

// items reads all items of a list through the API, following cursors.
func (e *env) items(listID string, perPage int) []listItem {
	e.t.Helper()
	var all []listItem
	cursor := ""
	for {
		q := "?per_page=" + strconv.Itoa(perPage)
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		r := e.call("GET", lists+"/"+listID+"/items"+q, nil).must(e.t, 200, 0)
		var page []listItem
		r.decode(e.t, &page)
		all = append(all, page...)
		var info struct {
			Cursors struct {
				After string `json:"after"`
			} `json:"cursors"`
		}
		if err := json.Unmarshal(r.ResultInfo, &info); err != nil {
			e.t.Fatal(err)
		}
		if info.Cursors.After == "" {
			return all
		}
		cursor = info.Cursors.After
	}
}

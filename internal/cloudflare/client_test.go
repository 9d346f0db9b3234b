package cloudflare

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestDecodeResponse(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		ctype      string
		body       string
		ok         bool
		wantResult string
		wantInfo   ResultInfo
		wantCodes  []int
		reason     string // substring of Reason
		bodySnip   string // substring of Body
	}{
		{name: "success", status: 200, ctype: "application/json", ok: true,
			body: `{"success":true,"errors":[],"messages":[],"result":{"id":"x"}}`, wantResult: `{"id":"x"}`},
		{name: "success without messages, charset", status: 200, ctype: "application/json; charset=utf-8", ok: true,
			body: `{"success":true,"errors":[],"result":[]}`, wantResult: `[]`},
		{name: "201 accepted", status: 201, ctype: "application/json", ok: true,
			body: `{"success":true,"errors":[],"result":{"operation_id":"o"}}`, wantResult: `{"operation_id":"o"}`},
		{name: "messages of another shape", status: 200, ctype: "application/json", ok: true,
			body: `{"success":true,"errors":null,"messages":"hello","result":null}`, wantResult: `null`},
		{name: "result_info without total_pages", status: 200, ctype: "application/json", ok: true,
			body:       `{"success":true,"errors":[],"result":[],"result_info":{"page":1,"per_page":100,"count":0,"total_count":0}}`,
			wantResult: `[]`, wantInfo: ResultInfo{Page: 1, PerPage: 100}},
		{name: "result_info with total_pages and float", status: 200, ctype: "application/json", ok: true,
			body:       `{"success":true,"errors":[],"result":[],"result_info":{"page":2,"per_page":100.0,"count":"3","total_count":203,"total_pages":3}}`,
			wantResult: `[]`, wantInfo: ResultInfo{Page: 2, PerPage: 100, Count: 3, TotalCount: 203, TotalPages: 3}},
		{name: "cursors", status: 200, ctype: "application/json", ok: true,
			body:       `{"success":true,"errors":[],"result":[],"result_info":{"cursors":{"before":"b","after":"a"}}}`,
			wantResult: `[]`, wantInfo: ResultInfo{Cursors: struct{ Before, After string }{"b", "a"}}},
		{name: "duplicate", status: 400, ctype: "application/json",
			body:      `{"result":null,"success":false,"errors":[{"code":10009,"message":"firewallaccessrules.api.duplicate_of_existing"}],"messages":[]}`,
			wantCodes: []int{10009}},
		{name: "error with error_chain and documentation_url", status: 400, ctype: "application/json",
			body:      `{"success":false,"errors":[{"code":6003,"message":"Invalid request headers","error_chain":[{"code":6103,"message":"Invalid format for X-Auth-Key header"}],"documentation_url":"x"}],"result":null}`,
			wantCodes: []int{6003}},
		{name: "success false on 200", status: 200, ctype: "application/json",
			body:      `{"success":false,"errors":[{"code":10000,"message":"Authentication error"}],"messages":[],"result":null}`,
			wantCodes: []int{10000}},
		{name: "success false on 200 without errors", status: 200, ctype: "application/json",
			body: `{"success":false,"errors":[],"result":{"id":"x"}}`, reason: "success:false without errors"},
		{name: "success true on 500", status: 500, ctype: "application/json",
			body: `{"success":true,"errors":[],"result":{}}`, reason: "HTTP status does not"},
		{name: "no success field", status: 200, ctype: "application/json",
			body: `{"result":{"id":"x"}}`, reason: `no "success" field`},
		{name: "success is a string", status: 200, ctype: "application/json",
			body: `{"success":"true","result":{}}`, reason: "wrong type"},
		{name: "errors is an object", status: 200, ctype: "application/json",
			body: `{"success":true,"errors":{"code":1},"result":{}}`, reason: "wrong type"},
		{name: "array", status: 200, ctype: "application/json", body: `[{"success":true}]`, reason: "not an object"},
		{name: "null", status: 200, ctype: "application/json", body: `null`, reason: `no "success" field`},
		{name: "truncated", status: 200, ctype: "application/json", body: `{"success":true,"result":{"id":`, reason: "syntax error"},
		{name: "trailing garbage", status: 200, ctype: "application/json", body: `{"success":true,"result":{}} x`, reason: "syntax error"},
		{name: "empty", status: 200, ctype: "application/json", body: "  ", reason: "empty"},
		{name: "fractional code", status: 400, ctype: "application/json",
			body: `{"success":false,"errors":[{"code":10009.5,"message":"x"}]}`, reason: "not an integer"},
		{name: "html 502", status: 502, ctype: "text/html; charset=UTF-8", body: htmlBadGateway,
			reason: "non-JSON", bodySnip: "502 Bad Gateway 502 Bad Gateway cloudflare"},
		{name: "html 200", status: 200, ctype: "text/html", body: `<html>{"success":true}</html>`, reason: "non-JSON"},
		{name: "json body with text/plain", status: 200, ctype: "text/plain",
			body: `{"success":true,"errors":[],"result":{}}`, reason: "non-JSON"},
		{name: "no content type", status: 200, ctype: "", body: `{"success":true,"errors":[],"result":{}}`, reason: "without content type"},
		{name: "problem+json 429", status: 429, ctype: "application/problem+json",
			body: `{"success":false,"errors":[{"code":971,"message":"Please wait and consider throttling your request speed"}]}`, wantCodes: []int{971}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := decodeResponse(tc.status, tc.ctype, []byte(tc.body))
			if tc.ok {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				if string(res.Result) != tc.wantResult {
					t.Errorf("result %s, want %s", res.Result, tc.wantResult)
				}
				if res.Info != tc.wantInfo {
					t.Errorf("info %+v, want %+v", res.Info, tc.wantInfo)
				}
				return
			}
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v (%T), want *APIError", err, err)
			}
			if ae.Status != tc.status {
				t.Errorf("status %d", ae.Status)
			}
			for _, code := range tc.wantCodes {
				if !ae.HasCode(code) {
					t.Errorf("missing code %d in %v", code, ae.Errors)
				}
			}
			if !strings.Contains(ae.Reason, tc.reason) {
				t.Errorf("reason %q, want it to contain %q", ae.Reason, tc.reason)
			}
			if !strings.Contains(ae.Body, tc.bodySnip) {
				t.Errorf("body snippet %q, want it to contain %q", ae.Body, tc.bodySnip)
			}
			if len(ae.Body) > maxSnippet+len("…") {
				t.Errorf("body snippet is %d bytes", len(ae.Body))
			}
		})
	}
}

func TestSnippet(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain text", "plain text"},
		{"<b>bold</b> &amp; <i>x</i>", "bold & x"},
		{"a\x00b\x1b[31mc\r\nd\u2028e\u200bf", "a b [31mc d e f"},
		{"\xff\xfeok", "ok"},
		{"<!-- hidden --><p>shown</p>", "shown"},
		{"<scr", ""},
		{"<SCRIPT>alert(1)</Script>after", "after"},
		// Characters whose lowercase form has another byte length.
		{"ȺȺ<b>x</b>", "ȺȺ x"},
		{"İİİİİİİİİİİİİİİİİİİİ<b>x", "İİİİİİİİİİİİİİİİİİİİ x"},
		{strings.Repeat("é", 300), strings.Repeat("é", 100) + "…"},
	}
	for _, tc := range tests {
		if got := snippet([]byte(tc.in)); got != tc.want {
			t.Errorf("snippet(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestClassification(t *testing.T) {
	api := func(status int, envelope bool, codes ...int) *APIError {
		e := &APIError{Method: "GET", Path: "/x", Status: status, envelope: envelope}
		for _, c := range codes {
			e.Errors = append(e.Errors, ErrorDetail{Code: c, Message: "m"})
		}
		return e
	}
	type want struct{ dup, notFound, rate, retry, perm bool }
	tests := []struct {
		name string
		err  error
		want want
	}{
		{"duplicate 10009", api(400, true, 10009), want{dup: true}},
		{"not found 10001", api(404, true, 10001), want{notFound: true}},
		{"not found code on 400", api(400, true, 10001), want{notFound: true}},
		{"json 404", api(404, true, 10003), want{notFound: true}},
		{"html 404 is not a not-found", api(404, false), want{}},
		{"429", api(429, false), want{rate: true, retry: true}},
		{"971", api(429, true, 971), want{rate: true, retry: true}},
		{"10100 on 400", api(400, true, 10100), want{rate: true, retry: true}},
		{"lists 10040", api(400, true, 10040), want{rate: true, retry: true}},
		{"invalid token", api(401, true, 1000), want{perm: true}},
		{"permission", api(403, true, 10000), want{perm: true}},
		{"unknown key", api(400, true, 9103), want{perm: true}},
		{"not entitled", api(403, true, 10010), want{perm: true}},
		{"not entitled on 400", api(400, true, 10010), want{perm: true}},
		{"validation", api(400, true, 10014), want{perm: true}},
		{"html 403", api(403, false), want{perm: true}},
		{"408", api(408, false), want{retry: true}},
		{"409", api(409, true, 1), want{retry: true}},
		{"500", api(500, true, 1), want{retry: true}},
		{"html 502", api(502, false), want{retry: true}},
		{"503 with auth code", api(503, true, 10000), want{perm: true}},
		{"malformed 200", api(200, false), want{}},
		{"transport", &TransportError{Method: "GET", Path: "/x", Err: errors.New("connection reset by peer")}, want{retry: true}},
		{"attempt timeout", &TransportError{Method: "GET", Path: "/x", Err: fmt.Errorf("timed out: %w", context.DeadlineExceeded)}, want{retry: true}},
		{"cancelled", &TransportError{Method: "GET", Path: "/x", Err: context.Canceled}, want{}},
		{"bulk failed", &BulkError{OperationID: "o", Message: "This list is at the maximum number of items"}, want{}},
		{"wrapped duplicate", fmt.Errorf("ban: %w", api(400, true, 10009)), want{dup: true}},
		{"wrapped in giveUp", fmt.Errorf("x: %w (last: %w)", context.Canceled, api(503, false)), want{}},
		{"not found sentinel", fmt.Errorf("zone: %w", ErrNotFound), want{notFound: true}},
		{"nil", nil, want{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := want{IsDuplicate(tc.err), IsNotFound(tc.err), IsRateLimited(tc.err), IsRetryable(tc.err), IsPermanent(tc.err)}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if got.retry && got.perm {
				t.Error("both retryable and permanent")
			}
		})
	}
}

func TestAPIErrorString(t *testing.T) {
	e := &APIError{Method: "POST", Path: "/accounts/a/firewall/access_rules/rules", Status: 400,
		Errors: []ErrorDetail{{10009, "firewallaccessrules.api.duplicate_of_existing"}}}
	want := "cloudflare: POST /accounts/a/firewall/access_rules/rules: HTTP 400: 10009 firewallaccessrules.api.duplicate_of_existing"
	if e.Error() != want {
		t.Errorf("got  %s\nwant %s", e.Error(), want)
	}
	e = &APIError{Method: "GET", Path: "/x", Status: 502, Reason: "non-JSON response (text/html)", Body: "502 Bad Gateway", RetryAfter: 3 * time.Second}
	want = `cloudflare: GET /x: HTTP 502: non-JSON response (text/html): "502 Bad Gateway" (retry after 3s)`
	if e.Error() != want {
		t.Errorf("got  %s\nwant %s", e.Error(), want)
	}
}

func TestRetryAfterHeader(t *testing.T) {
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		h    map[string]string
		want time.Duration
		ok   bool
	}{
		{map[string]string{}, 0, false},
		{map[string]string{"Retry-After": "7"}, 7 * time.Second, true},
		{map[string]string{"Retry-After": "0"}, 0, true},
		{map[string]string{"Retry-After": "1.5"}, 1500 * time.Millisecond, true},
		{map[string]string{"Retry-After": "-3"}, 0, false},
		{map[string]string{"Retry-After": "soon"}, 0, false},
		{map[string]string{"Retry-After": "NaN"}, 0, false},
		{map[string]string{"Retry-After": "99999999999"}, maxRetryAfter, true},
		{map[string]string{"Retry-After": "Tue, 24 Nov 2026 10:00:30 GMT"}, 30 * time.Second, true},
		{map[string]string{"Retry-After": "Tue, 24 Nov 2026 09:00:00 GMT"}, 0, true},
		{map[string]string{"Retry-After-Ms": "250", "Retry-After": "9"}, 250 * time.Millisecond, true},
		{map[string]string{"Retry-After-Ms": "x", "Retry-After": "9"}, 9 * time.Second, true},
	}
	for _, tc := range tests {
		h := http.Header{}
		for k, v := range tc.h {
			h.Set(k, v)
		}
		got, ok := retryAfter(h, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("retryAfter(%v) = %v, %v; want %v, %v", tc.h, got, ok, tc.want, tc.ok)
		}
	}
}

func TestRateLimitRetry(t *testing.T) {
	body429 := `{"success":false,"errors":[{"code":971,"message":"Please wait and consider throttling your request speed"}],"messages":[],"result":null}`
	tests := []struct {
		name     string
		header   map[string]string
		ctype    string
		body     string
		wantWait time.Duration
	}{
		{"Retry-After seconds", map[string]string{"Retry-After": "7", "Ratelimit": `"default";r=0;t=7`}, "", body429, 7 * time.Second},
		{"Retry-After-Ms", map[string]string{"Retry-After-Ms": "1500"}, "", body429, 1500 * time.Millisecond},
		{"no Retry-After means lockout", nil, "", body429, 300 * time.Second},
		{"HTML 429 (edge 1015 page)", map[string]string{"Retry-After": "12"}, "text/html",
			"<html><title>Error 1015</title><body>You are being rate limited</body></html>", 12 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAPI(t, func(n int, _ seen) reply {
				if n == 0 {
					return reply{status: 429, ctype: tc.ctype, body: tc.body, header: tc.header}
				}
				return ok(ruleJSON(ruleID, "198.51.100.4", "account"))
			})
			sr := &sleepRecorder{}
			lim := &recLimiter{}
			var attempts []Attempt
			c := mustClient(t, f, tokenAuth, sr, func(o *Options) {
				o.Limiter = lim
				o.Observe = func(a Attempt) { attempts = append(attempts, a) }
			})
			before := time.Now()
			rule, err := c.CreateAccessRule(context.Background(), acctScope, "block", Configuration{"ip", "198.51.100.4"}, "n")
			if err != nil {
				t.Fatal(err)
			}
			if rule.ID != ruleID {
				t.Errorf("rule id %q", rule.ID)
			}
			if got := sr.recorded(); len(got) != 1 || got[0] != tc.wantWait {
				t.Errorf("waits %v, want [%v]", got, tc.wantWait)
			}
			if lim.waits != 2 {
				t.Errorf("Limiter.Wait called %d times, want 2 (once per attempt)", lim.waits)
			}
			if len(lim.penalties) != 1 {
				t.Fatalf("Penalize called %d times, want 1", len(lim.penalties))
			}
			if p := lim.penalties[0].Sub(before); p < tc.wantWait || p > tc.wantWait+5*time.Second {
				t.Errorf("penalty until now+%v, want now+%v", p, tc.wantWait)
			}
			if len(attempts) != 2 || attempts[0].Status != 429 || !attempts[0].Retry || attempts[0].Wait != tc.wantWait ||
				!IsRateLimited(attempts[0].Err) || attempts[1].Status != 200 || attempts[1].Err != nil || attempts[1].Retry {
				t.Errorf("attempts %+v", attempts)
			}
		})
	}
}

func TestRetryThenSuccess(t *testing.T) {
	// Two HTML 5xx pages, a connection dropped mid-response, then success.
	f := newFakeAPI(t, func(n int, _ seen) reply {
		switch n {
		case 0:
			return reply{status: 502, ctype: "text/html", body: htmlBadGateway}
		case 1:
			return reply{status: 503, ctype: "text/html", body: "<h1>Service Unavailable</h1>"}
		}
		return ok(map[string]string{"id": ruleID})
	})
	sr := &sleepRecorder{}
	c := mustClient(t, f, keyAuth, sr, nil)
	if err := c.DeleteAccessRule(context.Background(), zoneScope, ruleID); err != nil {
		t.Fatal(err)
	}
	waits := sr.recorded()
	if len(waits) != 2 {
		t.Fatalf("waits %v, want 2", waits)
	}
	for i, w := range waits {
		hi := backoffBase << i
		if w > hi || w < hi*3/4 {
			t.Errorf("wait %d = %v, want in [%v, %v]", i, w, hi*3/4, hi)
		}
	}
	for _, r := range f.requests() {
		if !jsonEqual(t, r.Body, `{"cascade":"none"}`) {
			t.Errorf("retry sent body %q", r.Body)
		}
	}
}

func TestBackoff(t *testing.T) {
	for n := 0; n < 10; n++ {
		hi := min(backoffBase<<n, backoffCap)
		for range 50 {
			if d := backoff(n); d > hi || d < hi*3/4 {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", n, d, hi*3/4, hi)
			}
		}
	}
}

func TestRetriesExhausted(t *testing.T) {
	for _, tc := range []struct {
		name       string
		maxRetries int
		attempts   int
	}{
		{"default", 0, 5},
		{"two", 2, 3},
		{"none", -1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAPI(t, func(int, seen) reply {
				return reply{status: 500, body: envelopeJSON(false, nil, []ErrorDetail{{10001 + 1000, "internal"}}, nil)}
			})
			sr := &sleepRecorder{}
			c := mustClient(t, f, tokenAuth, sr, func(o *Options) { o.MaxRetries = tc.maxRetries })
			_, err := c.Lists(context.Background(), acct)
			var ae *APIError
			if !errors.As(err, &ae) || ae.Status != 500 || !ae.HasCode(11001) {
				t.Fatalf("err = %v, want the last 500", err)
			}
			if n := len(f.requests()); n != tc.attempts {
				t.Errorf("%d attempts, want %d", n, tc.attempts)
			}
			if n := len(sr.recorded()); n != tc.attempts-1 {
				t.Errorf("%d waits, want %d", n, tc.attempts-1)
			}
		})
	}
}

func TestNotRetried(t *testing.T) {
	tests := []struct {
		name  string
		reply reply
		check func(error) bool
	}{
		{"invalid token", fail(401, 1000, "Invalid API Token"), IsPermanent},
		{"permission", fail(403, 10000, "Authentication error"), IsPermanent},
		{"unknown key", fail(400, 9103, "Unknown X-Auth-Key or X-Auth-Email"), IsPermanent},
		{"not entitled", fail(400, 10010, "firewallaccessrules.api.not_entitled"), IsPermanent},
		{"validation", fail(400, 10014, "firewallaccessrules.api.invalid_ip"), IsPermanent},
		{"duplicate", fail(400, 10009, "firewallaccessrules.api.duplicate_of_existing"), IsDuplicate},
		{"not found", fail(404, 10001, "firewallaccessrules.api.not_found"), IsNotFound},
		{"success false on 200", fail(200, 10000, "Authentication error"), IsPermanent},
		{"malformed JSON on 200", reply{body: `{"success":true,"result":{"id":`}, func(err error) bool {
			var ae *APIError
			return errors.As(err, &ae) && strings.Contains(ae.Reason, "malformed")
		}},
		{"malformed result on 200", ok([]string{"not", "a", "rule"}), func(err error) bool {
			var ae *APIError
			return errors.As(err, &ae) && strings.Contains(ae.Reason, "malformed result")
		}},
		{"bad timestamp type", ok(map[string]any{"id": ruleID, "created_on": 12}), func(err error) bool {
			return strings.Contains(fmt.Sprint(err), "malformed result")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAPI(t, func(int, seen) reply { return tc.reply })
			sr := &sleepRecorder{}
			c := mustClient(t, f, tokenAuth, sr, nil)
			_, err := c.CreateAccessRule(context.Background(), acctScope, "block", Configuration{"ip", "198.51.100.4"}, "n")
			if err == nil || !tc.check(err) {
				t.Fatalf("err = %v", err)
			}
			if IsRetryable(err) {
				t.Errorf("IsRetryable(%v)", err)
			}
			if n := len(f.requests()); n != 1 {
				t.Errorf("%d attempts, want 1", n)
			}
			if len(sr.recorded()) != 0 {
				t.Error("slept")
			}
		})
	}
}

func TestCreateSuccessWithoutID(t *testing.T) {
	f := newFakeAPI(t, func(int, seen) reply { return ok(nil) })
	c := mustClient(t, f, tokenAuth, nil, nil)
	if _, err := c.CreateAccessRule(context.Background(), acctScope, "block", Configuration{"ip", "1.2.3.4"}, ""); err == nil {
		t.Fatal("a success without a rule was accepted")
	}
}

func TestLenientTimestamps(t *testing.T) {
	f := newFakeAPI(t, func(int, seen) reply {
		return ok([]map[string]any{
			{"id": "a", "mode": "block", "configuration": map[string]string{"target": "ip", "value": "1.2.3.4"}},
			{"id": "b", "mode": "block", "created_on": "", "modified_on": nil},
			{"id": "c", "mode": "block", "created_on": "2014-01-01T05:20:00", "modified_on": "yesterday"},
		})
	})
	c := mustClient(t, f, tokenAuth, nil, nil)
	rules, _, err := c.ListAccessRules(context.Background(), acctScope, RuleFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 3 || !rules[0].CreatedOn.IsZero() || !rules[1].CreatedOn.IsZero() ||
		!rules[2].CreatedOn.Equal(modified) || !rules[2].ModifiedOn.IsZero() {
		t.Errorf("rules %+v", rules)
	}
}

func TestBodySizeCap(t *testing.T) {
	huge := `{"success":true,"errors":[],"result":"` + strings.Repeat("a", maxBodySize) + `"}`
	f := newFakeAPI(t, func(int, seen) reply { return reply{body: huge} })
	c := mustClient(t, f, tokenAuth, &sleepRecorder{}, nil)
	_, err := c.Lists(context.Background(), acct)
	var ae *APIError
	if !errors.As(err, &ae) || !strings.Contains(ae.Reason, "larger than") {
		t.Fatalf("err = %v", err)
	}
	if len(f.requests()) != 1 {
		t.Errorf("retried an oversized body")
	}
}

func TestAttemptTimeout(t *testing.T) {
	f := newFakeAPI(t, func(n int, _ seen) reply {
		if n < 2 {
			return reply{block: true}
		}
		return ok([]any{})
	})
	sr := &sleepRecorder{}
	var attempts []Attempt
	c := mustClient(t, f, tokenAuth, sr, func(o *Options) {
		o.AttemptTimeout = 50 * time.Millisecond
		o.Observe = func(a Attempt) { attempts = append(attempts, a) }
	})
	if _, err := c.Lists(context.Background(), acct); err != nil {
		t.Fatalf("after two timeouts: %v", err)
	}
	if len(attempts) != 3 {
		t.Fatalf("attempts %+v", attempts)
	}
	for _, a := range attempts[:2] {
		if !errors.Is(a.Err, context.DeadlineExceeded) || !IsRetryable(a.Err) || !a.Retry || a.Status != 0 {
			t.Errorf("attempt %+v", a)
		}
	}

	// With no retries left the timeout is returned.
	f2 := newFakeAPI(t, func(int, seen) reply { return reply{block: true} })
	c = mustClient(t, f2, tokenAuth, sr, func(o *Options) { o.AttemptTimeout = 50 * time.Millisecond; o.MaxRetries = 1 })
	_, err := c.Lists(context.Background(), acct)
	var te *TransportError
	if !errors.As(err, &te) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("err = %v", err)
	}
	if n := len(f2.requests()); n != 2 {
		t.Errorf("%d attempts, want 2", n)
	}
}

func TestContextCancellation(t *testing.T) {
	t.Run("during a request", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		f := newFakeAPI(t, func(int, seen) reply { cancel(); return reply{block: true} })
		sr := &sleepRecorder{}
		c := mustClient(t, f, tokenAuth, sr, nil)
		_, err := c.Lists(ctx, acct)
		if !errors.Is(err, context.Canceled) || IsRetryable(err) {
			t.Fatalf("err = %v", err)
		}
		if len(f.requests()) != 1 || len(sr.recorded()) != 0 {
			t.Error("retried after cancellation")
		}
	})
	t.Run("while waiting to retry", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		f := newFakeAPI(t, func(int, seen) reply { return reply{status: 503, ctype: "text/html", body: "down"} })
		c := mustClient(t, f, tokenAuth, nil, func(o *Options) {
			o.Sleep = func(ctx context.Context, d time.Duration) error { cancel(); return ctx.Err() }
		})
		_, err := c.Lists(ctx, acct)
		var ae *APIError
		if !errors.Is(err, context.Canceled) || !errors.As(err, &ae) || ae.Status != 503 {
			t.Fatalf("err = %v, want cancellation carrying the last 503", err)
		}
		if len(f.requests()) != 1 {
			t.Errorf("%d requests", len(f.requests()))
		}
	})
	t.Run("before sending", func(t *testing.T) {
		f := newFakeAPI(t, func(int, seen) reply { return ok(nil) })
		c := mustClient(t, f, tokenAuth, nil, func(o *Options) { o.Limiter = NewMemoryLimiter(1, time.Hour) })
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := c.Lists(ctx, acct); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
		if len(f.requests()) != 0 {
			t.Error("request sent with a cancelled context")
		}
	})
	t.Run("deadline shorter than Retry-After", func(t *testing.T) {
		f := newFakeAPI(t, func(int, seen) reply {
			return reply{status: 429, body: envelopeJSON(false, nil, []ErrorDetail{{971, "Please wait"}}, nil), header: map[string]string{"Retry-After": "60"}}
		})
		sr := &sleepRecorder{}
		lim := &recLimiter{}
		var attempts []Attempt
		c := mustClient(t, f, tokenAuth, sr, func(o *Options) {
			o.Limiter = lim
			o.Observe = func(a Attempt) { attempts = append(attempts, a) }
		})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := c.Lists(ctx, acct)
		var ae *APIError
		if !errors.As(err, &ae) || ae.RetryAfter != time.Minute || !IsRateLimited(err) {
			t.Fatalf("err = %v", err)
		}
		if len(sr.recorded()) != 0 || len(f.requests()) != 1 {
			t.Error("waited past the caller's deadline")
		}
		if len(lim.penalties) != 1 {
			t.Error("429 not reported to the limiter")
		}
		if len(attempts) != 1 || attempts[0].Retry {
			t.Errorf("attempts %+v", attempts)
		}
	})
}

func TestLimiterWaitError(t *testing.T) {
	f := newFakeAPI(t, func(int, seen) reply { return ok(nil) })
	lim := newMemoryLimiter(1, time.Hour, time.Now, func(ctx context.Context, d time.Duration) error {
		return context.DeadlineExceeded
	})
	c := mustClient(t, f, tokenAuth, nil, func(o *Options) { o.Limiter = lim })
	if _, err := c.Lists(context.Background(), acct); err != nil {
		t.Fatal(err)
	}
	_, err := c.Lists(context.Background(), acct)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "rate budget") {
		t.Fatalf("err = %v", err)
	}
	if n := len(f.requests()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

// TestAttemptThrottled checks that an attempt says how long the rate
// budget held it back: not at all while the budget lasts, then until the
// window frees a slot.
func TestAttemptThrottled(t *testing.T) {
	f := newFakeAPI(t, func(int, seen) reply { return ok(nil) })
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	var attempts []Attempt
	c := mustClient(t, f, tokenAuth, nil, func(o *Options) {
		o.Limiter = newMemoryLimiter(2, time.Minute, clock.now, clock.sleep)
		o.Observe = func(a Attempt) { attempts = append(attempts, a) }
	})
	for range 3 {
		if _, err := c.Lists(context.Background(), acct); err != nil {
			t.Fatal(err)
		}
	}
	var got []time.Duration
	for _, a := range attempts {
		got = append(got, a.Throttled)
	}
	if want := []time.Duration{0, 0, time.Minute}; !slices.Equal(got, want) {
		t.Fatalf("throttled %v, want %v", got, want)
	}
}

// TestSecretsNeverLeak runs failing calls with a debug logger and checks
// that neither the secrets nor anything derived from printing the options
// reveals them, even when the server echoes them back.
func TestSecretsNeverLeak(t *testing.T) {
	for _, auth := range []Auth{tokenAuth, keyAuth} {
		t.Run(auth.Kind(), func(t *testing.T) {
			f := newFakeAPI(t, func(n int, r seen) reply {
				echo := r.Header.Get("Authorization") + " " + r.Header.Get("X-Auth-Key")
				switch n % 3 {
				case 0:
					return reply{status: 502, ctype: "text/html", body: "<p>headers: " + echo + "</p>"}
				case 1:
					return fail(503, 1, "bad key "+echo)
				}
				return fail(403, 10000, "Authentication error for "+echo)
			})
			var logs bytes.Buffer
			var mu sync.Mutex
			logger := slog.New(slog.NewJSONHandler(lockedWriter{&mu, &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
			var attemptErrs []string
			opts := Options{BaseURL: f.URL, Auth: auth, HTTPClient: f.Client(), Logger: logger,
				Sleep: (&sleepRecorder{}).sleep, Observe: func(a Attempt) { attemptErrs = append(attemptErrs, fmt.Sprint(a.Err)) }}
			c, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.CreateAccessRule(context.Background(), acctScope, "block", Configuration{"ip", "1.2.3.4"}, "n")
			if err == nil {
				t.Fatal("no error")
			}
			if len(attemptErrs) != 3 {
				t.Errorf("%d attempts, want 3", len(attemptErrs))
			}
			logger.Info("options", "opts", opts, "auth", auth, "client", c)
			logger.Info("options as text", "opts", fmt.Sprintf("%v %+v %#v %s %d %x %q", opts, opts, opts, auth, auth, auth, auth))
			text := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
			text.Info("text", "opts", opts, "auth", auth, "client", c)
			printed := strings.Join([]string{
				err.Error(), fmt.Sprintf("%v", err), strings.Join(attemptErrs, "\n"),
				fmt.Sprintf("%v|%+v|%#v|%s|%d|%x|%q", opts, opts, opts, auth, auth, auth, auth),
				fmt.Sprintf("%v|%+v|%#v|%s", c, c, c, c), auth.String(), auth.GoString(), logs.String(),
			}, "\n")
			for _, secret := range []string{testToken, testKey} {
				if strings.Contains(printed, secret) {
					t.Errorf("secret leaked:\n%s", printed)
				}
			}
			if !strings.Contains(logs.String(), auth.Fingerprint()) {
				t.Errorf("log lacks the credential fingerprint:\n%s", logs.String())
			}
			if !strings.Contains(printed, "[redacted]") {
				t.Errorf("echoed secret not redacted:\n%s", printed)
			}
		})
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func TestAuthPresentation(t *testing.T) {
	if a, b := tokenAuth.Fingerprint(), (Auth{Token: testToken}).Fingerprint(); a != b || len(a) != 16 {
		t.Errorf("fingerprint %q / %q not stable or not 16 hex", a, b)
	}
	fps := map[string]bool{}
	for _, a := range []Auth{tokenAuth, keyAuth, {Token: testKey}, {Email: "other@example.com", Key: testKey}, {Token: testToken + "x"}} {
		fps[a.Fingerprint()] = true
	}
	if len(fps) != 5 {
		t.Errorf("fingerprints collide: %v", fps)
	}
	if got := keyAuth.String(); got != "key:"+testEmail {
		t.Errorf("String() = %q", got)
	}
	if got := tokenAuth.String(); got != "token:…"+tokenAuth.Fingerprint()[:8] {
		t.Errorf("String() = %q", got)
	}
	if got := (Auth{}).String(); got != "none" {
		t.Errorf("String() = %q", got)
	}
	if got := fmt.Sprintf("%#v", keyAuth); got != `cloudflare.Auth("key:`+testEmail+`")` {
		t.Errorf("%%#v = %s", got)
	}
}

func TestCallerHTTPClientUnchanged(t *testing.T) {
	// A caller-supplied http.Client keeps its transport; redirects are
	// disabled on a copy, leaving the caller's client unchanged.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"success":true,"errors":[],"result":[]}`))
	}))
	defer srv.Close()
	hc := srv.Client()
	c, err := New(Options{BaseURL: srv.URL, Auth: tokenAuth, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	if hc.CheckRedirect != nil {
		t.Error("New modified the caller's http.Client")
	}
	if _, err := c.Lists(context.Background(), acct); err != nil {
		t.Fatal(err)
	}
}

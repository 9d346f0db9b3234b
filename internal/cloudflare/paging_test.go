package cloudflare

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"testing"
	"time"
)

// rulesPages serves total rules in pages of the requested size; withTotals
// controls whether result_info carries total_count and total_pages.
func rulesPages(total int, withTotals bool) func(int, seen) reply {
	return func(_ int, r seen) reply {
		page, _ := strconv.Atoi(r.Query.Get("page"))
		per, _ := strconv.Atoi(r.Query.Get("per_page"))
		var result []json.RawMessage
		for i := (page - 1) * per; i < min(page*per, total); i++ {
			result = append(result, ruleJSON(fmt.Sprintf("r%03d", i), fmt.Sprintf("192.0.2.%d", i), "account"))
		}
		info := map[string]int{"page": page, "per_page": per, "count": len(result)}
		if withTotals {
			info["total_count"] = total
			info["total_pages"] = (total + per - 1) / per
		}
		if result == nil {
			result = []json.RawMessage{}
		}
		return okInfo(result, info)
	}
}

func TestFindAccessRules(t *testing.T) {
	tests := []struct {
		name       string
		total      int
		withTotals bool
		perPage    int
		wantPages  int
	}{
		{"three pages with totals", 250, true, 0, 3},
		{"three pages without totals, short last page", 250, false, 0, 3},
		{"exact multiple without totals ends on an empty page", 200, false, 0, 3},
		{"exact multiple with totals", 300, true, 0, 3},
		{"small pages", 7, true, 3, 3},
		{"empty", 0, true, 0, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAPI(t, rulesPages(tc.total, tc.withTotals))
			c := mustClient(t, f, tokenAuth, nil, nil)
			rules, err := c.FindAccessRules(context.Background(), acctScope, RuleFilter{Value: "192.0.2", Notes: "edgeban", PerPage: tc.perPage})
			if err != nil {
				t.Fatal(err)
			}
			if len(rules) != tc.total {
				t.Errorf("%d rules, want %d", len(rules), tc.total)
			}
			for i, r := range rules {
				if r.ID != fmt.Sprintf("r%03d", i) {
					t.Fatalf("rule %d has id %s", i, r.ID)
				}
			}
			reqs := f.requests()
			if len(reqs) != tc.wantPages {
				t.Errorf("%d pages fetched, want %d", len(reqs), tc.wantPages)
			}
			wantPer := "100"
			if tc.perPage > 0 {
				wantPer = strconv.Itoa(tc.perPage)
			}
			for i, r := range reqs {
				if r.Query.Get("page") != strconv.Itoa(i+1) || r.Query.Get("per_page") != wantPer ||
					r.Query.Get("configuration.value") != "192.0.2" || r.Query.Get("notes") != "edgeban" {
					t.Errorf("request %d query %v", i, r.Query)
				}
			}
		})
	}
}

func TestFindAccessRulesErrorMidway(t *testing.T) {
	pages := rulesPages(250, true)
	f := newFakeAPI(t, func(n int, r seen) reply {
		if r.Query.Get("page") == "2" {
			return fail(403, 10000, "Authentication error")
		}
		return pages(n, r)
	})
	c := mustClient(t, f, tokenAuth, nil, nil)
	rules, err := c.FindAccessRules(context.Background(), acctScope, RuleFilter{})
	if !IsPermanent(err) || len(rules) != 100 {
		t.Fatalf("%d rules, err %v", len(rules), err)
	}
}

func TestFindAccessRulesEndless(t *testing.T) {
	// A server that claims every page is full and never ends.
	f := newFakeAPI(t, func(int, seen) reply {
		rules := make([]json.RawMessage, 100)
		for i := range rules {
			rules[i] = ruleJSON(ruleID, "192.0.2.1", "")
		}
		return okInfo(rules, map[string]int{"per_page": 100})
	})
	c := mustClient(t, f, tokenAuth, nil, nil)
	if _, err := c.FindAccessRules(context.Background(), acctScope, RuleFilter{}); err == nil {
		t.Fatal("endless listing accepted")
	}
	if n := len(f.requests()); n != maxRulePages {
		t.Errorf("%d pages", n)
	}
}

func TestListItems(t *testing.T) {
	pages := map[string]struct {
		items []map[string]string
		after string
	}{
		"":   {[]map[string]string{{"id": "i1", "ip": "192.0.2.1", "comment": "sshd", "created_on": "2020-01-01T00:00:00Z"}, {"id": "i2", "ip": "192.0.2.0/24"}}, "c1"},
		"c1": {[]map[string]string{{"id": "i3", "ip": "2001:db8::/64"}}, "c2"},
		"c2": {[]map[string]string{{"id": "i4", "ip": "192.0.2.45"}}, ""},
	}
	f := newFakeAPI(t, func(_ int, r seen) reply {
		p := pages[r.Query.Get("cursor")]
		info := map[string]any{"cursors": map[string]string{"before": "x", "after": p.after}}
		if p.after == "" {
			info = map[string]any{"cursors": map[string]string{"before": "x"}}
		}
		return okInfo(p.items, info)
	})
	c := mustClient(t, f, keyAuth, nil, nil)
	var got [][]string
	err := c.ListItems(context.Background(), acct, listID, "192.0.2", func(items []ListItem) error {
		var ids []string
		for _, it := range items {
			ids = append(ids, it.ID+"="+it.IP)
		}
		got = append(got, ids)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"i1=192.0.2.1", "i2=192.0.2.0/24"}, {"i3=2001:db8::/64"}, {"i4=192.0.2.45"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("pages %v, want %v", got, want)
	}
	reqs := f.requests()
	for i, wantCursor := range []string{"", "c1", "c2"} {
		q := reqs[i].Query
		if q.Get("cursor") != wantCursor || q.Get("per_page") != "500" || q.Get("search") != "192.0.2" {
			t.Errorf("request %d query %v", i, q)
		}
		if reqs[i].Path != "/client/v4/accounts/"+acct+"/rules/lists/"+listID+"/items" {
			t.Errorf("path %s", reqs[i].Path)
		}
	}

	stop := errors.New("stop")
	calls := 0
	err = c.ListItems(context.Background(), acct, listID, "", func([]ListItem) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("callback error: err %v after %d calls", err, calls)
	}
}

func TestListItemsRepeatingCursor(t *testing.T) {
	f := newFakeAPI(t, func(int, seen) reply {
		return okInfo([]map[string]string{{"id": "i1", "ip": "192.0.2.1"}}, map[string]any{"cursors": map[string]string{"after": "same"}})
	})
	c := mustClient(t, f, tokenAuth, nil, nil)
	err := c.ListItems(context.Background(), acct, listID, "", func([]ListItem) error { return nil })
	if err == nil {
		t.Fatal("looping cursor accepted")
	}
	if n := len(f.requests()); n != 2 {
		t.Errorf("%d requests", n)
	}
}

func TestWaitBulkOperation(t *testing.T) {
	tests := []struct {
		name     string
		statuses []string
		errMsg   string
		wantErr  bool
	}{
		{"completed", []string{"pending", "running", "running", "completed"}, "", false},
		{"at once", []string{"completed"}, "", false},
		{"failed", []string{"pending", "failed"}, "This list is at the maximum number of items", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAPI(t, func(n int, _ seen) reply {
				op := map[string]string{"id": opID, "status": tc.statuses[min(n, len(tc.statuses)-1)]}
				if op["status"] == "failed" {
					op["error"] = tc.errMsg
				}
				if op["status"] == "completed" {
					op["completed"] = "2020-01-01T08:00:00Z"
				}
				return ok(op)
			})
			sr := &sleepRecorder{}
			c := mustClient(t, f, tokenAuth, sr, nil)
			op, err := c.WaitBulkOperation(context.Background(), acct, opID)
			if tc.wantErr {
				var be *BulkError
				if !errors.As(err, &be) || be.OperationID != opID || be.Message != tc.errMsg || op.Status != "failed" {
					t.Fatalf("op %+v, err %v", op, err)
				}
				if IsRetryable(err) {
					t.Error("a failed bulk operation is retryable")
				}
			} else {
				if err != nil || op.Status != "completed" || op.Completed.IsZero() {
					t.Fatalf("op %+v, err %v", op, err)
				}
			}
			want := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, time.Second}[:len(tc.statuses)]
			if got := sr.recorded(); !reflect.DeepEqual(got, want) {
				t.Errorf("poll delays %v, want %v", got, want)
			}
			if n := len(f.requests()); n != len(tc.statuses) {
				t.Errorf("%d polls, want %d", n, len(tc.statuses))
			}
		})
	}
}

func TestWaitBulkOperationGivesUp(t *testing.T) {
	f := newFakeAPI(t, func(int, seen) reply { return ok(map[string]string{"id": opID, "status": "pending"}) })
	sr := &sleepRecorder{}
	c := mustClient(t, f, tokenAuth, sr, nil)
	if _, err := c.WaitBulkOperation(context.Background(), acct, opID); err == nil {
		t.Fatal("an operation pending forever was accepted")
	}
	var total time.Duration
	for _, d := range sr.recorded() {
		total += d
		if d > 8*time.Second {
			t.Errorf("poll delay %v above the cap", d)
		}
	}
	if total < 5*time.Minute || total > 15*time.Minute {
		t.Errorf("polled for %v in total", total)
	}
}

func TestBulkPollDelays(t *testing.T) {
	want := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, 1 * time.Second, 1 * time.Second,
		2 * time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second, 8 * time.Second}
	for n, w := range want {
		if got := bulkPollDelay(n); got != w {
			t.Errorf("bulkPollDelay(%d) = %v, want %v", n, got, w)
		}
	}
}

func TestCreateRulesetRuleRetries(t *testing.T) {
	rule := RulesetRule{Description: "edgeban", Expression: "ip.src in $f2b_banned", Action: "block", Enabled: true}
	tests := []struct {
		name     string
		first    reply
		attempts int
		wantErr  bool
	}{
		{"5xx is not retried", reply{status: 502, ctype: "text/html", body: htmlBadGateway}, 1, true},
		{"429 is retried", reply{status: 429, body: envelopeJSON(false, nil, []ErrorDetail{{971, "Please wait"}}, nil), header: map[string]string{"Retry-After": "1"}}, 2, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAPI(t, func(n int, _ seen) reply {
				if n == 0 {
					return tc.first
				}
				return ok(map[string]any{"id": rsID, "rules": []any{}})
			})
			c := mustClient(t, f, tokenAuth, &sleepRecorder{}, nil)
			_, err := c.CreateRulesetRule(context.Background(), zoneID, rsID, rule)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v", err)
			}
			if tc.wantErr && !IsRetryable(err) {
				t.Errorf("the error should stay retryable for the caller: %v", err)
			}
			if n := len(f.requests()); n != tc.attempts {
				t.Errorf("%d attempts, want %d", n, tc.attempts)
			}
		})
	}
}

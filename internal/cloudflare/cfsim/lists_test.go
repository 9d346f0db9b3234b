package cfsim_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeban/edgeban/internal/cloudflare/cfsim"
)

type listObj struct {
	ID                    string `json:"id"`
	Name                  string `json:"name"`
	Kind                  string `json:"kind"`
	Description           string `json:"description"`
	NumItems              int    `json:"num_items"`
	NumReferencingFilters int    `json:"num_referencing_filters"`
}

func TestListsCRUD(t *testing.T) {
	e := newEnv(t, cfsim.Config{Plan: cfsim.PlanPro})
	id := e.createList("f2b_banned")
	if !hex32.MatchString(id) {
		t.Fatalf("list id %q", id)
	}
	tests := []struct {
		name         string
		body         any
		opts         []opt
		status, code int
	}{
		{"name with a dash", map[string]string{"name": "f2b-banned", "kind": "ip"}, []opt{invalid}, 400, 10020},
		{"name too long", map[string]string{"name": strings.Repeat("a", 51), "kind": "ip"}, []opt{invalid}, 400, 10020},
		{"no name", map[string]string{"kind": "ip"}, []opt{invalid}, 400, 10020},
		{"bad kind", map[string]string{"name": "x", "kind": "cidr"}, []opt{invalid}, 400, 10020},
		{"duplicate name", map[string]string{"name": "F2B_banned", "kind": "ip"}, nil, 400, 10021},
		{"hostname list off enterprise", map[string]string{"name": "hosts", "kind": "hostname"}, nil, 400, 10024},
		{"redirect list", map[string]string{"name": "redirects", "kind": "redirect"}, nil, 200, 0},
		{"upper case name", map[string]string{"name": "Upper_1", "kind": "ip"}, nil, 200, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.t = t
			e.call("POST", lists, tt.body, tt.opts...).must(t, tt.status, tt.code)
		})
	}
	e.t = t
	var all []listObj
	e.call("GET", lists, nil).must(t, 200, 0).decode(t, &all)
	if len(all) != 3 || all[0].ID != id || all[0].Kind != "ip" || all[0].Description != "test" {
		t.Errorf("lists = %+v", all)
	}
	var l listObj
	e.call("PUT", lists+"/"+id, map[string]string{"description": "banned by edgeban"}).must(t, 200, 0).decode(t, &l)
	if l.Description != "banned by edgeban" || l.Name != "f2b_banned" {
		t.Errorf("updated = %+v", l)
	}
	e.call("GET", lists+"/"+id, nil).must(t, 200, 0).decode(t, &l)
	if l.Description != "banned by edgeban" {
		t.Errorf("get = %+v", l)
	}
	e.call("DELETE", lists+"/"+id, nil).must(t, 200, 0)
	e.call("GET", lists+"/"+id, nil).must(t, 404, 10001)
	e.call("DELETE", lists+"/"+id, nil).must(t, 404, 10001)
	e.call("GET", lists+"/ffffffffffffffffffffffffffffffff/items", nil).must(t, 404, 10001)
	e.call("GET", "/accounts/ffffffffffffffffffffffffffffffff/rules/lists", nil).must(t, 404, 7003)
}

func TestListQuotaPerPlan(t *testing.T) {
	tests := []struct {
		plan cfsim.Plan
		max  int
	}{
		{cfsim.PlanFree, 1},
		{cfsim.PlanPro, 10},
		{cfsim.PlanBusiness, 10},
	}
	for _, tt := range tests {
		t.Run(string(tt.plan), func(t *testing.T) {
			e := newEnv(t, cfsim.Config{Plan: tt.plan})
			for i := range tt.max {
				e.createList(fmt.Sprintf("l%d", i))
			}
			e.call("POST", lists, map[string]string{"name": "one_more", "kind": "ip"}).must(t, 400, 10022)
		})
	}
}

func TestListItemsLifecycle(t *testing.T) {
	e := newEnv(t, cfsim.Config{})
	id := e.createList("f2b")

	// Add: pending, then running, then completed; nothing visible before.
	op := e.submit("POST", id, []map[string]string{
		{"ip": "192.0.2.1", "comment": "sshd"},
		{"ip": "2001:DB8::/64", "comment": "nginx"},
		{"ip": "198.51.100.0/24"},
	})
	if got := e.op(op); got.Status != "pending" || got.Completed != "" {
		t.Errorf("op = %+v, want pending", got)
	}
	if n := len(e.items(id, 500)); n != 0 {
		t.Errorf("%d items visible while pending", n)
	}
	e.clock.Advance(150 * time.Millisecond)
	if got := e.op(op); got.Status != "running" {
		t.Errorf("op = %+v, want running", got)
	}
	// A write while the operation runs is refused.
	r := e.call("DELETE", lists+"/"+id+"/items", map[string]any{"items": []map[string]string{{"id": "x"}}}).must(t, 429, 10040)
	if r.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After on 10040")
	}
	e.call("PUT", lists+"/"+id+"/items", []any{}).must(t, 429, 10040)
	e.call("POST", lists+"/"+id+"/items", []map[string]string{{"ip": "192.0.2.9"}}).must(t, 429, 10040)
	if got := e.finish(op); got.Status != "completed" || got.Completed == "" {
		t.Errorf("op = %+v, want completed", got)
	}
	items := e.items(id, 500)
	ips := func(items []listItem) []string {
		out := []string{}
		for _, it := range items {
			out = append(out, it.IP)
		}
		return out
	}
	if want := []string{"192.0.2.1", "198.51.100.0/24", "2001:db8::/64"}; !slices.Equal(ips(items), want) {
		t.Errorf("items = %v, want %v", ips(items), want)
	}
	var l listObj
	e.call("GET", lists+"/"+id, nil).must(t, 200, 0).decode(t, &l)
	if l.NumItems != 3 {
		t.Errorf("num_items = %d", l.NumItems)
	}

	// Upsert: an existing IP keeps its id and gets the new comment.
	first := items[0]
	e.finish(e.submit("POST", id, []map[string]string{{"ip": "192.0.2.1", "comment": "recidive"}}))
	var it listItem
	e.call("GET", lists+"/"+id+"/items/"+first.ID, nil).must(t, 200, 0).decode(t, &it)
	if it.ID != first.ID || it.Comment != "recidive" {
		t.Errorf("upserted item = %+v, was %+v", it, first)
	}
	e.call("GET", lists+"/"+id+"/items/ffffffffffffffffffffffffffffffff", nil).must(t, 404, 10001)

	// Delete by id; unknown ids are ignored.
	e.finish(e.submit("DELETE", id, map[string]any{"items": []map[string]string{{"id": first.ID}, {"id": "ffffffffffffffffffffffffffffffff"}}}))
	if got := ips(e.items(id, 500)); !slices.Equal(got, []string{"198.51.100.0/24", "2001:db8::/64"}) {
		t.Errorf("after delete: %v", got)
	}

	// Replace all, then replace with nothing.
	e.finish(e.submit("PUT", id, []map[string]string{{"ip": "203.0.113.5"}, {"ip": "203.0.113.5", "comment": "last wins"}}))
	items = e.items(id, 500)
	if len(items) != 1 || items[0].IP != "203.0.113.5" || items[0].Comment != "last wins" {
		t.Errorf("after replace: %+v", items)
	}
	e.finish(e.submit("PUT", id, []any{}))
	if got := e.items(id, 500); len(got) != 0 {
		t.Errorf("after empty replace: %+v", got)
	}

	st := e.sim.Snapshot()
	if len(st.BulkOperations) != 5 {
		t.Errorf("%d bulk operations recorded, want 5", len(st.BulkOperations))
	}
	for _, op := range st.BulkOperations {
		if op.Status != "completed" {
			t.Errorf("op %+v", op)
		}
	}
	e.call("GET", "/accounts/"+acct+"/rules/lists/bulk_operations/ffffffffffffffffffffffffffffffff", nil).must(t, 404, 10001)
}

func TestListItemValidation(t *testing.T) {
	tests := []struct {
		name   string
		strict bool
		items  any
		opts   []opt
		status int
		code   int
	}{
		{"ipv4", false, []map[string]string{{"ip": "192.0.2.1"}}, nil, 200, 0},
		{"ipv4 /8", false, []map[string]string{{"ip": "10.0.0.0/8"}}, nil, 200, 0},
		{"ipv4 /4", false, []map[string]string{{"ip": "0.0.0.0/4"}}, nil, 400, 10023},
		{"host bits", false, []map[string]string{{"ip": "192.0.2.1/24"}}, nil, 400, 10023},
		{"not an ip", false, []map[string]string{{"ip": "example.com"}}, nil, 400, 10023},
		{"ipv6 address", false, []map[string]string{{"ip": "2001:db8::1"}}, nil, 200, 0},
		{"ipv6 /128", false, []map[string]string{{"ip": "2001:db8::1/128"}}, nil, 200, 0},
		{"ipv6 address, strict", true, []map[string]string{{"ip": "2001:db8::1"}}, nil, 400, 10023},
		{"ipv6 /96, strict", true, []map[string]string{{"ip": "2001:db8::/96"}}, nil, 400, 10023},
		{"ipv6 /64, strict", true, []map[string]string{{"ip": "2001:db8::/64"}}, nil, 200, 0},
		{"asn in an ip list", false, []map[string]any{{"asn": 13335}}, nil, 400, 10023},
		{"comment too long", false, []map[string]string{{"ip": "192.0.2.1", "comment": strings.Repeat("c", 501)}}, nil, 400, 10023},
		{"not an array", false, map[string]string{"ip": "192.0.2.1"}, []opt{invalid}, 400, 10018},
		{"empty add", false, []any{}, nil, 400, 10023},
		{"malformed", false, `[{"ip":`, []opt{invalid}, 400, 6007},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, cfsim.Config{IPv6Strict: tt.strict})
			id := e.createList("f2b")
			e.call("POST", lists+"/"+id+"/items", tt.items, tt.opts...).must(t, tt.status, tt.code)
		})
	}
	t.Run("delete body", func(t *testing.T) {
		e := newEnv(t, cfsim.Config{})
		id := e.createList("f2b")
		e.call("DELETE", lists+"/"+id+"/items", map[string]any{"items": []any{}}, invalid).must(t, 400, 10023)
		e.call("DELETE", lists+"/"+id+"/items", nil, invalid).must(t, 400, 6007)
	})
}

func TestListIPv6Lowercase(t *testing.T) {
	e := newEnv(t, cfsim.Config{})
	id := e.createList("f2b")
	e.finish(e.submit("POST", id, []map[string]string{{"ip": "2001:DB8:ABCD::/48"}}))
	if got := e.sim.ListItems("f2b"); len(got) != 1 || got[0].Value != "2001:db8:abcd::/48" {
		t.Errorf("items = %+v", got)
	}
}

func TestListItemCap(t *testing.T) {
	e := newEnv(t, cfsim.Config{Plan: cfsim.PlanPro, MaxListItems: 5})
	a, b := e.createList("a"), e.createList("b")
	e.finish(e.submit("POST", a, []map[string]string{{"ip": "192.0.2.1"}, {"ip": "192.0.2.2"}, {"ip": "192.0.2.3"}}))

	// The cap is across lists: 3 + 3 > 5 fails and applies nothing.
	op := e.finish(e.submit("POST", b, []map[string]string{{"ip": "198.51.100.1"}, {"ip": "198.51.100.2"}, {"ip": "198.51.100.3"}}))
	if op.Status != "failed" || op.Error != cfsim.MaxItemsMessage {
		t.Errorf("op = %+v, want failed with %q", op, cfsim.MaxItemsMessage)
	}
	if got := e.sim.ListItems("b"); len(got) != 0 {
		t.Errorf("failed operation applied %v", got)
	}
	// Upserts of existing items do not count.
	if op := e.finish(e.submit("POST", a, []map[string]string{{"ip": "192.0.2.1"}, {"ip": "192.0.2.2"}, {"ip": "192.0.2.4"}, {"ip": "192.0.2.5"}})); op.Status != "completed" {
		t.Errorf("op = %+v", op)
	}
	// Replace counts the list's new size, not old plus new.
	if op := e.finish(e.submit("PUT", a, []map[string]string{{"ip": "203.0.113.1"}, {"ip": "203.0.113.2"}})); op.Status != "completed" {
		t.Errorf("op = %+v", op)
	}
	if op := e.finish(e.submit("POST", b, []map[string]string{{"ip": "198.51.100.1"}, {"ip": "198.51.100.2"}, {"ip": "198.51.100.3"}, {"ip": "198.51.100.4"}})); op.Status != "failed" {
		t.Errorf("op = %+v, want failed", op)
	}
	if op := e.finish(e.submit("POST", b, []map[string]string{{"ip": "198.51.100.1"}, {"ip": "198.51.100.2"}, {"ip": "198.51.100.3"}})); op.Status != "completed" {
		t.Errorf("op = %+v", op)
	}
	// A failed operation frees the account for the next write at once.
	if got := e.sim.Snapshot().BulkOperations; len(got) != 6 {
		t.Errorf("%d operations", len(got))
	}
}

func TestListItemsCursorAndSearch(t *testing.T) {
	e := newEnv(t, cfsim.Config{Plan: cfsim.PlanEnterprise, RateLimit: -1})
	id := e.createList("big")
	var body []map[string]string
	var want []string
	for i := range 1200 {
		ip := fmt.Sprintf("10.%d.%d.%d", i/250, i%250, 1+i%7)
		body = append(body, map[string]string{"ip": ip})
		want = append(want, ip)
	}
	body = append(body,
		map[string]string{"ip": "10.0.0.0/16"}, map[string]string{"ip": "2001:db8::/64"},
		map[string]string{"ip": "10.0.0.0/8"}, map[string]string{"ip": "2001:db8::/48"})
	e.finish(e.submit("POST", id, body))

	// Ascending: by address, then by prefix length, IPv4 before IPv6.
	want = append(want, "10.0.0.0/8", "10.0.0.0/16", "2001:db8::/48", "2001:db8::/64")
	slices.SortFunc(want, func(a, b string) int {
		pa, pb := prefix(a), prefix(b)
		if c := pa.Addr().Compare(pb.Addr()); c != 0 {
			return c
		}
		return pa.Bits() - pb.Bits()
	})
	for _, perPage := range []int{500, 77, 1} {
		if perPage == 1 && testing.Short() {
			continue
		}
		t.Run("per_page="+strconv.Itoa(perPage), func(t *testing.T) {
			e.t = t
			got := e.items(id, perPage)
			ips := make([]string, len(got))
			for i, it := range got {
				ips[i] = it.IP
			}
			if !slices.Equal(ips, want) {
				t.Errorf("walked %d items, want %d; first %v", len(ips), len(want), ips[:min(5, len(ips))])
			}
		})
	}
	e.t = t

	// A before cursor pages back.
	r := e.call("GET", lists+"/"+id+"/items?per_page=10", nil).must(t, 200, 0)
	var info struct {
		Cursors struct{ After, Before string } `json:"cursors"`
	}
	json.Unmarshal(r.ResultInfo, &info)
	if info.Cursors.Before != "" || info.Cursors.After == "" {
		t.Errorf("first page cursors = %+v", info.Cursors)
	}
	r = e.call("GET", lists+"/"+id+"/items?per_page=10&cursor="+info.Cursors.After, nil).must(t, 200, 0)
	json.Unmarshal(r.ResultInfo, &info)
	r = e.call("GET", lists+"/"+id+"/items?per_page=10&cursor="+info.Cursors.Before, nil).must(t, 200, 0)
	var back []listItem
	r.decode(t, &back)
	if len(back) != 10 || back[0].IP != want[0] {
		t.Errorf("page before = %+v", back)
	}

	// search is a prefix match.
	var found []listItem
	e.call("GET", lists+"/"+id+"/items?per_page=500&search=10.0.1", nil).must(t, 200, 0).decode(t, &found)
	for _, it := range found {
		if !strings.HasPrefix(it.IP, "10.0.1") {
			t.Errorf("search found %s", it.IP)
		}
	}
	n := 0
	for _, ip := range want {
		if strings.HasPrefix(ip, "10.0.1") {
			n++
		}
	}
	if len(found) != n || n == 0 {
		t.Errorf("search found %d, want %d", len(found), n)
	}
	e.call("GET", lists+"/"+id+"/items?search=2001:DB8", nil).must(t, 200, 0).decode(t, &found)
	if len(found) != 2 {
		t.Errorf("search 2001:DB8 found %+v", found)
	}
	e.call("GET", lists+"/"+id+"/items?per_page=501", nil, invalid).must(t, 400, 10025)
	e.call("GET", lists+"/"+id+"/items?cursor=!!", nil).must(t, 400, 10025)
}

func prefix(s string) netip.Prefix {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a, a.BitLen())
	}
	return netip.MustParsePrefix(s)
}

func TestListWriteQuota(t *testing.T) {
	e := newEnv(t, cfsim.Config{ListWriteRequests: 2, ListItemChanges: 5, BulkDelay: -1})
	id := e.createList("f2b")
	e.submit("POST", id, []map[string]string{{"ip": "192.0.2.1"}})
	e.submit("POST", id, []map[string]string{{"ip": "192.0.2.2"}})
	r := e.call("POST", lists+"/"+id+"/items", []map[string]string{{"ip": "192.0.2.3"}}).must(t, 429, 10040)
	if ra, _ := strconv.Atoi(r.Header.Get("Retry-After")); ra < 12*3600-1 {
		t.Errorf("Retry-After = %q", r.Header.Get("Retry-After"))
	}
	e.clock.Advance(12*time.Hour + time.Second)
	// Six changes exceed five even with requests to spare.
	e.call("POST", lists+"/"+id+"/items", []map[string]string{{"ip": "192.0.2.3"}, {"ip": "192.0.2.4"}, {"ip": "192.0.2.5"}, {"ip": "192.0.2.6"}, {"ip": "192.0.2.7"}, {"ip": "192.0.2.8"}}).must(t, 429, 10040)
	e.submit("POST", id, []map[string]string{{"ip": "192.0.2.3"}})
}

func TestBulkDelayRealClock(t *testing.T) {
	e := newEnv(t, cfsim.Config{Now: time.Now, BulkDelay: 60 * time.Millisecond})
	id := e.createList("f2b")
	op := e.submit("POST", id, []map[string]string{{"ip": "192.0.2.1"}})
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := e.op(op)
		if got.Status == "completed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("op still %s", got.Status)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := e.sim.ListItems("f2b"); len(got) != 1 {
		t.Errorf("items = %+v", got)
	}
}

// TestListOrderAfterSmallOperations checks that the order kept up to date
// item by item matches a fresh sort.
func TestListOrderAfterSmallOperations(t *testing.T) {
	e := newEnv(t, cfsim.Config{Plan: cfsim.PlanEnterprise, BulkDelay: -1, RateLimit: -1})
	id := e.createList("f2b")
	rnd := rand.New(rand.NewPCG(1, 2))
	randomIP := func() string {
		switch rnd.IntN(3) {
		case 0:
			return fmt.Sprintf("10.%d.%d.%d", rnd.IntN(4), rnd.IntN(4), rnd.IntN(256))
		case 1:
			return fmt.Sprintf("10.%d.%d.0/24", rnd.IntN(4), rnd.IntN(4))
		}
		return fmt.Sprintf("2001:db8:%x::/48", rnd.IntN(64))
	}
	for round := range 60 {
		items := e.sim.ListItems("f2b")
		if round%3 == 2 && len(items) > 0 {
			var del []map[string]string
			for range 1 + rnd.IntN(5) {
				del = append(del, map[string]string{"id": items[rnd.IntN(len(items))].ID})
			}
			e.submit("DELETE", id, map[string]any{"items": del})
		} else {
			var add []map[string]string
			for range 1 + rnd.IntN(10) {
				add = append(add, map[string]string{"ip": randomIP()})
			}
			e.submit("POST", id, add)
		}
		got := e.sim.ListItems("f2b")
		want := slices.Clone(got)
		slices.SortFunc(want, func(a, b cfsim.ListItem) int {
			pa, pb := prefix(a.Value), prefix(b.Value)
			if c := pa.Addr().Compare(pb.Addr()); c != 0 {
				return c
			}
			return pa.Bits() - pb.Bits()
		})
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: order %v, want %v", round, got, want)
		}
		if api := e.items(id, 500); len(api) != len(got) {
			t.Fatalf("round %d: API has %d items, snapshot %d", round, len(api), len(got))
		}
	}
}

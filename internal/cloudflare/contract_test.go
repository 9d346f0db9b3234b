package cloudflare_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/edgeban/edgeban/internal/cloudflare"
	"github.com/edgeban/edgeban/internal/cloudflare/cfsim"
	"github.com/edgeban/edgeban/internal/cloudflare/contract"
)

// TestClientContract drives every client call against cfsim, checking each
// request the client sends and each response cfsim returns against
// Cloudflare's OpenAPI schema. Any mismatch fails the test.
func TestClientContract(t *testing.T) {
	v, err := contract.Load(contract.SchemaPath(t))
	if err != nil {
		t.Fatal(err)
	}
	v.Allow("GET", "/zones") // zone lookup by name: not in the subset
	report := func(err error) { t.Errorf("contract: %v", err) }
	const token = "contract-token-0123456789abcdef"
	const email, key = "admin@example.com", "0123456789abcdef0123456789abcdef01234"
	sim := cfsim.New(cfsim.Config{Tokens: []cfsim.Token{{Value: token}}, Email: email, Key: key, BulkDelay: -1})
	srv := httptest.NewServer(v.Handler(sim, report))
	defer srv.Close()
	hc := &http.Client{Transport: v.Transport(http.DefaultTransport, report)}
	ctx := context.Background()

	for _, auth := range []cloudflare.Auth{{Token: token}, {Email: email, Key: key}} {
		c, err := cloudflare.New(cloudflare.Options{BaseURL: srv.URL + "/client/v4", Auth: auth, HTTPClient: hc, MaxRetries: -1})
		if err != nil {
			t.Fatal(err)
		}
		zone, err := c.ZoneIDByName(ctx, cfsim.DefaultZoneName)
		if err != nil {
			t.Fatal(err)
		}
		scopes := []cloudflare.Scope{{Kind: "user"}, {Kind: "account", ID: cfsim.DefaultAccountID}, {Kind: "zone", ID: zone}}
		for _, sc := range scopes {
			for _, addr := range []string{"192.0.2.1", "2001:db8::1", "2001:db8:1::/64", "198.51.100.0/24"} {
				cfg, err := cloudflare.TargetFor(addr, false)
				if err != nil {
					t.Fatal(err)
				}
				r, err := c.CreateAccessRule(ctx, sc, "block", cfg, "contract test")
				if err != nil {
					t.Fatalf("%v create %s: %v", sc, addr, err)
				}
				if _, err := c.CreateAccessRule(ctx, sc, "challenge", cfg, "again"); !cloudflare.IsDuplicate(err) {
					t.Errorf("%v duplicate create: %v", sc, err)
				}
				if _, err := c.UpdateAccessRule(ctx, sc, r.ID, "managed_challenge", "changed"); err != nil {
					t.Errorf("%v update: %v", sc, err)
				}
				found, err := c.FindAccessRules(ctx, sc, cloudflare.RuleFilter{Value: cfg.Value, Notes: "changed", Match: "all"})
				if err != nil || len(found) != 1 {
					t.Errorf("%v find %s: %v %v", sc, cfg.Value, found, err)
				}
				if err := c.DeleteAccessRule(ctx, sc, r.ID); err != nil {
					t.Errorf("%v delete: %v", sc, err)
				}
				if err := c.DeleteAccessRule(ctx, sc, r.ID); !cloudflare.IsNotFound(err) {
					t.Errorf("%v second delete: %v", sc, err)
				}
			}
			if _, _, err := c.ListAccessRules(ctx, sc, cloudflare.RuleFilter{Mode: "block", Order: "mode", Direction: "desc", Page: 1, PerPage: 5}); err != nil {
				t.Errorf("%v list: %v", sc, err)
			}
		}
		if auth.Token != "" {
			if st, err := c.VerifyToken(ctx, ""); err != nil || st.Status != "active" {
				t.Errorf("verify: %+v %v", st, err)
			}
		}
	}

	c, _ := cloudflare.New(cloudflare.Options{BaseURL: srv.URL + "/client/v4", Auth: cloudflare.Auth{Token: token}, HTTPClient: hc})
	acc := cfsim.DefaultAccountID
	l, err := c.CreateList(ctx, acc, "contract", "ip", "contract test")
	if err != nil {
		t.Fatal(err)
	}
	op, err := c.AddListItems(ctx, acc, l.ID, []cloudflare.ListItemInput{{IP: "192.0.2.1", Comment: "edgeban jail=a"}, {IP: "2001:db8::/64"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitBulkOperation(ctx, acc, op); err != nil {
		t.Fatal(err)
	}
	var ids []string
	if err := c.ListItems(ctx, acc, l.ID, "", func(items []cloudflare.ListItem) error {
		for _, it := range items {
			ids = append(ids, it.ID)
		}
		return nil
	}); err != nil || len(ids) != 2 {
		t.Fatalf("items %v: %v", ids, err)
	}
	if op, err = c.DeleteListItems(ctx, acc, l.ID, ids[:1]); err != nil {
		t.Fatal(err)
	}
	if _, err := c.BulkOperation(ctx, acc, op); err != nil {
		t.Fatal(err)
	}
	if op, err = c.ReplaceListItems(ctx, acc, l.ID, []cloudflare.ListItemInput{{IP: "198.51.100.7"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitBulkOperation(ctx, acc, op); err != nil {
		t.Fatal(err)
	}
	if lists, err := c.Lists(ctx, acc); err != nil || len(lists) != 1 || lists[0].NumItems != 1 {
		t.Errorf("lists %+v: %v", lists, err)
	}
	zone, _ := c.ZoneIDByName(ctx, cfsim.DefaultZoneName)
	if _, err := c.EntrypointRuleset(ctx, zone, cloudflare.PhaseCustom); !cloudflare.IsNotFound(err) {
		t.Errorf("entry point before creation: %v", err)
	}
	rs, err := c.PutEntrypointRuleset(ctx, zone, cloudflare.PhaseCustom, []cloudflare.RulesetRule{{Description: "edgeban", Expression: "ip.src in $contract", Action: "block", Enabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateRulesetRule(ctx, zone, rs.ID, cloudflare.RulesetRule{Description: "two", Expression: "ip.src in $contract", Action: "managed_challenge", Enabled: true}); err != nil {
		t.Error(err)
	}
	if rs, err := c.EntrypointRuleset(ctx, zone, cloudflare.PhaseCustom); err != nil || len(rs.Rules) != 2 {
		t.Errorf("entry point: %+v %v", rs, err)
	}
}

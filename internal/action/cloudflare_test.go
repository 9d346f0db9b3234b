package action

import (
	"strings"
	"testing"

	"github.com/edgeban/edgeban/internal/cloudflare/delivery"
	"github.com/edgeban/edgeban/internal/config"
)

// TestNewCloudflare reads the specs of the Cloudflare actions as jail.local
// writes them and checks what they ban with: the scope and note of the
// shell file each replaces, the jail's parameters over them.
func TestNewCloudflare(t *testing.T) {
	tests := []struct {
		spec    string
		native  bool
		want    delivery.Params
		secret  string
		wantErr string
	}{
		{`cloudflare-restv4[cfuser="a@example.com", cftoken="k1"]`, true,
			delivery.Params{Scope: "user", Notes: "Banned by Fail2Ban", Email: "a@example.com"}, "k1", ""},
		{`cloudflare[cfuser="a@example.com", cftoken="k1"]`, true,
			delivery.Params{Scope: "user", Notes: "Fail2Ban {jail}", Email: "a@example.com"}, "k1", ""},
		{`cloudflare-token[cfzone=example.com, cftoken=t1, cfmode=challenge]`, true,
			delivery.Params{Scope: "zone", Zone: "example.com", Mode: "challenge", Notes: "Fail2Ban {jail}"}, "t1", ""},
		{`cloudflare-token[cfzone=example.com, cftoken=t1, notes="edgeban <name>"]`, true,
			delivery.Params{Scope: "zone", Zone: "example.com", Mode: "block", Notes: "edgeban {jail}"}, "t1", ""},
		{`cloudflare[cfuser=a@example.com, cftoken=k1, name=web]`, true,
			delivery.Params{Scope: "user", Notes: "Fail2Ban web", Email: "a@example.com"}, "k1", ""},
		{`edgeban-cloudflare[cflist=edgeban, cfaccount=acc, cftoken_file=/etc/edgeban/token, cfplan=pro, cfpolicy=aggregate, cfapi="http://127.0.0.1:1/client/v4"]`, true,
			delivery.Params{API: "http://127.0.0.1:1/client/v4", List: "edgeban", Account: "acc", TokenFile: "/etc/edgeban/token", Plan: "pro",
				Policy: "aggregate", Notes: "Banned by Fail2Ban"}, "", ""},
		{`cloudflare-restv4[cfuser=a@example.com, cftoken=k1, native=false]`, false, delivery.Params{}, "", ""},
		{`cloudflare-restv4[native=perhaps]`, false, delivery.Params{}, "", "native"},
		{`edgeban-cloudflare[cfcapacity=lots]`, true, delivery.Params{}, "", "cfcapacity"},
		{`edgeban-cloudflare[cfprofile=default]`, true, delivery.Params{}, "", "no credentials file"},
		{`iptables-multiport[port=ssh]`, false, delivery.Params{}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			spec, err := config.ParseSpec(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			native, err := IsCloudflare(spec)
			if err == nil && native {
				var c *Cloudflare
				c, err = NewCloudflare("sshd", spec, CloudflareEnv{})
				if err == nil {
					want := tt.want
					want.SecretStdin = true
					if c.params != want || c.secret != tt.secret {
						t.Fatalf("params %+v secret %q,\nwant   %+v secret %q", c.params, c.secret, want, tt.secret)
					}
				}
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if native != tt.native {
				t.Fatalf("native %v, want %v", native, tt.native)
			}
		})
	}
}

package cloudflare

import "testing"

func TestTargetFor(t *testing.T) {
	tests := []struct {
		in        string
		aggregate bool
		want      Configuration
		wantErr   bool
	}{
		{in: "198.51.100.4", want: Configuration{"ip", "198.51.100.4"}},
		{in: " 198.51.100.4\n", want: Configuration{"ip", "198.51.100.4"}},
		{in: "::ffff:198.51.100.4", want: Configuration{"ip", "198.51.100.4"}},
		{in: "2001:DB8:0:0:0:0:0:1", want: Configuration{"ip6", "2001:db8::1"}},
		{in: "2001:0db8:0000:0000:0001:0000:0000:0001", want: Configuration{"ip6", "2001:db8::1:0:0:1"}},
		{in: "2001:db8:1:2:3:4:5:6", aggregate: true, want: Configuration{"ip_range", "2001:db8:1:2::/64"}},
		{in: "198.51.100.4", aggregate: true, want: Configuration{"ip", "198.51.100.4"}},
		{in: "198.51.100.7/24", want: Configuration{"ip_range", "198.51.100.0/24"}},
		{in: "198.51.7.7/16", want: Configuration{"ip_range", "198.51.0.0/16"}},
		{in: "198.51.100.4/32", want: Configuration{"ip", "198.51.100.4"}},
		{in: "::ffff:198.51.100.0/120", want: Configuration{"ip_range", "198.51.100.0/24"}},
		{in: "2001:DB8::/32", want: Configuration{"ip_range", "2001:db8::/32"}},
		{in: "2001:db8:1::5/48", want: Configuration{"ip_range", "2001:db8:1::/48"}},
		{in: "2001:db8:1:2::9/64", want: Configuration{"ip_range", "2001:db8:1:2::/64"}},
		{in: "2001:db8::1/128", want: Configuration{"ip6", "2001:db8::1"}},
		{in: "2001:db8::1/128", aggregate: true, want: Configuration{"ip_range", "2001:db8::/64"}},
		{in: "198.51.100.0/25", wantErr: true},
		{in: "198.51.0.0/8", wantErr: true},
		{in: "2001:db8::/56", wantErr: true},
		{in: "2001:db8::/16", wantErr: true},
		{in: "fe80::1%eth0", wantErr: true},
		{in: "198.51.100.256", wantErr: true},
		{in: "198.51.100.4/33", wantErr: true},
		{in: "example.com", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tc := range tests {
		got, err := TargetFor(tc.in, tc.aggregate)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("TargetFor(%q, %v) = %+v, %v; want %+v, error %v", tc.in, tc.aggregate, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestListItemFor(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{in: "198.51.100.4", want: "198.51.100.4"},
		{in: "::ffff:198.51.100.4", want: "198.51.100.4"},
		{in: "198.51.100.4/32", want: "198.51.100.4"},
		{in: "198.51.100.9/24", want: "198.51.100.0/24"},
		{in: "10.1.2.3/8", want: "10.0.0.0/8"},
		{in: "2001:DB8:1:2:3:4:5:6", want: "2001:db8:1:2::/64"},
		{in: "2001:db8:1:2::/64", want: "2001:db8:1:2::/64"},
		{in: "2001:db8:1:2:3::/80", want: "2001:db8:1:2::/64"},
		{in: "2001:db8:1::/48", want: "2001:db8:1::/48"},
		{in: "10.0.0.0/7", wantErr: true},
		{in: "2000::/8", wantErr: true},
		{in: "fe80::1%eth0", wantErr: true},
		{in: "nope", wantErr: true},
		{in: "1.2.3.4/x", wantErr: true},
	}
	for _, tc := range tests {
		got, err := ListItemFor(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ListItemFor(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestScope(t *testing.T) {
	tests := []struct {
		s    Scope
		str  string
		path string
	}{
		{Scope{Kind: ScopeUser}, "user", "/user/firewall/access_rules/rules"},
		{Scope{Kind: ScopeAccount, ID: "a1"}, "account:a1", "/accounts/a1/firewall/access_rules/rules"},
		{Scope{Kind: ScopeZone, ID: "z1"}, "zone:z1", "/zones/z1/firewall/access_rules/rules"},
	}
	for _, tc := range tests {
		p, err := tc.s.rulesPath()
		if err != nil || p != tc.path || tc.s.String() != tc.str || tc.s.Valid() != nil {
			t.Errorf("%+v: path %q, %v, string %q", tc.s, p, err, tc.s.String())
		}
	}
	if IsID("example.com") || !IsID(zoneID) || IsID("023E105F4ECEF8AD9CA31A8372D0C353") {
		t.Error("IsID")
	}
}

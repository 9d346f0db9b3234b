package firewall

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeban/edgeban/internal/netnstest"
)

// needIPTables skips the test without the commands the iptables
// actions run.
func needIPTables(tb testing.TB, ipset bool) {
	tb.Helper()
	netnstest.NeedCommand(tb, "iptables", "iptables")
	netnstest.NeedCommand(tb, "ip6tables", "iptables")
	netnstest.NeedCommand(tb, "iptables-restore", "iptables")
	if ipset {
		netnstest.NeedCommand(tb, "ipset", "ipset")
	}
}

// iptConfig is a jail's configuration as fail2ban's iptables actions
// have it by default.
func iptConfig(ipset bool, ports Ports) IPTablesConfig {
	return IPTablesConfig{Name: "sshd", IPSet: ipset, Chains: []string{"INPUT"}, Protocols: tcp, Ports: ports,
		BlockType:  map[Family]string{IPv4: "REJECT --reject-with icmp-port-unreachable", IPv6: "REJECT --reject-with icmp6-port-unreachable"},
		ReturnType: "RETURN"}
}

// appended returns the -A lines of iptables -S (or ip6tables -S) in
// ns, chain names and all.
func appended(tb testing.TB, ns, cmd string) []string {
	tb.Helper()
	var out []string
	for _, line := range strings.Split(netnstest.Exec(tb, ns, cmd, "-w", "-S"), "\n") {
		if strings.HasPrefix(line, "-A ") {
			out = append(out, line)
		}
	}
	return out
}

// TestIPTables bans and unbans with iptables and ipset on a veth pair
// between two namespaces, as TestNFTables does with nftables.
func TestIPTables(t *testing.T) {
	tests := []struct {
		name   string
		ipset  bool
		ports  Ports
		rules  []string // iptables -S after the ban
		rules6 []string
		open   int // a port left open
	}{
		{name: "ipset multiport", ipset: true, ports: Ports{{2222, 2222}, {3000, 3010}},
			rules:  []string{"-A INPUT -p tcp -m multiport --dports 2222,3000:3010 -m set --match-set f2b-sshd src -j REJECT --reject-with icmp-port-unreachable"},
			rules6: []string{"-A INPUT -p tcp -m multiport --dports 2222,3000:3010 -m set --match-set f2b-sshd6 src -j REJECT --reject-with icmp6-port-unreachable"},
			open:   2223},
		{name: "ipset allports", ipset: true,
			rules:  []string{"-A INPUT -p tcp -m set --match-set f2b-sshd src -j REJECT --reject-with icmp-port-unreachable"},
			rules6: []string{"-A INPUT -p tcp -m set --match-set f2b-sshd6 src -j REJECT --reject-with icmp6-port-unreachable"}},
		{name: "multiport", ports: Ports{{2222, 2222}, {3000, 3010}},
			rules: []string{"-A INPUT -p tcp -m multiport --dports 2222,3000:3010 -j f2b-sshd",
				"-A f2b-sshd -s 10.99.0.3/32 -j REJECT --reject-with icmp-port-unreachable", "-A f2b-sshd -j RETURN"},
			rules6: []string{"-A INPUT -p tcp -m multiport --dports 2222,3000:3010 -j f2b-sshd",
				"-A f2b-sshd -s fd99::3/128 -j REJECT --reject-with icmp6-port-unreachable", "-A f2b-sshd -j RETURN"},
			open: 2223},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			needIPTables(t, tt.ipset)
			ctx := context.Background()
			l := netnstest.NewLink(t)
			l.Listen(t, 2222)
			l.Listen(t, 2223)
			ipt, err := NewIPTables(NewHost(l.Server), iptConfig(tt.ipset, tt.ports))
			if err != nil {
				t.Fatal(err)
			}
			if err := ipt.Start(ctx); err != nil {
				t.Fatal(err)
			}
			banned := []netip.Addr{netnstest.ClientsV4[1], netnstest.ClientsV6[1]}
			if err := ipt.Add(ctx, []Element{{Addr: banned[0], Timeout: time.Hour}}); err != nil {
				t.Fatal(err)
			}
			if err := ipt.Add(ctx, []Element{{Addr: banned[1]}}); err != nil {
				t.Fatal(err)
			}
			if got := appended(t, l.Server, "iptables"); !slices.Equal(got, tt.rules) {
				t.Errorf("iptables -S:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.rules, "\n"))
			}
			if got := appended(t, l.Server, "ip6tables"); !slices.Equal(got, tt.rules6) {
				t.Errorf("ip6tables -S:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.rules6, "\n"))
			}
			if tt.ipset {
				if save := netnstest.Exec(t, l.Server, "ipset", "save", "f2b-sshd"); !strings.Contains(save, "add f2b-sshd 10.99.0.3 timeout 3600") &&
					!strings.Contains(save, "add f2b-sshd 10.99.0.3 timeout 3599") {
					t.Errorf("ipset save f2b-sshd:\n%s", save)
				}
				if save := netnstest.Exec(t, l.Server, "ipset", "save", "f2b-sshd6"); !strings.Contains(save, "add f2b-sshd6 fd99::3 timeout 0") {
					t.Errorf("ipset save f2b-sshd6:\n%s", save)
				}
			}
			for _, a := range netnstest.AllClients {
				err := l.Dial(t, a, 2222)
				if slices.Contains(banned, a) != netnstest.Refused(err) || (!slices.Contains(banned, a) && err != nil) {
					t.Errorf("%s (banned: %v): %v", a, slices.Contains(banned, a), err)
				}
				if tt.open != 0 {
					if err := l.Dial(t, a, tt.open); err != nil {
						t.Errorf("%s to port %d, which no rule blocks: %v", a, tt.open, err)
					}
				}
			}
			// A second ban of an address changes nothing and does not fail.
			if err := ipt.Add(ctx, []Element{{Addr: banned[0], Timeout: time.Hour}}); err != nil {
				t.Fatal(err)
			}
			if got := addrs(t, ipt); !slices.Equal(got, []string{"10.99.0.3", "fd99::3"}) {
				t.Errorf("banned: %v", got)
			}
			if err := ipt.Remove(ctx, banned); err != nil {
				t.Fatal(err)
			}
			for _, a := range banned {
				if err := l.Dial(t, a, 2222); err != nil {
					t.Errorf("%s, unbanned: %v", a, err)
				}
			}
			if err := ipt.Remove(ctx, banned[:1]); !errors.Is(err, ErrNotFound) {
				t.Errorf("second unban: %v, want ErrNotFound", err)
			}
			if err := ipt.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			for _, cmd := range []string{"iptables", "ip6tables"} {
				if got := appended(t, l.Server, cmd); len(got) != 0 {
					t.Errorf("%s after Stop:\n%s", cmd, strings.Join(got, "\n"))
				}
			}
			if tt.ipset {
				if got := strings.TrimSpace(netnstest.Exec(t, l.Server, "ipset", "list", "-n")); got != "" {
					t.Errorf("ipsets after Stop: %s", got)
				}
			}
		})
	}
}

// TestIPTablesRestart checks Sync after a kill: what the killed daemon
// left is replaced by the active bans, the family with none is
// removed, and a change of ports replaces the old rules.
func TestIPTablesRestart(t *testing.T) {
	for _, ipset := range []bool{true, false} {
		name := "multiport"
		if ipset {
			name = "ipset"
		}
		t.Run(name, func(t *testing.T) {
			needIPTables(t, ipset)
			ctx := context.Background()
			ns := netnstest.New(t)
			host := NewHost(ns)
			first, err := NewIPTables(host, iptConfig(ipset, Ports{{22, 22}}))
			if err != nil {
				t.Fatal(err)
			}
			a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
			c, d := netip.MustParseAddr("2001:db8::3"), netip.MustParseAddr("192.0.2.4")
			if err := first.Add(ctx, []Element{{Addr: a, Timeout: time.Hour}, {Addr: b}, {Addr: c}}); err != nil {
				t.Fatal(err)
			}
			// Killed; the new daemon bans port 2222 too.
			second, err := NewIPTables(host, iptConfig(ipset, Ports{{22, 22}, {2222, 2222}}))
			if err != nil {
				t.Fatal(err)
			}
			if err := second.Sync(ctx, []Element{{Addr: a, Timeout: 30 * time.Minute}, {Addr: d, Timeout: time.Minute}}); err != nil {
				t.Fatal(err)
			}
			if got := addrs(t, second); !slices.Equal(got, []string{"192.0.2.1", "192.0.2.4"}) {
				t.Errorf("after Sync: %v", got)
			}
			if ipset {
				els, err := second.Elements(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if got := els[0].Timeout; got < 29*time.Minute || got > 30*time.Minute {
					t.Errorf("a's time left after Sync: %v, want 30m", got)
				}
			}
			jumps := 0
			for _, r := range appended(t, ns, "iptables") {
				if strings.HasPrefix(r, "-A INPUT") {
					jumps++
					if !strings.Contains(r, "--dports 22,2222") {
						t.Errorf("a rule of the old configuration is left: %s", r)
					}
				}
			}
			if jumps != 1 {
				t.Errorf("%d rules in INPUT, want 1:\n%s", jumps, strings.Join(appended(t, ns, "iptables"), "\n"))
			}
			if got := appended(t, ns, "ip6tables"); len(got) != 0 {
				t.Errorf("IPv6, with no ban, still has\n%s", strings.Join(got, "\n"))
			}
			if err := second.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			if got := appended(t, ns, "iptables"); len(got) != 0 {
				t.Errorf("after Stop:\n%s", strings.Join(got, "\n"))
			}
		})
	}
}

func TestIPTablesConfig(t *testing.T) {
	good := iptConfig(true, Ports{{22, 22}})
	tests := []struct {
		name string
		edit func(*IPTablesConfig)
	}{
		{"long name", func(c *IPTablesConfig) { c.Name = strings.Repeat("x", 30) }},
		{"name with a space", func(c *IPTablesConfig) { c.Name = "a b" }},
		{"chain with a semicolon", func(c *IPTablesConfig) { c.Chains = []string{"INPUT;"} }},
		{"blocktype with a newline", func(c *IPTablesConfig) { c.BlockType[IPv4] = "DROP\nCOMMIT" }},
		{"ports without a protocol", func(c *IPTablesConfig) { c.Protocols = nil }},
	}
	for _, tt := range tests {
		cfg := good
		cfg.BlockType = map[Family]string{IPv4: "DROP", IPv6: "DROP"}
		tt.edit(&cfg)
		if _, err := NewIPTables(NewHost(""), cfg); err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
	if _, err := NewIPTables(NewHost(""), good); err != nil {
		t.Errorf("the default configuration: %v", err)
	}
	got := portGroups(Ports{{1, 1}, {3, 4}, {6, 6}, {8, 9}, {11, 11}, {13, 14}, {16, 16}, {18, 19}, {21, 21}, {23, 23}, {25, 25}, {27, 28}})
	want := [][]string{{"-m", "multiport", "--dports", "1,3:4,6,8:9,11,13:14,16,18:19,21,23,25"}, {"-m", "multiport", "--dports", "27:28"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("portGroups = %v, want %v", got, want)
	}
}

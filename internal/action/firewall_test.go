package action

import (
	"context"
	"errors"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeban/edgeban/internal/config"
	"github.com/edgeban/edgeban/internal/firewall"
	"github.com/edgeban/edgeban/internal/netnstest"
	"github.com/edgeban/edgeban/internal/sharedtest"
)

var (
	v4, v6 = firewall.IPv4, firewall.IPv6
	tcp    = []firewall.Protocol{{Name: "tcp", Number: 6}}
)

// stockNFT is the configuration fail2ban's nftables action gives jail
// sshd banning ports.
func stockNFT(ports firewall.Ports) firewall.NFTConfig {
	return firewall.NFTConfig{Table: "f2b-table", TableFamily: "inet", Chain: "f2b-chain", ChainType: "filter", Hook: "input",
		Priority: -1, Sets: map[firewall.Family]string{v4: "addr-set-sshd", v6: "addr6-set-sshd"}, Protocols: tcp, Ports: ports,
		BlockType: "reject"}
}

// stockIPT is the configuration fail2ban's iptables actions give jail
// sshd banning ports.
func stockIPT(ipset bool, ports firewall.Ports) firewall.IPTablesConfig {
	c := firewall.IPTablesConfig{Name: "sshd", IPSet: ipset, Chains: []string{"INPUT"}, Protocols: tcp, Ports: ports,
		BlockType:  map[firewall.Family]string{v4: "REJECT --reject-with icmp-port-unreachable", v6: "REJECT --reject-with icmp6-port-unreachable"},
		ReturnType: "RETURN", MaxElem: 65536}
	if ipset {
		c.Sets = map[firewall.Family]string{v4: "f2b-sshd", v6: "f2b-sshd6"}
	}
	return c
}

// TestFirewallParams reads the native firewall actions' parameters as
// jail.conf's action_ and banaction pass them, from fail2ban's action.d
// files and from edgeban's own defaults when there are none: both give
// the same configuration.
func TestFirewallParams(t *testing.T) {
	ssh := firewall.Ports{{First: 22, Last: 22}}
	web := firewall.Ports{{First: 80, Last: 80}, {First: 443, Last: 443}}
	tests := []struct {
		name, spec string
		want       any    // the firewall's configuration
		err        string // a part of the error
	}{
		{name: "banaction nftables", spec: `nftables[port="ssh", protocol="tcp", chain="<known/chain>"]`, want: stockNFT(ssh)},
		{name: "banaction_allports", spec: `nftables[type=allports][port="0:65535", protocol="tcp", chain="<known/chain>"]`, want: stockNFT(nil)},
		{name: "nftables-allports", spec: `nftables-allports[port="ssh", protocol="tcp"]`, want: stockNFT(nil)},
		{name: "nftables-multiport", spec: `nftables-multiport[port="http,https"]`, want: stockNFT(web)},
		{name: "every port of a list", spec: `nftables[port="0:65535"]`, want: stockNFT(nil)},
		{name: "nftables options", spec: `nftables[name=sshd-udp, port="5060", protocol=udp, blocktype=drop, table=t, table_family=ip, chain_hook=forward, chain_priority=10]`,
			want: firewall.NFTConfig{Table: "t", TableFamily: "ip", Chain: "f2b-chain", ChainType: "filter", Hook: "forward", Priority: 10,
				Sets: map[firewall.Family]string{v4: "addr-set-sshd-udp", v6: "addr6-set-sshd-udp"}, Protocols: []firewall.Protocol{{Name: "udp", Number: 17}},
				Ports: firewall.Ports{{First: 5060, Last: 5060}}, BlockType: "drop"}},
		{name: "iptables-ipset-proto6", spec: `iptables-ipset-proto6[port="ssh", protocol="tcp", chain="<known/chain>"]`, want: stockIPT(true, ssh)},
		{name: "iptables-ipset-proto6-allports", spec: `iptables-ipset-proto6-allports[port="ssh"]`, want: stockIPT(true, nil)},
		{name: "iptables-ipset multiport", spec: `iptables-ipset[type=multiport, port="http,https"]`, want: stockIPT(true, web)},
		{name: "iptables-multiport", spec: `iptables-multiport[port="ssh", protocol="tcp", chain="<known/chain>"]`, want: stockIPT(false, ssh)},
		{name: "iptables-allports", spec: `iptables-allports[port="ssh"]`, want: stockIPT(false, nil)},
		// The file's [Init?family=inet6] blocktype wins over the
		// jail's for IPv6, as with the shell action (and fail2ban).
		{name: "iptables chains", spec: `iptables-multiport[port="http,https", chain="INPUT,FORWARD", blocktype=DROP]`,
			want: func() firewall.IPTablesConfig {
				c := stockIPT(false, web)
				c.Chains, c.BlockType[v4] = []string{"INPUT", "FORWARD"}, "DROP"
				return c
			}()},
		{name: "custom type", spec: `nftables[type=custom]`, err: `type "custom"`},
		{name: "unknown service", spec: `nftables[port=nosuchservice]`, err: `port "nosuchservice"`},
		{name: "nat chain", spec: `nftables[chain_type=nat]`, err: `chain_type "nat"`},
		{name: "redirect", spec: `nftables[blocktype="counter redirect to 2222"]`, err: "blocktype"},
		{name: "bad priority", spec: `nftables[chain_priority=high]`, err: "chain_priority"},
		{name: "long ipset name", spec: `iptables-ipset-proto6[name=` + strings.Repeat("j", 30) + `]`, err: "name"},
		{name: "ports and protocol all", spec: `iptables-multiport[protocol=all]`, err: "protocol all"},
	}
	dirs := map[string]func(*testing.T) string{
		"defaults": func(*testing.T) string { return t.TempDir() },
		"fail2ban's action.d": func(t *testing.T) string {
			return sharedtest.Path(t, "fail2ban/config")
		},
	}
	for dirName, dir := range dirs {
		t.Run(dirName, func(t *testing.T) {
			d := dir(t)
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					spec, err := config.ParseSpec(tt.spec)
					if err != nil {
						t.Fatal(err)
					}
					if ok, err := IsFirewall(spec); !ok || err != nil {
						t.Fatalf("IsFirewall = %v, %v", ok, err)
					}
					a, err := NewFirewall(d, "sshd", spec, firewall.NewHost(""))
					if tt.err != "" {
						if err == nil || !strings.Contains(err.Error(), tt.err) {
							t.Fatalf("error %v, want one with %q", err, tt.err)
						}
						return
					}
					if err != nil {
						t.Fatal(err)
					}
					if got := a.Config(); !reflect.DeepEqual(got, tt.want) {
						t.Errorf("config\n%+v\nwant\n%+v", got, tt.want)
					}
				})
			}
		})
	}
}

func TestIsFirewall(t *testing.T) {
	tests := []struct {
		spec string
		want bool
		err  bool
	}{
		{spec: "nftables", want: true},
		{spec: "nftables[native=false]"},
		{spec: "iptables-multiport[native=yes]", want: true},
		{spec: "iptables-multiport-log"},
		{spec: "nftables[native=perhaps]", err: true},
		{spec: "cloudflare"},
	}
	for _, tt := range tests {
		spec, err := config.ParseSpec(tt.spec)
		if err != nil {
			t.Fatal(err)
		}
		got, err := IsFirewall(spec)
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("IsFirewall(%s) = %v, %v", tt.spec, got, err)
		}
	}
}

// TestFirewallTickets runs each firewall action's Ban, Unban, Sync and
// Stop with a jail's tickets, in a network namespace: the kernel gets
// each ban with the time it has left, an ended ban is not banned, an
// address that is no address is refused, an unban of an address the
// kernel lifted at its end succeeds and one of an address that was not
// banned fails, and Stop leaves nothing.
func TestFirewallTickets(t *testing.T) {
	tests := []struct {
		spec     string
		timeouts bool // the kernel times bans out
		commands []string
	}{
		{spec: `nftables[port="ssh"]`, timeouts: true},
		{spec: `iptables-ipset-proto6[port="ssh"]`, timeouts: true, commands: []string{"iptables", "ipset"}},
		{spec: `iptables-multiport[port="ssh"]`, commands: []string{"iptables"}},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			for _, c := range tt.commands {
				netnstest.NeedCommand(t, c, c)
			}
			ctx := context.Background()
			ns := netnstest.New(t)
			spec, err := config.ParseSpec(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			a, err := NewFirewall(t.TempDir(), "sshd", spec, firewall.NewHost(ns))
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			a.now = func() time.Time { return now }
			if err := a.Start(ctx); err != nil {
				t.Fatal(err)
			}
			timed := Ticket{IP: "192.0.2.1", Time: now.Add(-10 * time.Minute), BanTime: time.Hour}
			forever := Ticket{IP: "2001:db8::2", Time: now, BanTime: -1}
			ended := Ticket{IP: "192.0.2.3", Time: now.Add(-2 * time.Hour), BanTime: time.Hour}
			for _, tk := range []Ticket{timed, forever, ended} {
				if err := a.Ban(ctx, tk); err != nil {
					t.Fatal(err)
				}
			}
			for _, bad := range []string{"host.example", "192.0.2.0/24", "192.0.2.1 -j ACCEPT"} {
				if err := a.Ban(ctx, Ticket{IP: bad, Time: now, BanTime: time.Hour}); err == nil {
					t.Errorf("ban of %q accepted", bad)
				}
			}
			got := elements(t, a)
			want := map[string]time.Duration{"192.0.2.1": 50 * time.Minute, "2001:db8::2": 0}
			if !tt.timeouts {
				want["192.0.2.1"] = 0
			}
			checkElements(t, got, want)

			if err := a.Unban(ctx, timed); err != nil {
				t.Errorf("unban: %v", err)
			}
			if err := a.Unban(ctx, timed); !errors.Is(err, firewall.ErrNotFound) {
				t.Errorf("second unban: %v, want ErrNotFound", err)
			}
			if err := a.Unban(ctx, ended); err != nil {
				t.Errorf("unban of a ban whose time is up, not in the kernel: %v", err)
			}

			// A restart's active bans, all at once.
			if err := a.Sync(ctx, []Ticket{timed, ended, {IP: "192.0.2.4", Time: now, BanTime: 5 * time.Minute}, {IP: "not-an-address", BanTime: -1}}); err != nil {
				t.Fatal(err)
			}
			want = map[string]time.Duration{"192.0.2.1": 50 * time.Minute, "192.0.2.4": 5 * time.Minute}
			if !tt.timeouts {
				want = map[string]time.Duration{"192.0.2.1": 0, "192.0.2.4": 0}
			}
			checkElements(t, elements(t, a), want)
			if err := a.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			// What is left in the kernel, as the tools list it.
			left := map[string][]string{"nft": {"nft", "list", "ruleset"}, "iptables-save": {"iptables-save"},
				"ip6tables-save": {"ip6tables-save"}, "ipset": {"ipset", "list", "-n"}}
			for name, argv := range left {
				if _, err := exec.LookPath(argv[0]); err != nil {
					continue
				}
				if out := netnstest.Exec(t, ns, argv...); strings.Contains(out, "f2b") {
					t.Errorf("after Stop, %s lists:\n%s", name, out)
				}
			}
		})
	}
}

// elements returns what the action's firewall bans, with the time left.
func elements(t *testing.T, a *Firewall) map[string]time.Duration {
	t.Helper()
	var els []firewall.Element
	var err error
	switch fw := a.fw.(type) {
	case *firewall.NFTables:
		els, err = fw.Elements(context.Background())
	case *firewall.IPTables:
		els, err = fw.Elements(context.Background())
	}
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]time.Duration{}
	for _, e := range els {
		out[e.Addr.String()] = e.Timeout
	}
	return out
}

// checkElements compares the bans with want, the times left within a
// few seconds.
func checkElements(t *testing.T, got, want map[string]time.Duration) {
	t.Helper()
	var gotAddrs, wantAddrs []string
	for a := range got {
		gotAddrs = append(gotAddrs, a)
	}
	for a := range want {
		wantAddrs = append(wantAddrs, a)
	}
	slices.Sort(gotAddrs)
	slices.Sort(wantAddrs)
	if !slices.Equal(gotAddrs, wantAddrs) {
		t.Errorf("banned %v, want %v", got, want)
		return
	}
	for a, w := range want {
		if d := got[a] - w; d < -5*time.Second || d > 5*time.Second {
			t.Errorf("%s: %v left, want %v", a, got[a], w)
		}
	}
}

// TestFirewallRepairs removes the jail's table behind the nftables
// action's back: the next ban makes it again, rules and all, as
// fail2ban's actioncheck and actionrepair would.
func TestFirewallRepairs(t *testing.T) {
	netnstest.NeedCommand(t, "nft", "nftables")
	ctx := context.Background()
	ns := netnstest.New(t)
	a, err := NewFirewall(t.TempDir(), "sshd", config.Spec{Name: "nftables"}, firewall.NewHost(ns))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	netnstest.Exec(t, ns, "nft", "delete", "table", "inet", "f2b-table")
	if err := a.Ban(ctx, Ticket{IP: "192.0.2.1", Time: time.Now(), BanTime: time.Hour}); err != nil {
		t.Fatal(err)
	}
	rules := netnstest.Exec(t, ns, "nft", "list", "chain", "inet", "f2b-table", "f2b-chain")
	if !strings.Contains(rules, "ip saddr @addr-set-sshd tcp dport 22 reject") {
		t.Errorf("after the repair, the chain is\n%s", rules)
	}
	checkElements(t, elements(t, a), map[string]time.Duration{"192.0.2.1": time.Hour})
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

package firewall

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeban/edgeban/internal/netnstest"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

func TestNFTBlockType(t *testing.T) {
	both := map[Family]*nftables.Set{IPv4: {}, IPv6: {}}
	v4 := map[Family]*nftables.Set{IPv4: {}}
	tests := []struct {
		in   string
		sets map[Family]*nftables.Set
		want []expr.Any
		err  bool
	}{
		{in: "reject", sets: both, want: []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_PORT_UNREACH}}},
		{in: "drop", sets: both, want: []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}},
		{in: "counter drop", sets: both, want: []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}}},
		{in: "reject with icmpx type admin-prohibited", sets: both,
			want: []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_ADMIN_PROHIBITED}}},
		{in: "reject with icmpx host-unreachable", sets: both,
			want: []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_HOST_UNREACH}}},
		{in: "reject with tcp reset", sets: both, want: []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_TCP_RST}}},
		{in: "reject with icmp type host-prohibited", sets: v4, want: []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: 10}}},
		{in: "reject with icmp type host-prohibited", sets: both, err: true}, // IPv4's ICMP for an IPv6 set
		{in: "return", sets: both, want: []expr.Any{&expr.Verdict{Kind: expr.VerdictReturn}}},
		{in: "counter redirect to 2222", sets: both, err: true},
		{in: "drop now", sets: both, err: true},
		{in: "reject with icmpx type nonsense", sets: both, err: true},
		{in: "", sets: both, err: true},
	}
	for _, tt := range tests {
		got, err := parseNFTBlockType(tt.in, tt.sets)
		if tt.err {
			if err == nil {
				t.Errorf("%q: got %v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q: got %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

// nftConfig is a jail's configuration as fail2ban's nftables action
// has it by default, for jail, with the given match and blocktype.
func nftConfig(jail string, protos []Protocol, ports Ports, blocktype string) NFTConfig {
	return NFTConfig{Table: "f2b-table", TableFamily: "inet", Chain: "f2b-chain", ChainType: "filter", Hook: "input", Priority: -1,
		Sets: map[Family]string{IPv4: "addr-set-" + jail, IPv6: "addr6-set-" + jail}, Protocols: protos, Ports: ports, BlockType: blocktype}
}

var tcp = []Protocol{{"tcp", 6}}

// nft runs nft in namespace ns and returns its output.
func nft(tb testing.TB, ns string, args ...string) string {
	tb.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns, "nft"}, args...)...).CombinedOutput()
	if err != nil {
		tb.Fatalf("nft %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// chainRules returns the rules of chain f2b-chain as nft lists them.
func chainRules(tb testing.TB, ns string) []string {
	tb.Helper()
	var rules []string
	in := false
	for _, line := range strings.Split(nft(tb, ns, "list", "chain", "inet", "f2b-table", "f2b-chain"), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "type filter hook"):
			in = true
		case line == "}":
			in = false
		case in && line != "":
			rules = append(rules, line)
		}
	}
	return rules
}

// setElements returns the elements of a set in the kernel, read with
// nft -j, each with its timeout in seconds (0: none).
func setElements(tb testing.TB, ns, set string) map[string]int {
	tb.Helper()
	var doc struct {
		Nftables []struct {
			Set *struct {
				Name string            `json:"name"`
				Elem []json.RawMessage `json:"elem"`
			} `json:"set"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(nft(tb, ns, "-j", "list", "set", "inet", "f2b-table", set)), &doc); err != nil {
		tb.Fatal(err)
	}
	out := map[string]int{}
	for _, o := range doc.Nftables {
		if o.Set == nil {
			continue
		}
		for _, raw := range o.Set.Elem {
			var plain string
			if json.Unmarshal(raw, &plain) == nil {
				out[plain] = 0
				continue
			}
			var e struct {
				Elem struct {
					Val     string `json:"val"`
					Timeout int    `json:"timeout"`
				} `json:"elem"`
			}
			if err := json.Unmarshal(raw, &e); err != nil {
				tb.Fatalf("element %s: %v", raw, err)
			}
			out[e.Elem.Val] = e.Elem.Timeout
		}
	}
	return out
}

// ruleset returns the whole ruleset of ns as nft lists it.
func ruleset(tb testing.TB, ns string) string {
	return strings.TrimSpace(nft(tb, ns, "list", "ruleset"))
}

// TestNFTables bans and unbans on a veth pair between two namespaces:
// the kernel's ruleset holds the jail's rules and its bans with their
// timeouts, a connection from the banned address fails as the
// blocktype says while one from the client's other address passes,
// and the unban lets the address in again.
func TestNFTables(t *testing.T) {
	netnstest.NeedCommand(t, "nft", "nftables")
	tests := []struct {
		name      string
		protos    []Protocol
		ports     Ports
		blocktype string
		rules     []string
		// open is a port the ban leaves open (0: none).
		open    int
		refused bool // the blocked connection is refused, not dropped
	}{
		{name: "multiport reject", protos: tcp, ports: Ports{{2222, 2222}, {3000, 3010}}, blocktype: "reject",
			rules: []string{"ip saddr @addr-set-sshd tcp dport { 2222, 3000-3010 } reject",
				"ip6 saddr @addr6-set-sshd tcp dport { 2222, 3000-3010 } reject"},
			open: 2223, refused: true},
		{name: "one port", protos: tcp, ports: Ports{{2222, 2222}}, blocktype: "reject with tcp reset",
			rules: []string{"ip saddr @addr-set-sshd tcp dport 2222 reject with tcp reset",
				"ip6 saddr @addr6-set-sshd tcp dport 2222 reject with tcp reset"},
			open: 2223, refused: true},
		{name: "allports drop", protos: tcp, blocktype: "counter drop",
			rules: []string{"ip saddr @addr-set-sshd meta l4proto tcp counter packets 0 bytes 0 drop",
				"ip6 saddr @addr6-set-sshd meta l4proto tcp counter packets 0 bytes 0 drop"}},
		{name: "every protocol, every port", ports: Ports{{0, 65535}}, blocktype: "reject with icmpx type admin-prohibited",
			rules: []string{"ip saddr @addr-set-sshd reject with icmpx admin-prohibited",
				"ip6 saddr @addr6-set-sshd reject with icmpx admin-prohibited"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			l := netnstest.NewLink(t)
			l.Listen(t, 2222)
			l.Listen(t, 2223)
			n, err := NewNFTables(NewHost(l.Server), nftConfig("sshd", tt.protos, tt.ports, tt.blocktype))
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			if err := n.Start(ctx); err != nil {
				t.Fatal(err)
			}
			if got := chainRules(t, l.Server); !slices.Equal(got, tt.rules) {
				t.Errorf("rules:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.rules, "\n"))
			}
			banned := []netip.Addr{netnstest.ClientsV4[1], netnstest.ClientsV6[1]}
			if err := n.Add(ctx, []Element{{Addr: banned[0], Timeout: time.Hour}, {Addr: banned[1]}}); err != nil {
				t.Fatal(err)
			}
			if got, want := setElements(t, l.Server, "addr-set-sshd"), map[string]int{"10.99.0.3": 3600}; !reflect.DeepEqual(got, want) {
				t.Errorf("addr-set-sshd = %v, want %v", got, want)
			}
			if got, want := setElements(t, l.Server, "addr6-set-sshd"), map[string]int{"fd99::3": 0}; !reflect.DeepEqual(got, want) {
				t.Errorf("addr6-set-sshd = %v, want %v", got, want)
			}
			for _, a := range netnstest.AllClients {
				err := l.Dial(t, a, 2222)
				switch {
				case !slices.Contains(banned, a) && err != nil:
					t.Errorf("%s, not banned: %v", a, err)
				case slices.Contains(banned, a) && err == nil:
					t.Errorf("%s, banned, connected", a)
				case slices.Contains(banned, a) && tt.refused != netnstest.Refused(err):
					t.Errorf("%s, banned: %v (refused: want %v)", a, err, tt.refused)
				}
				if tt.open != 0 {
					if err := l.Dial(t, a, tt.open); err != nil {
						t.Errorf("%s to port %d, which no rule blocks: %v", a, tt.open, err)
					}
				}
			}
			if err := n.Remove(ctx, banned); err != nil {
				t.Fatal(err)
			}
			for _, a := range banned {
				if err := l.Dial(t, a, 2222); err != nil {
					t.Errorf("%s, unbanned: %v", a, err)
				}
			}
			if len(setElements(t, l.Server, "addr-set-sshd"))+len(setElements(t, l.Server, "addr6-set-sshd")) != 0 {
				t.Errorf("sets not empty after the unban:\n%s", ruleset(t, l.Server))
			}
			if err := n.Remove(ctx, banned[:1]); !errors.Is(err, ErrNotFound) {
				t.Errorf("second unban: %v, want ErrNotFound", err)
			}
			if err := n.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			if rs := ruleset(t, l.Server); rs != "" {
				t.Errorf("after Stop, the ruleset is\n%s", rs)
			}
		})
	}
}

// TestNFTablesRestart checks the sets after the daemon restarts: after
// a kill (no Stop), Start keeps the bans (no gap) and Sync leaves
// exactly the active bans, with their time left; after a clean stop,
// Start and Sync bring them back. Start never duplicates rules, and a
// second jail's stop leaves the first jail's table alone.
func TestNFTablesRestart(t *testing.T) {
	netnstest.NeedCommand(t, "nft", "nftables")
	ctx := context.Background()
	ns := netnstest.New(t)
	host := NewHost(ns)
	cfg := nftConfig("sshd", tcp, Ports{{22, 22}}, "reject")
	a := netip.MustParseAddr("192.0.2.1")   // banned before and after
	b := netip.MustParseAddr("192.0.2.2")   // permanent, lifted while the daemon was down
	c := netip.MustParseAddr("2001:db8::3") // lifted while the daemon was down
	d := netip.MustParseAddr("192.0.2.4")   // banned before, unknown to the kernel
	first, err := NewNFTables(host, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := first.Add(ctx, []Element{{Addr: a, Timeout: time.Hour}, {Addr: b}, {Addr: c, Timeout: 10 * time.Minute}}); err != nil {
		t.Fatal(err)
	}
	first.Close() // killed: no Stop

	second, err := NewNFTables(host, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if err := second.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := addrs(t, second); !slices.Equal(got, []string{"192.0.2.1", "192.0.2.2", "2001:db8::3"}) {
		t.Errorf("after the restart's Start: %v, want the bans the killed daemon left", got)
	}
	if got := chainRules(t, ns); len(got) != 2 {
		t.Errorf("after a second Start, the rules are\n%s", strings.Join(got, "\n"))
	}
	if err := second.Sync(ctx, []Element{{Addr: a, Timeout: time.Hour - time.Second}, {Addr: d, Timeout: 30 * time.Minute}}); err != nil {
		t.Fatal(err)
	}
	if got, want := setElements(t, ns, "addr-set-sshd"), map[string]int{"192.0.2.1": 3599, "192.0.2.4": 1800}; !reflect.DeepEqual(got, want) {
		t.Errorf("after Sync: %v, want %v", got, want)
	}
	if got := setElements(t, ns, "addr6-set-sshd"); len(got) != 0 {
		t.Errorf("after Sync, the IPv6 set holds %v", got)
	}

	// A timeout that changed is given to the element.
	if err := second.Sync(ctx, []Element{{Addr: a, Timeout: 5 * time.Minute}, {Addr: d}}); err != nil {
		t.Fatal(err)
	}
	if got, want := setElements(t, ns, "addr-set-sshd"), map[string]int{"192.0.2.1": 300, "192.0.2.4": 0}; !reflect.DeepEqual(got, want) {
		t.Errorf("after Sync with new timeouts: %v, want %v", got, want)
	}

	// Another jail shares the table; its stop leaves sshd's things.
	other, err := NewNFTables(host, nftConfig("nginx", tcp, Ports{{80, 80}, {443, 443}}, "reject"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := chainRules(t, ns); len(got) != 4 {
		t.Errorf("two jails, rules:\n%s", strings.Join(got, "\n"))
	}
	if err := other.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if got := chainRules(t, ns); len(got) != 2 || !strings.Contains(got[0], "@addr-set-sshd") {
		t.Errorf("after nginx stopped, rules:\n%s", strings.Join(got, "\n"))
	}

	// A clean stop lifts the bans; a start and a sync bring them back.
	if err := second.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if rs := ruleset(t, ns); rs != "" {
		t.Fatalf("after the last Stop, the ruleset is\n%s", rs)
	}
	if err := second.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := second.Sync(ctx, []Element{{Addr: a, Timeout: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	if got := addrs(t, second); !slices.Equal(got, []string{"192.0.2.1"}) {
		t.Errorf("after stop, start and sync: %v", got)
	}
	if err := second.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

func addrs(tb testing.TB, n interface {
	Elements(context.Context) ([]Element, error)
}) []string {
	tb.Helper()
	els, err := n.Elements(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, e := range els {
		out = append(out, e.Addr.String())
	}
	return out
}

// TestNFTablesTakesOverShellSet starts where fail2ban's shell action
// left its set (flags interval, no timeouts) and its rule: the set is
// replaced by one with timeouts, and the rule by the jail's, once.
func TestNFTablesTakesOverShellSet(t *testing.T) {
	netnstest.NeedCommand(t, "nft", "nftables")
	ns := netnstest.New(t)
	nft(t, ns, "add", "table", "inet", "f2b-table")
	nft(t, ns, "add", "chain", "inet", "f2b-table", "f2b-chain", "{ type filter hook input priority -1 ; }")
	nft(t, ns, "add", "set", "inet", "f2b-table", "addr-set-sshd", "{ type ipv4_addr ; flags interval ; }")
	nft(t, ns, "add", "rule", "inet", "f2b-table", "f2b-chain", "tcp", "dport", "{ 22 }", "ip", "saddr", "@addr-set-sshd", "reject")
	nft(t, ns, "add", "element", "inet", "f2b-table", "addr-set-sshd", "{ 192.0.2.9 }")
	n, err := NewNFTables(NewHost(ns), nftConfig("sshd", tcp, Ports{{22, 22}}, "reject"))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx := context.Background()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"ip saddr @addr-set-sshd tcp dport 22 reject", "ip6 saddr @addr6-set-sshd tcp dport 22 reject"}
	if got := chainRules(t, ns); !slices.Equal(got, want) {
		t.Errorf("rules:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if err := n.Add(ctx, []Element{{Addr: netip.MustParseAddr("192.0.2.1"), Timeout: time.Minute}}); err != nil {
		t.Fatal(err)
	}
	if got, want := setElements(t, ns, "addr-set-sshd"), map[string]int{"192.0.2.1": 60}; !reflect.DeepEqual(got, want) {
		t.Errorf("set: %v, want %v", got, want)
	}
	if err := n.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestNFTablesTimeout lets the kernel lift a ban: its element goes when
// its timeout ends, with no daemon doing anything.
func TestNFTablesTimeout(t *testing.T) {
	ctx := context.Background()
	l := netnstest.NewLink(t)
	l.Listen(t, 22)
	n, err := NewNFTables(NewHost(l.Server), nftConfig("sshd", tcp, Ports{{22, 22}}, "reject"))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.Add(ctx, []Element{{Addr: netnstest.ClientsV4[0], Timeout: 700 * time.Millisecond}}); err != nil {
		t.Fatal(err)
	}
	if err := l.Dial(t, netnstest.ClientsV4[0], 22); !netnstest.Refused(err) {
		t.Fatalf("banned for 700 ms: %v", err)
	}
	time.Sleep(time.Second)
	if err := l.Dial(t, netnstest.ClientsV4[0], 22); err != nil {
		t.Errorf("after the timeout: %v", err)
	}
	if got := addrs(t, n); len(got) != 0 {
		t.Errorf("after the timeout, the set holds %v", got)
	}
	if err := n.Remove(ctx, []netip.Addr{netnstest.ClientsV4[0]}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unban after the timeout: %v, want ErrNotFound", err)
	}
}

// TestNFTablesMany adds and removes more addresses than one message
// holds, and one that is not there among them, and syncs them.
func TestNFTablesMany(t *testing.T) {
	ctx := context.Background()
	ns := netnstest.New(t)
	n, err := NewNFTables(NewHost(ns), nftConfig("sshd", tcp, Ports{{22, 22}}, "drop"))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	els := benchElements(3*setChunk + 7)
	if err := n.Add(ctx, els); err != nil {
		t.Fatal(err)
	}
	if got := addrs(t, n); len(got) != len(els) {
		t.Fatalf("%d elements in the sets, want %d", len(got), len(els))
	}
	var rm []netip.Addr
	for _, e := range els {
		rm = append(rm, e.Addr)
	}
	missing := netip.MustParseAddr("203.0.113.77")
	err = n.Remove(ctx, append(rm, missing))
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), missing.String()) {
		t.Errorf("removing with one missing: %v", err)
	}
	if got := addrs(t, n); len(got) != 0 {
		t.Errorf("%d elements left", len(got))
	}
	// A sync of many elements, in one batch.
	if err := n.Sync(ctx, els); err != nil {
		t.Fatal(err)
	}
	if err := n.Sync(ctx, els[len(els)/2:]); err != nil {
		t.Fatal(err)
	}
	if got, want := addrs(t, n), len(els)-len(els)/2; len(got) != want {
		t.Errorf("%d elements after Sync, want %d", len(got), want)
	}
	if err := n.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

// benchElements returns n distinct addresses, a tenth of them IPv6,
// banned for an hour.
func benchElements(n int) []Element {
	els := make([]Element, n)
	for i := range els {
		if i%10 == 9 {
			els[i].Addr = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)})
		} else {
			els[i].Addr = netip.AddrFrom4([4]byte{198, 18 + byte(i>>16), byte(i >> 8), byte(i)})
		}
		els[i].Timeout = time.Hour
	}
	return els
}

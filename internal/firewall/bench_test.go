package firewall

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	"github.com/edgeban/edgeban/internal/netnstest"
)

// benchBans is how many addresses the ban benchmarks ban, then unban.
const benchBans = 10000

// BenchmarkBan10000 times banning 10,000 addresses and unbanning them
// in a jail's nftables set, in a network namespace it creates, three
// ways:
//
//   - netlink: as the native action does, one netlink batch per ban and
//     per unban (a jail bans one address at a time);
//   - netlink-batch: all 10,000 in batches of setChunk, as a restore does;
//   - nft-command: as fail2ban does, one nft process per ban (its
//     actionban, nft add element) and per unban (nft delete element).
//
// Each reports ban-ms and unban-ms, the time for the 10,000. Run it
// with -benchtime 1x: the nft-command way takes a minute or so.
//
//	go test -run '^$' -bench BenchmarkBan10000 -benchtime 1x ./internal/firewall
func BenchmarkBan10000(b *testing.B) {
	ctx := context.Background()
	els := benchElements(benchBans)
	addrs := make([]netip.Addr, len(els))
	for i, e := range els {
		addrs[i] = e.Addr
	}
	ways := []struct {
		name       string
		ban, unban func(b *testing.B, n *NFTables, ns string)
	}{
		{"netlink",
			func(b *testing.B, n *NFTables, _ string) {
				for _, e := range els {
					if err := n.Add(ctx, []Element{e}); err != nil {
						b.Fatal(err)
					}
				}
			},
			func(b *testing.B, n *NFTables, _ string) {
				for _, a := range addrs {
					if err := n.Remove(ctx, []netip.Addr{a}); err != nil {
						b.Fatal(err)
					}
				}
			}},
		{"netlink-batch",
			func(b *testing.B, n *NFTables, _ string) {
				if err := n.Add(ctx, els); err != nil {
					b.Fatal(err)
				}
			},
			func(b *testing.B, n *NFTables, _ string) {
				if err := n.Remove(ctx, addrs); err != nil {
					b.Fatal(err)
				}
			}},
		{"nft-command",
			func(b *testing.B, _ *NFTables, ns string) { nftEach(b, ns, "add", addrs) },
			func(b *testing.B, _ *NFTables, ns string) { nftEach(b, ns, "delete", addrs) }},
	}
	for _, w := range ways {
		b.Run(w.name, func(b *testing.B) {
			if w.name == "nft-command" {
				netnstest.NeedCommand(b, "nft", "nftables")
			}
			ns := netnstest.New(b)
			n, err := NewNFTables(NewHost(ns), nftConfig("bench", tcp, Ports{{22, 22}}, "reject"))
			if err != nil {
				b.Fatal(err)
			}
			defer n.Close()
			if err := n.Start(ctx); err != nil {
				b.Fatal(err)
			}
			var ban, unban time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				w.ban(b, n, ns)
				ban += time.Since(start)
				b.StopTimer()
				if got := len(addrsOf(b, n)); got != benchBans {
					b.Fatalf("%d addresses banned, want %d", got, benchBans)
				}
				b.StartTimer()
				start = time.Now()
				w.unban(b, n, ns)
				unban += time.Since(start)
			}
			b.StopTimer()
			if got := len(addrsOf(b, n)); got != 0 {
				b.Fatalf("%d addresses left after the unbans", got)
			}
			b.ReportMetric(float64(ban.Milliseconds())/float64(b.N), "ban-ms")
			b.ReportMetric(float64(unban.Milliseconds())/float64(b.N), "unban-ms")
			b.ReportMetric(0, "ns/op") // the two above say it
		})
	}
}

func addrsOf(b *testing.B, n *NFTables) []Element {
	els, err := n.Elements(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return els
}

// nftEach runs one nft process per address, in namespace ns, as
// fail2ban's nftables actionban and actionunban do: nft add element
// inet f2b-table addr-set-bench { ADDR }. The processes start in the
// namespace directly (not through ip netns exec, which would start one
// more process each).
func nftEach(b *testing.B, ns, verb string, addrs []netip.Addr) {
	netnstest.Run(b, ns, func() {
		for _, a := range addrs {
			set := "addr-set-bench"
			if a.Is6() {
				set = "addr6-set-bench"
			}
			cmd := exec.Command("nft", verb, "element", "inet", "f2b-table", set, fmt.Sprintf("{ %s }", a))
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("%s: %v: %s", cmd, err, out)
			}
		}
	})
}

// BenchmarkRestartSync100000 times what a restart after a kill costs a
// jail with 100,000 active bans before it is ready: the set holds
// 100,000 elements the killed daemon left, a tenth of them no longer
// banned, and Sync makes it hold the 100,000 active bans (90,000 kept
// as they are, 10,000 added, 10,000 removed). It reports sync-ms.
//
//	go test -run '^$' -bench BenchmarkRestartSync100000 -benchtime 1x ./internal/firewall
func BenchmarkRestartSync100000(b *testing.B) {
	ctx := context.Background()
	const n = 100000
	all := benchElements(n + n/10)
	left, active := all[:n], all[n/10:]
	ns := netnstest.New(b)
	fw, err := NewNFTables(NewHost(ns), nftConfig("bench", tcp, Ports{{22, 22}}, "reject"))
	if err != nil {
		b.Fatal(err)
	}
	defer fw.Close()
	if err := fw.Start(ctx); err != nil {
		b.Fatal(err)
	}
	var took time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if err := fw.Sync(ctx, left); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		if err := fw.Sync(ctx, active); err != nil {
			b.Fatal(err)
		}
		took += time.Since(start)
	}
	b.StopTimer()
	if got := len(addrsOf(b, fw)); got != n {
		b.Fatalf("%d addresses after Sync, want %d", got, n)
	}
	b.ReportMetric(float64(took.Milliseconds())/float64(b.N), "sync-ms")
	b.ReportMetric(0, "ns/op")
}

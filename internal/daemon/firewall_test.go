package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeban/edgeban/internal/firewall"
	"github.com/edgeban/edgeban/internal/netnstest"
	"github.com/edgeban/edgeban/internal/store"
)

// TestFirewallBans runs the daemon with jail.conf's banaction =
// nftables, natively, in a network namespace: a failure in the log
// bans its address in the kernel, whose packets from then on are
// refused while the client's other address gets through; a clean stop
// lifts the bans; a restart after a kill (what it left in the kernel,
// and a ban that was lifted meanwhile) leaves exactly the store's
// active bans in the kernel by the time the jail is ready.
func TestFirewallBans(t *testing.T) {
	netnstest.NeedCommand(t, "nft", "nftables")
	l := netnstest.NewLink(t)
	l.Listen(t, 2222)
	banned, other := netnstest.ClientsV4[1], netnstest.ClientsV4[0]
	dir := writeConf(t, map[string]string{
		"filter.d/app.conf": "[Definition]\nfailregex = ^\\s*fail from <HOST>$\n",
		"jail.local": `[DEFAULT]
banaction = nftables
banaction_allports = nftables[type=allports]
port = 0:65535
protocol = tcp
chain = <known/chain>
action_ = %(banaction)s[port="%(port)s", protocol="%(protocol)s", chain="%(chain)s"]
action = %(action_)s
[app]
enabled = true
filter = app
port = 2222
maxretry = 1
bantime = 1h
logpath = $DIR/app.log
`,
		"app.log": "",
	})
	db, err := store.Open(context.Background(), filepath.Join(dir, "e.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	host := firewall.NewHost(l.Server)
	opts := Options{Store: db, Log: slog.New(slog.DiscardHandler), Firewall: host}

	d, stop := startDaemon(t, dir, opts)
	j, _ := d.jail("app")
	<-j.Ready()
	f, err := os.OpenFile(filepath.Join(dir, "app.log"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "%s fail from %s\n", time.Now().Format("2006-01-02 15:04:05"), banned)
	f.Close()
	waitFor(t, "the ban in the kernel", func() bool { return strings.Contains(kernelSet(t, l.Server), banned.String()) })
	if err := l.Dial(t, banned, 2222); !netnstest.Refused(err) {
		t.Errorf("banned %s: %v, want refused", banned, err)
	}
	if err := l.Dial(t, other, 2222); err != nil {
		t.Errorf("%s, not banned: %v", other, err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if rs := strings.TrimSpace(netnstest.Exec(t, l.Server, "nft", "list", "ruleset")); rs != "" {
		t.Fatalf("after a clean stop, the ruleset is\n%s", rs)
	}

	// A killed daemon left the set with the ban and one that was lifted
	// while it was down: the restart must bring back the first only.
	stale := netip.MustParseAddr("192.0.2.77")
	fw, err := firewall.NewNFTables(host, firewall.NFTConfig{Table: "f2b-table", TableFamily: "inet", Chain: "f2b-chain",
		ChainType: "filter", Hook: "input", Priority: -1, Sets: map[firewall.Family]string{firewall.IPv4: "addr-set-app", firewall.IPv6: "addr6-set-app"},
		Protocols: []firewall.Protocol{{Name: "tcp", Number: 6}}, Ports: firewall.Ports{{First: 2222, Last: 2222}}, BlockType: "reject"})
	if err != nil {
		t.Fatal(err)
	}
	if err := fw.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := fw.Add(context.Background(), []firewall.Element{{Addr: banned, Timeout: time.Hour}, {Addr: stale}}); err != nil {
		t.Fatal(err)
	}
	fw.Close()
	d, stop = startDaemon(t, dir, opts)
	defer stop()
	j, _ = d.jail("app")
	<-j.Ready()
	if got := kernelSet(t, l.Server); !strings.Contains(got, banned.String()) || strings.Contains(got, stale.String()) {
		t.Errorf("once the restarted jail is ready, the set is\n%s\nwant %s and not %s", got, banned, stale)
	}
	if err := l.Dial(t, banned, 2222); !netnstest.Refused(err) {
		t.Errorf("banned %s after the restart: %v, want refused", banned, err)
	}
	if rules := netnstest.Exec(t, l.Server, "nft", "list", "chain", "inet", "f2b-table", "f2b-chain"); strings.Count(rules, "@addr-set-app") != 1 {
		t.Errorf("after the restart, the chain is\n%s", rules)
	}
}

// startDaemon runs the daemon of dir with opts (without a Store, on a
// database of its own in dir, closed at stop; without a Log, silent);
// stop stops it and returns what Run returned.
func startDaemon(t *testing.T, dir string, opts Options) (*Daemon, func() error) {
	t.Helper()
	var own *store.DB
	if opts.Store == nil {
		db, err := store.Open(context.Background(), filepath.Join(dir, "e.db"))
		if err != nil {
			t.Fatal(err)
		}
		own, opts.Store = db, db
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	d, err := Load(dir, opts)
	if err != nil {
		if own != nil {
			own.Close()
		}
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var stopped bool
	var runErr error
	return d, func() error {
		if !stopped {
			cancel()
			runErr, stopped = <-done, true
			if own != nil {
				own.Close()
			}
		}
		return runErr
	}
}

// kernelSet lists jail app's IPv4 set in namespace ns.
func kernelSet(t *testing.T, ns string) string {
	return netnstest.Exec(t, ns, "nft", "list", "set", "inet", "f2b-table", "addr-set-app")
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 10 s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

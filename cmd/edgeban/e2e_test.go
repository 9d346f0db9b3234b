package main

// End-to-end tests with real processes: the edgeban binary as fail2ban and
// users run it, the worker killed with SIGKILL, and Debian's fail2ban-server
// driving our action file. Cloudflare is cfsim on loopback.

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgeban/edgeban/internal/cloudflare"
	"github.com/edgeban/edgeban/internal/cloudflare/cfsim"
	"github.com/edgeban/edgeban/internal/store"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// edgebanBinary builds the edgeban binary once per test run.
func edgebanBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		gobin, err := exec.LookPath("go")
		if err != nil {
			gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		dir, err := os.MkdirTemp("", "edgeban-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "edgeban")
		out, err := exec.Command(gobin, "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// simServer starts cfsim on loopback.
func simServer(t *testing.T, cfg cfsim.Config) (*cfsim.Server, string) {
	t.Helper()
	if cfg.Seed == 0 {
		cfg.Seed = 11
	}
	sim := cfsim.New(cfg)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, srv.URL + "/client/v4"
}

// The seed's global key (cfuser, cftoken), as cfsim accepts it in the tests.
const (
	seedEmail = "admin@example.com"
	seedKey   = "0123456789abcdef0123456789abcdef01234"
)

// seedSim starts cfsim accepting the seed's global key, and returns a
// client of it with that key, to make or read rules by hand.
func seedSim(t *testing.T) (*cfsim.Server, string, *cloudflare.Client) {
	t.Helper()
	sim, api := simServer(t, cfsim.Config{Email: seedEmail, Key: seedKey})
	c, err := cloudflare.New(cloudflare.Options{BaseURL: api, Auth: cloudflare.Auth{Email: seedEmail, Key: seedKey}})
	if err != nil {
		t.Fatal(err)
	}
	return sim, api, c
}

// run runs the edgeban binary and fails the test on a non-zero exit.
func run(t *testing.T, bin string, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Errorf("edgeban %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// worker is a running "edgeban cloudflare serve".
type worker struct {
	cmd *exec.Cmd
	log *bytes.Buffer
}

func startWorker(t *testing.T, bin string, args ...string) *worker {
	t.Helper()
	w := &worker{log: &bytes.Buffer{}}
	w.cmd = exec.Command(bin, append([]string{"cloudflare", "serve"}, args...)...)
	w.cmd.Stdout, w.cmd.Stderr = w.log, w.log
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.stop() })
	return w
}

func (w *worker) kill() {
	w.cmd.Process.Signal(syscall.SIGKILL)
	w.cmd.Wait()
}

func (w *worker) stop() {
	if w.cmd.ProcessState != nil {
		return
	}
	w.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { w.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		w.kill()
	}
}

// outboxStatus reads the outbox's state per destination from the
// database at dbPath.
func outboxStatus(t *testing.T, dbPath string) []store.DestStatus {
	t.Helper()
	db, err := store.Open(context.Background(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err := db.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// outboxState counts pending, live and claimed entries in the database.
func outboxState(t *testing.T, dbPath string) (pending, live, claimed int) {
	t.Helper()
	for _, s := range outboxStatus(t, dbPath) {
		pending += s.PendingBan + s.PendingUnban
		live += s.Live
		claimed += s.Claimed
	}
	return pending, live, claimed
}

func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestFaultWave is acceptance 3: with 30% 5xx, 429 bursts and 200 ms of
// latency at cfsim, a wave of 2,000 bans and then 1,500 of their unbans,
// sent through the CLI by 8 concurrent callers, ends with every due ban
// present exactly once and every unbanned one gone, also when the worker
// is killed with SIGKILL in the middle of each half and restarted.
func TestFaultWave(t *testing.T) {
	if testing.Short() {
		t.Skip("a 2,000-ban wave against a faulty simulator; skipped with -short")
	}
	bin := edgebanBinary(t)
	const (
		token   = "fault-wave-token-0123456789abcdef"
		n       = 2000
		unbanN  = 1500
		callers = 8
	)
	tests := []struct {
		name string
		dest []string // destination flags
		kill bool
	}{
		{"access rules", []string{"--account", cfsim.DefaultAccountID}, false},
		{"access rules, worker killed", []string{"--account", cfsim.DefaultAccountID}, true},
		{"ip list, worker killed", []string{"--account", cfsim.DefaultAccountID, "--list", "edgeban"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			list := len(tt.dest) > 2
			cfg := cfsim.Config{
				Tokens: []cfsim.Token{{Value: token}},
				Faults: cfsim.Faults{Error5xx: 0.3, Burst429Every: 200, Burst429Len: 5, Latency: 200 * time.Millisecond},
			}
			if list {
				// A list wave takes a few dozen requests: burst more often.
				cfg.Faults.Burst429Every, cfg.Faults.Burst429Len = 10, 2
			} else {
				// 4,000+ access-rule writes do not fit Cloudflare's 1,200 per
				// 5 minutes in a test's time: raise the simulator's limit and
				// our budget together.
				cfg.RateLimit = 100_000
			}
			sim, api := simServer(t, cfg)
			dir := t.TempDir()
			dbPath := filepath.Join(dir, "edgeban.db")
			tokenFile := filepath.Join(dir, "token")
			os.WriteFile(tokenFile, []byte(token+"\n"), 0o600)
			common := append([]string{"--db", dbPath, "--api", api, "--token-file", tokenFile, "--rate-limit", "50000"}, tt.dest...)
			if list {
				run(t, bin, "", append([]string{"cloudflare", "setup-list", "--zone", cfsim.DefaultZoneName}, common...)...)
			}
			workerArgs := []string{"--db", dbPath, "--concurrency", "48", "--list-flush", "300ms", "--rate-limit", "50000", "--log-level", "warn"}
			w := startWorker(t, bin, workerArgs...)

			ips := make([]string, n)
			for i := range ips {
				ips[i] = fmt.Sprintf("100.%d.%d.%d", 64+i/65536, i/256%256, i%256)
				if i%10 == 9 {
					ips[i] = fmt.Sprintf("2001:db8:%x::%x", i/256, i%256+1)
				}
			}
			wave := func(verb string, addrs []string) {
				var wg sync.WaitGroup
				for c := range callers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := c; i < len(addrs); i += callers {
							args := append([]string{"cloudflare", verb, "--jail", "sshd"}, common...)
							run(t, bin, "", append(args, addrs[i])...)
						}
					}()
				}
				wg.Wait()
			}
			// With tt.kill, the worker is killed with SIGKILL while it is
			// delivering (it holds claims, and cond holds), and restarted at
			// once; the callers go on meanwhile.
			killDuring := func(phase string, cond func(live int) bool) (done func()) {
				if !tt.kill {
					return func() {}
				}
				ch := make(chan struct{})
				go func() {
					defer close(ch)
					deadline := time.Now().Add(2 * time.Minute)
					for time.Now().Before(deadline) {
						p, live, claimed := outboxState(t, dbPath)
						if claimed > 0 && cond(live) {
							w.kill()
							t.Logf("%s: killed the worker with %d live, %d pending, %d being delivered", phase, live, p, claimed)
							w = startWorker(t, bin, workerArgs...)
							return
						}
						time.Sleep(100 * time.Millisecond)
					}
					t.Errorf("%s: never found the worker mid-delivery", phase)
				}()
				return func() { <-ch }
			}

			// Access rules go out one by one: kill a third of the way in. A
			// list write carries everything at once: kill during one.
			done := killDuring("bans", func(live int) bool { return list || live >= n/3 })
			wave("ban", ips)
			done()
			waitFor(t, "the bans to be delivered", 3*time.Minute, func() bool { p, _, _ := outboxState(t, dbPath); return p == 0 })
			done = killDuring("unbans", func(live int) bool { return list || live <= n-unbanN/3 })
			wave("unban", ips[:unbanN])
			done()
			waitFor(t, "the unbans to be delivered", 3*time.Minute, func() bool { p, _, _ := outboxState(t, dbPath); return p == 0 })

			// Compare Cloudflare's holdings with what should be banned.
			want := map[string]bool{}
			for _, ip := range ips[unbanN:] {
				if list {
					ip, _ = cloudflare.ListItemFor(ip)
				}
				want[ip] = true
			}
			held := map[string]int{}
			if list {
				for _, it := range sim.ListItems("edgeban") {
					held[it.Value]++
				}
			} else {
				for _, r := range sim.AccessRules(cfsim.AccountScope(cfsim.DefaultAccountID)) {
					held[r.Value]++
				}
			}
			duplicates, orphans, missing := 0, 0, 0
			for v, c := range held {
				duplicates += c - 1
				if !want[v] {
					orphans++
				}
			}
			for v := range want {
				if held[v] == 0 {
					missing++
				}
			}
			st := sim.Stats()
			t.Logf("requests %d, 429s %d, injected 5xx %d; duplicates %d, orphans %d, missing %d",
				st.Requests, st.RateLimited, st.Injected5xx, duplicates, orphans, missing)
			if duplicates != 0 || orphans != 0 || missing != 0 {
				t.Errorf("duplicates %d, orphans %d, missing %d: want all 0", duplicates, orphans, missing)
			}
			if st.Injected5xx == 0 || st.RateLimited == 0 {
				t.Errorf("the faults did not fire (5xx %d, 429 %d)", st.Injected5xx, st.RateLimited)
			}
		})
	}
}

// TestCLIDeliversWithoutWorker: with no worker, concurrent CLI calls each
// deliver their own operation before they exit, and never send one twice.
func TestCLIDeliversWithoutWorker(t *testing.T) {
	bin := edgebanBinary(t)
	const token = "no-worker-token-0123456789abcdef"
	sim, api := simServer(t, cfsim.Config{Tokens: []cfsim.Token{{Value: token}}, Faults: cfsim.Faults{Error5xx: 0.2, Latency: 20 * time.Millisecond}})
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "edgeban.db")
	var wg sync.WaitGroup
	for c := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 15 {
				ip := fmt.Sprintf("192.0.2.%d", c*15+i+1)
				// The secret on stdin, as the fail2ban action hands it over.
				// A burst of 60 bans in a second: a larger burst allowance
				// lets each call deliver its own within its few seconds.
				run(t, bin, token+"\n", "cloudflare", "ban", "--db", dbPath, "--api", api, "--secret-stdin", "--zone", cfsim.DefaultZoneName, "--jail", "nginx", "--rate-burst", "200", ip)
			}
		}()
	}
	wg.Wait()
	// Nearly everything is delivered by the calls themselves; what met a
	// run of 5xx longer than a call's few seconds is queued and shown.
	if p, live, _ := outboxState(t, dbPath); p+live != 60 || p > 6 {
		t.Errorf("pending %d live %d after the calls returned; want about 60 live", p, live)
	} else if p > 0 {
		out := run(t, bin, "", "cloudflare", "status", "--db", dbPath)
		if !strings.Contains(out, "FAILING") {
			t.Errorf("%d queued operations are not shown as failing:\n%s", p, out)
		}
	}
	// The next caller takes the backlog along with its own operation.
	run(t, bin, token+"\n", "cloudflare", "ban", "--db", dbPath, "--api", api, "--secret-stdin", "--zone", cfsim.DefaultZoneName, "--jail", "nginx", "--wait", "20s", "192.0.2.200")
	if p, live, _ := outboxState(t, dbPath); p != 0 || live != 61 {
		t.Errorf("pending %d live %d after the next caller; want 0 and 61", p, live)
	}
	rules := sim.AccessRules(cfsim.ZoneScope(cfsim.DefaultZoneID))
	if len(rules) != 61 {
		t.Errorf("%d rules at cfsim, want 61", len(rules))
	}
	creates := sim.Stats().ByRoute["POST /zones/{zone_id}/firewall/access_rules/rules"]
	t.Logf("%d creates for 60 bans under 20%% 5xx", creates)
	out := run(t, bin, "", "cloudflare", "status", "--db", dbPath)
	if !strings.Contains(out, "created") {
		t.Errorf("status does not show the delivered bans:\n%s", out)
	}
}

// TestFail2banEndToEnd is acceptance 2: Debian's fail2ban-server runs a jail
// whose action is our edgeban-cloudflare[...], pointed at cfsim.
func TestFail2banEndToEnd(t *testing.T) {
	f2bClient, err := exec.LookPath("fail2ban-client")
	if err != nil {
		t.Skip("needs Debian's fail2ban package (fail2ban-client not in PATH); .ci/run installs it")
	}
	bin := edgebanBinary(t)
	const (
		email = seedEmail
		key   = seedKey
	)
	sim, api, c := seedSim(t)
	// A rule made by hand for an address that fail2ban will also ban.
	manual, _ := cloudflare.TargetFor("192.0.2.77", false)
	if _, err := c.CreateAccessRule(context.Background(), cloudflare.Scope{Kind: "user"}, "challenge", manual, "added by hand"); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "action.d"), 0o755))
	must(os.MkdirAll(filepath.Join(dir, "filter.d"), 0o755))
	action, err := os.ReadFile("../../contrib/fail2ban/action.d/edgeban-cloudflare.conf")
	must(err)
	must(os.WriteFile(filepath.Join(dir, "action.d", "edgeban-cloudflare.conf"), action, 0o644))
	must(os.WriteFile(filepath.Join(dir, "fail2ban.conf"), []byte(fmt.Sprintf(`[Definition]
loglevel = INFO
logtarget = %[1]s/fail2ban.log
socket = %[1]s/fail2ban.sock
pidfile = %[1]s/fail2ban.pid
dbfile = %[1]s/fail2ban.sqlite3
`, dir)), 0o644))
	must(os.WriteFile(filepath.Join(dir, "filter.d", "edgeban-test.conf"), []byte(`[Definition]
failregex = ^ authentication failure for \S+ from <HOST> port \d+$
datepattern = ^%%Y-%%m-%%d %%H:%%M:%%S
`), 0o644))
	must(os.WriteFile(filepath.Join(dir, "jail.conf"), []byte("[DEFAULT]\nbantime = 600\n"), 0o644))
	// The seed article's [DEFAULT] parameter names and action line.
	must(os.WriteFile(filepath.Join(dir, "jail.local"), []byte(fmt.Sprintf(`[DEFAULT]
cfemail = %s
cfapikey = %s

[edgeban-test]
enabled = true
filter = edgeban-test
logpath = %s/auth.log
backend = polling
maxretry = 2
findtime = 600
bantime = 6
action = edgeban-cloudflare[cfuser="%%(cfemail)s", cftoken="%%(cfapikey)s", cfapi="%s", edgeban="%s", edgeban_db="%s/edgeban.db"]
`, email, key, dir, api, bin, dir)), 0o644))
	logPath := filepath.Join(dir, "auth.log")
	must(os.WriteFile(logPath, nil, 0o644))

	server := exec.Command(f2bClient, "-c", dir, "-x", "-f", "start")
	var serverLog bytes.Buffer
	server.Stdout, server.Stderr = &serverLog, &serverLog
	must(server.Start())
	t.Cleanup(func() {
		exec.Command(f2bClient, "-c", dir, "stop").Run()
		done := make(chan struct{})
		go func() { server.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			server.Process.Kill()
		}
		if t.Failed() {
			f2bLog, _ := os.ReadFile(filepath.Join(dir, "fail2ban.log"))
			t.Logf("fail2ban-client output:\n%s\nfail2ban.log:\n%s", serverLog.String(), f2bLog)
		}
	})
	waitFor(t, "fail2ban to start the jail", 30*time.Second, func() bool {
		return exec.Command(f2bClient, "-c", dir, "status", "edgeban-test").Run() == nil
	})

	f, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	must(err)
	for i := range 3 {
		for _, ip := range []string{"192.0.2.10", "192.0.2.77"} {
			fmt.Fprintf(f, "%s authentication failure for root from %s port %d\n", time.Now().Format("2006-01-02 15:04:05"), ip, 40000+i)
		}
	}
	f.Close()

	rules := func() map[string]string {
		m := map[string]string{}
		for _, r := range sim.AccessRules(cfsim.UserScope) {
			m[r.Value] += r.Notes + ";"
		}
		return m
	}
	waitFor(t, "the ban at cfsim", 30*time.Second, func() bool { return rules()["192.0.2.10"] != "" })
	got := rules()
	if got["192.0.2.10"] != "Banned by Fail2Ban;" {
		t.Errorf("banned rule notes %q, want the seed's note once", got["192.0.2.10"])
	}
	waitFor(t, "fail2ban to ban the hand-made rule's address too", 30*time.Second, func() bool {
		out, _ := exec.Command(f2bClient, "-c", dir, "status", "edgeban-test").CombinedOutput()
		return strings.Contains(string(out), "192.0.2.77")
	})
	// At bantime fail2ban unbans: our rule goes, the hand-made one stays.
	waitFor(t, "the unban at cfsim", 40*time.Second, func() bool { return rules()["192.0.2.10"] == "" })
	time.Sleep(2 * time.Second) // let the other unban's action finish too
	out, _ := exec.Command(f2bClient, "-c", dir, "status", "edgeban-test").CombinedOutput()
	if strings.Contains(string(out), "192.0.2.77") {
		waitFor(t, "fail2ban to unban 192.0.2.77", 30*time.Second, func() bool {
			out, _ := exec.Command(f2bClient, "-c", dir, "status", "edgeban-test").CombinedOutput()
			return !strings.Contains(string(out), "192.0.2.77")
		})
		time.Sleep(2 * time.Second)
	}
	got = rules()
	if got["192.0.2.77"] != "added by hand;" {
		t.Errorf("the hand-made rule became %q, want it left alone", got["192.0.2.77"])
	}
	if len(got) != 1 {
		t.Errorf("rules at the end: %v, want only the hand-made one", got)
	}
	// The secret never reached a command line: fail2ban logs the commands
	// it runs at higher levels only, but check ours carries no key.
	status := run(t, bin, "", "cloudflare", "status", "--db", filepath.Join(dir, "edgeban.db"))
	if strings.Contains(status, key) {
		t.Error("status shows the secret")
	}
}

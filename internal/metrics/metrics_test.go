package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edgeban/edgeban/internal/cloudflare"
	"github.com/edgeban/edgeban/internal/cloudflare/cfsim"
	"github.com/edgeban/edgeban/internal/daemon"
	"github.com/edgeban/edgeban/internal/store"
)

const token = "tok-metrics-0123456789"

// testDaemon is a daemon run for a test over real parts: its
// configuration in a temporary directory, a database, shell actions, and
// the native Cloudflare action into cfsim, its requests counted by cf.
type testDaemon struct {
	dir string
	d   *daemon.Daemon
	db  *store.DB
	cf  *Cloudflare
	reg *prometheus.Registry
	sim *cfsim.Server
}

// jails is the jail.local of the tests: app bans through a shell action,
// web at Cloudflare; $API is cfsim's API.
const jails = `[app]
enabled = true
filter = app
maxretry = 2
logpath = $DIR/app.log
action = note

[web]
enabled = true
filter = app
maxretry = 3
logpath = $DIR/web.log
action = cloudflare-token[cfzone=example.com, cftoken=` + token + `, cfapi="$API"]
`

func startDaemon(t *testing.T, cfOpts daemon.CloudflareOptions) *testDaemon {
	t.Helper()
	sim := cfsim.New(cfsim.Config{Tokens: []cfsim.Token{{Value: token}}, Seed: 7})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close) // after the daemon's cleanup: its worker talks to it
	dir := t.TempDir()
	files := map[string]string{
		"filter.d/app.conf":  "[Definition]\nfailregex = ^\\s*fail from <HOST>$\n",
		"action.d/note.conf": "[Definition]\nactionban = echo ban <ip> >> $DIR/calls\nactionunban = echo unban <ip> >> $DIR/calls\n",
		"jail.local":         strings.ReplaceAll(jails, "$API", srv.URL+"/client/v4"),
		"app.log":            "",
		"web.log":            "",
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(strings.ReplaceAll(content, "$DIR", dir)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	db, err := store.Open(context.Background(), filepath.Join(dir, "edgeban.db"))
	if err != nil {
		t.Fatal(err)
	}
	cf := NewCloudflare()
	cfOpts.Observe = cf.Observe
	d, err := daemon.Load(dir, daemon.Options{Store: db, Log: slog.New(slog.DiscardHandler), Cloudflare: cfOpts})
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	reg, err := NewRegistry(d, cf, "test")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		db.Close()
	})
	td := &testDaemon{dir: dir, d: d, db: db, cf: cf, reg: reg, sim: sim}
	td.waitHealthy(t)
	return td
}

func (td *testDaemon) waitHealthy(t *testing.T) {
	t.Helper()
	waitFor(t, func() string { return fmt.Sprintf("a healthy daemon: %+v", td.d.Health(context.Background())) },
		func() bool { return td.d.Health(context.Background()).Healthy })
}

// write appends lines, dated now, to the log named name.
func (td *testDaemon) write(t *testing.T, name string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(td.dir, name), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, l := range lines {
		fmt.Fprintf(f, "%s %s\n", time.Now().Format("2006-01-02 15:04:05"), l)
	}
}

// waitFor waits for cond, or fails saying what it waited for.
func waitFor(t *testing.T, what func() string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// compare compares the named metrics of reg with want, in the text
// format.
func compare(reg prometheus.Gatherer, want string, names ...string) error {
	return testutil.GatherAndCompare(reg, strings.NewReader(want), names...)
}

// TestDaemonMetrics feeds two jails of a real daemon lines until they
// ban, one through a shell action, one at cfsim under a rate budget that
// makes requests wait, and checks every metric read from the daemon, the
// Cloudflare requests and waits, that the names pass promlint, and that
// a jail removed by a reload leaves the metrics.
func TestDaemonMetrics(t *testing.T) {
	// One request a second: the second request waits for the first.
	td := startDaemon(t, daemon.CloudflareOptions{RateLimit: 60, RateWindow: time.Minute, RateBurst: 1})
	td.write(t, "app.log", "fail from 192.0.2.1", "session opened", "fail from 192.0.2.1")
	td.write(t, "web.log", "fail from 198.51.100.1", "fail from 127.0.0.1", "fail from 198.51.100.1", "fail from 198.51.100.1")

	const jailMetrics = `
# HELP edgeban_lines_read_total Lines read from the jail's logs.
# TYPE edgeban_lines_read_total counter
edgeban_lines_read_total{jail="app"} 3
edgeban_lines_read_total{jail="web"} 4
# HELP edgeban_lines_matched_total Lines of the jail's logs in which its filter found a failure.
# TYPE edgeban_lines_matched_total counter
edgeban_lines_matched_total{jail="app"} 2
edgeban_lines_matched_total{jail="web"} 4
# HELP edgeban_failures_total Failures the jail counted towards a ban.
# TYPE edgeban_failures_total counter
edgeban_failures_total{jail="app"} 2
edgeban_failures_total{jail="web"} 3
# HELP edgeban_failures_ignored_total Failures the jail's ignore rules let pass (ignoreip, ignoreself, ignorecommand, Cloudflare's own addresses).
# TYPE edgeban_failures_ignored_total counter
edgeban_failures_ignored_total{jail="app"} 0
edgeban_failures_ignored_total{jail="web"} 1
# HELP edgeban_bans_total Bans the jail made, by failures or by hand (restored bans are not new).
# TYPE edgeban_bans_total counter
edgeban_bans_total{jail="app"} 1
edgeban_bans_total{jail="web"} 1
# HELP edgeban_bans_active Bans of the jail in force.
# TYPE edgeban_bans_active gauge
edgeban_bans_active{jail="app"} 1
edgeban_bans_active{jail="web"} 1
# HELP edgeban_action_queue_depth Action work waiting in the jail's background: restored bans whose actions have not run again, failed action bans waiting for their retry.
# TYPE edgeban_action_queue_depth gauge
edgeban_action_queue_depth{jail="app"} 0
edgeban_action_queue_depth{jail="web"} 0
# HELP edgeban_action_bans_total Bans the action carried out (restored bans and retries included).
# TYPE edgeban_action_bans_total counter
edgeban_action_bans_total{action="cloudflare-token",jail="web"} 1
edgeban_action_bans_total{action="note",jail="app"} 1
# HELP edgeban_action_errors_total Bans or unbans of the action that failed (a failed ban is tried again).
# TYPE edgeban_action_errors_total counter
edgeban_action_errors_total{action="cloudflare-token",jail="web",op="ban"} 0
edgeban_action_errors_total{action="cloudflare-token",jail="web",op="unban"} 0
edgeban_action_errors_total{action="note",jail="app",op="ban"} 0
edgeban_action_errors_total{action="note",jail="app",op="unban"} 0
# HELP edgeban_cloudflare_rules Rules or list items Cloudflare holds for edgeban's bans, as far as the outbox knows.
# TYPE edgeban_cloudflare_rules gauge
edgeban_cloudflare_rules{destination="zone example.com"} 1
# HELP edgeban_cloudflare_outbox_pending Bans (op=ban) and unbans (op=unban) in the outbox still to send to Cloudflare.
# TYPE edgeban_cloudflare_outbox_pending gauge
edgeban_cloudflare_outbox_pending{destination="zone example.com",op="ban"} 0
edgeban_cloudflare_outbox_pending{destination="zone example.com",op="unban"} 0
# HELP edgeban_cloudflare_requests_total HTTP requests to Cloudflare's API by method and status code ("none": no answer came, e.g. a timeout).
# TYPE edgeban_cloudflare_requests_total counter
edgeban_cloudflare_requests_total{code="200",method="GET"} 1
edgeban_cloudflare_requests_total{code="200",method="POST"} 1
# HELP edgeban_healthy 1 when the daemon is healthy (its health endpoint answers 200), else 0.
# TYPE edgeban_healthy gauge
edgeban_healthy 1
`
	names := []string{"edgeban_lines_read_total", "edgeban_lines_matched_total", "edgeban_failures_total",
		"edgeban_failures_ignored_total", "edgeban_bans_total", "edgeban_bans_active", "edgeban_action_queue_depth",
		"edgeban_action_bans_total", "edgeban_action_errors_total", "edgeban_cloudflare_rules",
		"edgeban_cloudflare_outbox_pending", "edgeban_cloudflare_requests_total", "edgeban_healthy"}
	var last error
	waitFor(t, func() string { return fmt.Sprint(last) }, func() bool {
		last = compare(td.reg, jailMetrics, names...)
		return last == nil
	})

	// The zone's look-up went at once; the create waited for the budget,
	// about a second.
	if n := testutil.ToFloat64(td.cf.waits); n != 1 {
		t.Errorf("rate-limit waits %v, want 1", n)
	}
	if s := testutil.ToFloat64(td.cf.waitSeconds); s < 0.5 || s > 1.5 {
		t.Errorf("rate-limit wait %vs, want about 1s", s)
	}
	if n := testutil.CollectAndCount(td.cf.duration); n != 2 {
		t.Errorf("%d request duration histograms, want 2 (GET, POST)", n)
	}

	problems, err := testutil.GatherAndLint(td.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	for _, name := range []string{"edgeban_build_info", "go_goroutines", "process_cpu_seconds_total"} {
		if n, err := testutil.GatherAndCount(td.reg, name); err != nil || n != 1 {
			t.Errorf("%s: %d series, %v", name, n, err)
		}
	}

	// A reload that removes web: its metrics go with it.
	local := strings.ReplaceAll(jails[:strings.Index(jails, "[web]")], "$DIR", td.dir)
	if err := os.WriteFile(filepath.Join(td.dir, "jail.local"), []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := td.d.Reload("", false); err != nil {
		t.Fatal(err)
	}
	err = compare(td.reg, `
# HELP edgeban_lines_read_total Lines read from the jail's logs.
# TYPE edgeban_lines_read_total counter
edgeban_lines_read_total{jail="app"} 3
# HELP edgeban_bans_active Bans of the jail in force.
# TYPE edgeban_bans_active gauge
edgeban_bans_active{jail="app"} 1
`, "edgeban_lines_read_total", "edgeban_bans_active")
	if err != nil {
		t.Fatal(err)
	}
}

// TestHandler serves a real daemon's metrics and health over a loopback
// server, while all is well and once its database no longer answers: the
// health says so with 503, and the metrics that do not need the
// database are still served.
func TestHandler(t *testing.T) {
	td := startDaemon(t, daemon.CloudflareOptions{})
	srv := httptest.NewServer(Handler(td.reg, td.d, slog.New(slog.DiscardHandler)))
	defer srv.Close()
	td.write(t, "app.log", "fail from 192.0.2.1", "fail from 192.0.2.1")
	waitFor(t, func() string { return "the ban" }, func() bool {
		b, _ := os.ReadFile(filepath.Join(td.dir, "calls"))
		return string(b) == "ban 192.0.2.1\n"
	})
	get := func(path string) (int, string, string) {
		t.Helper()
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res.StatusCode, res.Header.Get("Content-Type"), string(b)
	}
	type health struct {
		Status   string            `json:"status"`
		Jails    map[string]string `json:"jails"`
		Problems []string          `json:"problems"`
	}
	steps := []struct {
		name       string
		do         func()
		code       int
		status     string
		problem    string
		metrics    []string // lines /metrics has
		notMetrics []string // lines it has not
	}{
		{name: "all well", do: func() {}, code: 200, status: "ok",
			metrics: []string{"edgeban_healthy 1", `edgeban_lines_read_total{jail="app"} 2`,
				`edgeban_cloudflare_outbox_pending{destination="zone example.com",op="ban"} 0`, `edgeban_build_info{goversion="go`,
				`promhttp_metric_handler_errors_total{cause="gathering"} 0`}},
		{name: "the database closed", do: func() { td.db.Close() }, code: 503, status: "unhealthy",
			problem: "the database does not answer",
			metrics: []string{"edgeban_healthy 0", `edgeban_lines_read_total{jail="app"} 2`, `edgeban_bans_active{jail="app"} 1`,
				`promhttp_metric_handler_errors_total{cause="gathering"} 1`},
			notMetrics: []string{"edgeban_cloudflare_outbox_pending{"}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.do()
			code, ctype, body := get(HealthPath)
			var h health
			if err := json.Unmarshal([]byte(body), &h); err != nil {
				t.Fatalf("health %q: %v", body, err)
			}
			if code != st.code || ctype != "application/json" || h.Status != st.status || h.Jails["app"] != "running" ||
				st.problem != "" && (len(h.Problems) != 1 || !strings.Contains(h.Problems[0], st.problem)) {
				t.Fatalf("health: %d %s %s", code, ctype, body)
			}
			// The second scrape counts the first's errors.
			get(MetricsPath)
			code, _, body = get(MetricsPath)
			if code != 200 {
				t.Fatalf("metrics: %d\n%s", code, body)
			}
			for _, m := range st.metrics {
				if !strings.Contains(body, "\n"+m) {
					t.Errorf("metrics lack %q", m)
				}
			}
			for _, m := range st.notMetrics {
				if strings.Contains(body, "\n"+m) {
					t.Errorf("metrics have %q", m)
				}
			}
			if t.Failed() {
				t.Logf("metrics:\n%s", body)
			}
		})
	}
	if code, _, _ := get("/nosuch"); code != 404 {
		t.Errorf("/nosuch: %d", code)
	}
	res, err := http.Post(srv.URL+HealthPath, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST %s: %d", HealthPath, res.StatusCode)
	}
}

// TestCloudflareObserve checks how attempts are counted: by method and
// code, "none" without an answer, and the waits the rate budget or a 429
// imposed.
func TestCloudflareObserve(t *testing.T) {
	attempts := []cloudflare.Attempt{
		{Method: "GET", Status: 200, Duration: 20 * time.Millisecond},
		{Method: "POST", Status: 200, Duration: 30 * time.Millisecond, Throttled: 1500 * time.Millisecond},
		{Method: "POST", Status: 429, Retry: true, Wait: 2 * time.Second},
		{Method: "POST", Status: 200, Duration: 10 * time.Millisecond},
		{Method: "DELETE", Err: errors.New("timeout"), Duration: 20 * time.Second, Retry: true, Wait: time.Second},
		{Method: "DELETE", Status: 503, Retry: true, Wait: time.Second},
	}
	cf := NewCloudflare()
	for _, a := range attempts {
		cf.Observe(a)
	}
	err := testutil.CollectAndCompare(cf, strings.NewReader(`
# HELP edgeban_cloudflare_requests_total HTTP requests to Cloudflare's API by method and status code ("none": no answer came, e.g. a timeout).
# TYPE edgeban_cloudflare_requests_total counter
edgeban_cloudflare_requests_total{code="200",method="GET"} 1
edgeban_cloudflare_requests_total{code="200",method="POST"} 2
edgeban_cloudflare_requests_total{code="429",method="POST"} 1
edgeban_cloudflare_requests_total{code="503",method="DELETE"} 1
edgeban_cloudflare_requests_total{code="none",method="DELETE"} 1
# HELP edgeban_cloudflare_ratelimit_waits_total Requests to Cloudflare held back by the rate budget: the credential's budget used up, or a 429's lockout.
# TYPE edgeban_cloudflare_ratelimit_waits_total counter
edgeban_cloudflare_ratelimit_waits_total 2
# HELP edgeban_cloudflare_ratelimit_wait_seconds_total Time requests to Cloudflare spent held back by the rate budget.
# TYPE edgeban_cloudflare_ratelimit_wait_seconds_total counter
edgeban_cloudflare_ratelimit_wait_seconds_total 3.5
`), "edgeban_cloudflare_requests_total", "edgeban_cloudflare_ratelimit_waits_total", "edgeban_cloudflare_ratelimit_wait_seconds_total")
	if err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(cf, "edgeban_cloudflare_request_duration_seconds"); n != 3 {
		t.Errorf("%d duration histograms, want 3", n)
	}
}

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/edgeban/edgeban/internal/cloudflare/cfsim"
)

// scrape fetches url and returns the samples of its text exposition by
// series ("name{labels}" as written), with the text.
func scrape(t *testing.T, url string) (map[string]float64, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v\n%s", url, res.StatusCode, err, b)
	}
	samples := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("sample %q: %v", line, err)
		}
		samples[line[:i]] = v
	}
	return samples, string(b)
}

// TestServeMetrics runs edgeban serve with --metrics-listen on a port it
// picks, a jail banning through a shell action and at cfsim under a rate
// budget of one request a second, feeds its log failures until it bans
// two addresses, and scrapes /metrics over HTTP: the lines read and
// matched, failures, bans, each action's bans and unbans, the Cloudflare
// requests by method and status, the rate-limit waits, the queues back
// to 0, and names that pass promlint; /healthz says healthy.
func TestServeMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	bin := edgebanBinary(t)
	const token = "tok-metrics-0123456789"
	sim, api := simServer(t, cfsim.Config{Tokens: []cfsim.Token{{Value: token}}})
	dir := t.TempDir()
	sock := filepath.Join(dir, "edgeban.sock")
	conf := writeConfDir(t, map[string]string{
		"filter.d/app.conf":  "[Definition]\nfailregex = ^\\s*login failed for \\S+ from <HOST>$\n",
		"action.d/note.conf": "[Definition]\nactionban = echo ban <ip> >> $DIR/calls\nactionunban = echo unban <ip> >> $DIR/calls\n",
		"jail.local": "[web]\nenabled = true\nfilter = app\nmaxretry = 3\nlogpath = $DIR/app.log\n" +
			"action = note\n         cloudflare-token[cfzone=example.com, cftoken=" + token + ", cfapi=\"" + api + "\"]\n",
		// One request a second, no burst: the second request waits.
		"edgeban.conf": "[Definition]\ndbfile = $DIR/edgeban.db\nlogtarget = $DIR/edgeban.log\n" +
			"cfratelimit = 60\ncfratewindow = 1m\ncfrateburst = 1\n",
		"app.log": "",
	})
	start := time.Now()
	d := startServe(t, bin, conf, sock, "--metrics-listen", "127.0.0.1:0")
	defer stopServe(t, d)
	// The log names the port picked.
	var base string
	waitFor(t, "the metrics address in the log", 5*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(conf, "edgeban.log"))
		m := regexp.MustCompile(`metrics http://(127\.0\.0\.1:\d+)/metrics and health http://127\.0\.0\.1:\d+/healthz`).FindSubmatch(b)
		if m != nil {
			base = "http://" + string(m[1])
		}
		return m != nil
	})
	f, err := os.OpenFile(filepath.Join(conf, "app.log"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{
		"login failed for root from 192.0.2.10",
		"login failed for root from 127.0.0.1", // ignoreself
		"login failed for admin from 192.0.2.10",
		"session opened for alice", // no failure
		"login failed for x from 192.0.2.10",
		"login failed for root from 192.0.2.11",
		"login failed for root from 192.0.2.11",
		"login failed for root from 192.0.2.11",
	} {
		fmt.Fprintf(f, "%s %s\n", time.Now().Format("2006-01-02 15:04:05"), l)
	}
	f.Close()
	waitFor(t, "both rules at cfsim", 10*time.Second, func() bool { return len(sim.AccessRules(cfsim.ZoneScope(cfsim.DefaultZoneID))) == 2 })
	run(t, bin, "", "set", "web", "unbanip", "192.0.2.10", "--socket", sock)
	waitFor(t, "the unban at cfsim", 10*time.Second, func() bool { return len(sim.AccessRules(cfsim.ZoneScope(cfsim.DefaultZoneID))) == 1 })

	const cf = `action="cloudflare-token",jail="web"`
	want := map[string]float64{
		`edgeban_lines_read_total{jail="web"}`:                                         8,
		`edgeban_lines_matched_total{jail="web"}`:                                      7,
		`edgeban_failures_total{jail="web"}`:                                           6,
		`edgeban_failures_ignored_total{jail="web"}`:                                   1,
		`edgeban_bans_total{jail="web"}`:                                               2,
		`edgeban_bans_active{jail="web"}`:                                              1,
		`edgeban_action_queue_depth{jail="web"}`:                                       0,
		`edgeban_action_bans_total{action="note",jail="web"}`:                          2,
		`edgeban_action_unbans_total{action="note",jail="web"}`:                        1,
		`edgeban_action_bans_total{` + cf + `}`:                                        2,
		`edgeban_action_unbans_total{` + cf + `}`:                                      1,
		`edgeban_action_errors_total{` + cf + `,op="ban"}`:                             0,
		`edgeban_cloudflare_rules{destination="zone example.com"}`:                     1,
		`edgeban_cloudflare_outbox_pending{destination="zone example.com",op="ban"}`:   0,
		`edgeban_cloudflare_outbox_pending{destination="zone example.com",op="unban"}`: 0,
		`edgeban_cloudflare_outbox_failing{destination="zone example.com"}`:            0,
		// The zone's look-up, two creates, one delete.
		`edgeban_cloudflare_requests_total{code="200",method="GET"}`:       1,
		`edgeban_cloudflare_requests_total{code="200",method="POST"}`:      2,
		`edgeban_cloudflare_requests_total{code="200",method="DELETE"}`:    1,
		`edgeban_cloudflare_request_duration_seconds_count{method="POST"}`: 2,
		`edgeban_healthy`: 1,
	}
	var samples map[string]float64
	var text string
	waitFor(t, "the metrics", 10*time.Second, func() bool {
		samples, text = scrape(t, base+"/metrics")
		for k, v := range want {
			if got, ok := samples[k]; !ok || got != v {
				return false
			}
		}
		return true
	})
	if t.Failed() {
		return
	}
	// Four requests at one a second: the two creates waited (about one
	// and two seconds, at once), the delete too unless it came a second
	// after the second create.
	elapsed := time.Since(start).Seconds()
	if n, s := samples["edgeban_cloudflare_ratelimit_waits_total"], samples["edgeban_cloudflare_ratelimit_wait_seconds_total"]; n < 2 || n > 3 || s < 1.5 || s > n*elapsed {
		t.Errorf("rate-limit waits %v taking %vs, want 2 or 3 taking 1.5s to %.1fs", n, s, n*elapsed)
	}
	for _, series := range []string{"go_goroutines", "process_resident_memory_bytes", `edgeban_build_info{goversion="`} {
		if !strings.Contains(text, "\n"+series) {
			t.Errorf("no %s in the metrics", series)
		}
	}
	problems, err := promlint.New(strings.NewReader(text)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}

	res, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var h struct {
		Status string            `json:"status"`
		Jails  map[string]string `json:"jails"`
	}
	if err := json.NewDecoder(res.Body).Decode(&h); err != nil || res.StatusCode != 200 || h.Status != "ok" || h.Jails["web"] != "running" {
		t.Fatalf("/healthz: %d %+v %v", res.StatusCode, h, err)
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", text)
	}
}

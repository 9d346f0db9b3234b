package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeban/edgeban/internal/cloudflare"
	"github.com/edgeban/edgeban/internal/cloudflare/cfsim"
	"github.com/edgeban/edgeban/internal/sharedtest"
)

// copyTree copies the files under src into dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestServeSeedJailLocal runs the seed article's jail.local on fail2ban's
// stock configuration under edgeban serve, with cfapi pointed at cfsim
// and the firewall and mail actions replaced by shell actions that write
// files: the sshd jail bans at Cloudflare natively with the seed's note;
// an address banned twice is caught by recidive, whose three actions
// (all ports, cloudflare-restv4, mail with whois lines) all run, the
// Cloudflare rule shared with sshd's; at the end only the rule made by
// hand, with another note, is left at cfsim.
func TestServeSeedJailLocal(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	stock := sharedtest.Path(t, "fail2ban/config")
	bin := edgebanBinary(t)
	sim, api, c := seedSim(t)
	// A rule made by hand for an address that sshd will ban too.
	manual, _ := cloudflare.TargetFor("198.51.100.77", false)
	if _, err := c.CreateAccessRule(context.Background(), cloudflare.Scope{Kind: "user"}, "challenge", manual, "added by hand"); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	copyTree(t, stock, dir)
	// No shell file of the Cloudflare action is needed: it runs natively.
	os.Remove(filepath.Join(dir, "action.d", "cloudflare-restv4.conf"))
	files := map[string]string{
		"action.d/fw-file.conf": "[Definition]\nactionstart = touch " + dir + "/fw\n" +
			"actionban = printf 'ban %%s %%s\\n' '<name>' <ip> >> " + dir + "/fw\n" +
			"actionunban = printf 'unban %%s %%s\\n' '<name>' <ip> >> " + dir + "/fw\n",
		"action.d/filemail-whois-lines.conf": "[Definition]\nnorestored = true\n" +
			"actionban = printf 'to %%s: [%%s] %%s banned after %%s failures\\n' '<dest>' '<name>' <ip> '<failures>' >> " + dir + "/mail\n",
		"edgeban.conf": "[Definition]\ndbfile = " + dir + "/edgeban.db\nlogtarget = " + dir + "/edgeban.log\n",
		"jail.local":   seedJailLocal(api, dir, "destemail = root@example.com\nmta = filemail\nbanaction = fw-file\nbanaction_allports = fw-file\n", 6),
		"auth.log":     "",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sock := filepath.Join(dir, "edgeban.sock")
	d := startServe(t, bin, dir, sock)
	defer func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "edgeban.log"))
			t.Logf("edgeban.log:\n%s", b)
		}
	}()
	fail := func(ips ...string) {
		f, err := os.OpenFile(filepath.Join(dir, "auth.log"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for i, ip := range ips {
			fmt.Fprintf(f, "%s web1 sshd[%d]: Failed password for root from %s port %d ssh2\n", time.Now().Format(time.Stamp), 1000+i, ip, 40000+i)
		}
	}
	rules := func() map[string]string {
		m := map[string]string{}
		for _, r := range sim.AccessRules(cfsim.UserScope) {
			m[r.Value] += r.Notes + ";"
		}
		return m
	}
	fileHas := func(name, s string) func() bool {
		return func() bool { b, _ := os.ReadFile(filepath.Join(dir, name)); return strings.Contains(string(b), s) }
	}

	// Two attackers; one is the address of the hand-made rule.
	fail("192.0.2.10", "198.51.100.77", "192.0.2.10", "198.51.100.77")
	waitFor(t, "sshd's ban at cfsim", 15*time.Second, func() bool { return rules()["192.0.2.10"] == "Banned by Fail2Ban;" })
	if out := run(t, bin, "", "status", "sshd", "--socket", sock); !strings.Contains(out, "192.0.2.10") || !strings.Contains(out, "Cloudflare user:") {
		t.Fatalf("status sshd:\n%s", out)
	}
	// sshd's ban ends; the same attacker comes back and is banned again:
	// recidive sees two bans.
	waitFor(t, "sshd's unban at cfsim", 15*time.Second, func() bool { return rules()["192.0.2.10"] == "" })
	fail("192.0.2.10", "192.0.2.10")
	waitFor(t, "recidive's firewall ban", 15*time.Second, fileHas("fw", "ban recidive 192.0.2.10\n"))
	waitFor(t, "recidive's mail", 15*time.Second, fileHas("mail", "to root@example.com: [recidive] 192.0.2.10 banned after 2 failures\n"))
	waitFor(t, "the rule at cfsim", 15*time.Second, func() bool { return rules()["192.0.2.10"] == "Banned by Fail2Ban;" })
	// sshd's second ban ends first: the rule stays for recidive.
	waitFor(t, "sshd's second unban", 15*time.Second, fileHas("edgeban.log", "[sshd] Unban 192.0.2.10"))
	time.Sleep(500 * time.Millisecond)
	if got := rules()["192.0.2.10"]; got != "Banned by Fail2Ban;" {
		t.Fatalf("after sshd's unban, while recidive holds it: %q", got)
	}
	waitFor(t, "recidive's unban at cfsim", 20*time.Second, func() bool { return rules()["192.0.2.10"] == "" })
	waitFor(t, "recidive's firewall unban", 5*time.Second, fileHas("fw", "unban recidive 192.0.2.10\n"))
	// sshd banned the hand-made rule's address too, and unbanned it: the
	// rule is not ours and stays.
	waitFor(t, "sshd's unban of the hand-made rule's address", 15*time.Second, fileHas("edgeban.log", "[sshd] Unban 198.51.100.77"))
	time.Sleep(time.Second)
	if got := rules(); len(got) != 1 || got["198.51.100.77"] != "added by hand;" {
		t.Fatalf("rules at the end: %v, want only the hand-made one", got)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "edgeban.log")); !strings.Contains(string(b), "natively on edgeban's Cloudflare engine") {
		t.Error("the log does not say that the Cloudflare action runs natively")
	}
	mails, _ := os.ReadFile(filepath.Join(dir, "mail"))
	if n := strings.Count(string(mails), "\n"); n != 1 {
		t.Errorf("%d mails, want 1 (recidive's):\n%s", n, mails)
	}
	stopServe(t, d)
	if out, _ := exec.Command(bin, "cloudflare", "status", "--db", filepath.Join(dir, "edgeban.db")).CombinedOutput(); strings.Contains(string(out), seedKey) {
		t.Error("status shows the secret")
	}
}

// TestServeCloudflareRestart bans at a zone through the native
// cloudflare-token action and restarts the daemon: a stop leaves the
// rules at Cloudflare, a restart sends nothing again for the bans that
// still run, and a ban that ended while the daemon was down is lifted at
// the start.
func TestServeCloudflareRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	bin := edgebanBinary(t)
	const token = "tok-restart-0123456789"
	sim, api := simServer(t, cfsim.Config{Tokens: []cfsim.Token{{Value: token}}, Zones: map[string]string{"023e105f4ecef8ad9ca31a8372d0c353": "example.com"}})
	dir := t.TempDir()
	sock := filepath.Join(dir, "edgeban.sock")
	conf := writeConfDir(t, map[string]string{
		"filter.d/app.conf": "[Definition]\nfailregex = ^fail from <HOST>$\n",
		"jail.local": "[short]\nenabled = true\nfilter = app\nlogpath = " + dir + "/app.log\nbantime = 3\n" +
			"action = cloudflare-token[cfzone=example.com, cftoken=" + token + ", cfapi=\"" + api + "\"]\n" +
			"[long]\nenabled = true\nfilter = app\nlogpath = " + dir + "/app.log\nbantime = 1h\n" +
			"action = cloudflare-token[cfzone=example.com, cftoken=" + token + ", cfapi=\"" + api + "\"]\n",
		"edgeban.conf": "[Definition]\ndbfile = " + dir + "/edgeban.db\nlogtarget = " + dir + "/edgeban.log\n",
	})
	const zone = "023e105f4ecef8ad9ca31a8372d0c353"
	rules := func() map[string]string {
		m := map[string]string{}
		for _, r := range sim.AccessRules(cfsim.ZoneScope(zone)) {
			m[r.Value] += r.Notes + ";"
		}
		return m
	}
	creates := func() int64 {
		return sim.Stats().ByRoute["POST /zones/{zone_id}/firewall/access_rules/rules"]
	}
	d := startServe(t, bin, conf, sock)
	run(t, bin, "", "set", "short", "banip", "192.0.2.1", "--socket", sock)
	run(t, bin, "", "set", "long", "banip", "192.0.2.2", "--socket", sock)
	waitFor(t, "both rules", 10*time.Second, func() bool { r := rules(); return r["192.0.2.1"] != "" && r["192.0.2.2"] != "" })
	if r := rules(); r["192.0.2.1"] != "Fail2Ban short;" || r["192.0.2.2"] != "Fail2Ban long;" {
		t.Fatalf("notes: %v", r)
	}
	stopServe(t, d)
	if len(rules()) != 2 {
		t.Fatalf("a stop lifted rules: %v", rules())
	}
	before := creates()
	time.Sleep(4 * time.Second) // short's ban ends while the daemon is down
	d = startServe(t, bin, conf, sock)
	defer stopServe(t, d)
	waitFor(t, "the ended ban's rule deleted at start", 10*time.Second, func() bool { return rules()["192.0.2.1"] == "" })
	time.Sleep(500 * time.Millisecond)
	if r := rules(); len(r) != 1 || r["192.0.2.2"] != "Fail2Ban long;" {
		t.Fatalf("rules after the restart: %v", r)
	}
	if n := creates(); n != before {
		t.Fatalf("the restart sent %d creates for bans Cloudflare held", n-before)
	}
	if out := run(t, bin, "", "status", "long", "--socket", sock); !strings.Contains(out, "Cloudflare zone example.com: 1 live, 0 bans and 0 unbans to send") {
		t.Fatalf("status long:\n%s", out)
	}
}

// seedJailLocal is the seed article's jail.local, with cfsim's api: its
// [DEFAULT] names (cfemail, cfapikey, and action_cf_v4 as every jail's
// action), sshd, and the recidive jail with its three actions, banning
// for recidiveBantime seconds. host holds the [DEFAULT] lines that say
// what the host's firewall and mail are (banaction, banaction_allports,
// mta, destemail...); the logs are in dir.
func seedJailLocal(api, dir, host string, recidiveBantime int) string {
	return fmt.Sprintf(`[DEFAULT]
cfemail = %s
cfapikey = %s
cfapi = %s
%saction_cf_v4 = cloudflare-restv4[cfuser="%%(cfemail)s", cftoken="%%(cfapikey)s", cfapi="%%(cfapi)s"]
action = %%(action_cf_v4)s

[sshd]
enabled = true
logpath = %[5]s/auth.log
backend = auto
maxretry = 2
bantime = 3

[recidive]
enabled = true
logpath = %[5]s/edgeban.log
maxretry = 2
findtime = 1d
bantime = %[6]d
action = %%(banaction_allports)s[name=%%(__name__)s]
         cloudflare-restv4[cfuser="%%(cfemail)s", cftoken="%%(cfapikey)s", cfapi="%%(cfapi)s"]
         %%(mta)s-whois-lines[name=%%(__name__)s, sender="%%(sender)s", dest="%%(destemail)s", logpath="%%(logpath)s", chain="%%(chain)s"]
`, seedEmail, seedKey, api, host, dir, recidiveBantime)
}

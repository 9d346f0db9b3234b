package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeban/edgeban/internal/cloudflare"
	"github.com/edgeban/edgeban/internal/cloudflare/cfsim"
	"github.com/edgeban/edgeban/internal/sharedtest"
)

// fail2banSchema is the database that fail2ban 1.0 creates (database.py,
// schema version 4), with its indexes.
const fail2banSchema = `
CREATE TABLE fail2banDb(version INTEGER);
CREATE TABLE jails(name TEXT NOT NULL UNIQUE, enabled INTEGER NOT NULL DEFAULT 1);
CREATE INDEX jails_name ON jails(name);
CREATE TABLE logs(jail TEXT NOT NULL, path TEXT, firstlinemd5 TEXT, lastfilepos INTEGER DEFAULT 0,
	FOREIGN KEY(jail) REFERENCES jails(name) ON DELETE CASCADE, UNIQUE(jail, path), UNIQUE(jail, path, firstlinemd5));
CREATE INDEX logs_path ON logs(path);
CREATE INDEX logs_jail_path ON logs(jail, path);
CREATE TABLE bans(jail TEXT NOT NULL, ip TEXT, timeofban INTEGER NOT NULL, bantime INTEGER NOT NULL,
	bancount INTEGER NOT NULL default 1, data JSON, FOREIGN KEY(jail) REFERENCES jails(name));
CREATE INDEX bans_jail_timeofban_ip ON bans(jail, timeofban);
CREATE INDEX bans_jail_ip ON bans(jail, ip);
CREATE INDEX bans_ip ON bans(ip);
CREATE TABLE bips(ip TEXT NOT NULL, jail TEXT NOT NULL, timeofban INTEGER NOT NULL, bantime INTEGER NOT NULL,
	bancount INTEGER NOT NULL default 1, data JSON, PRIMARY KEY(ip, jail), FOREIGN KEY(jail) REFERENCES jails(name));
CREATE INDEX bips_timeofban ON bips(timeofban);
CREATE INDEX bips_ip ON bips(ip);
`

// f2bBan is a ban as fail2ban records it: a row of bans, and the row of
// bips (the latest ban of each address per jail).
type f2bBan struct {
	jail, ip           string
	timeofban, bantime int64 // seconds
	bancount           int
}

// writeFail2banDB writes a fail2ban.sqlite3 at path as fail2ban 1.0 leaves
// it: its jails, and the bans on record.
func writeFail2banDB(t *testing.T, path string, bans []f2bBan) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(fail2banSchema + "INSERT INTO fail2banDb(version) VALUES (4);"); err != nil {
		t.Fatal(err)
	}
	jails := map[string]bool{}
	for _, b := range bans {
		if !jails[b.jail] {
			jails[b.jail] = true
			if _, err := db.Exec("INSERT INTO jails(name, enabled) VALUES (?, 1)", b.jail); err != nil {
				t.Fatal(err)
			}
		}
		data := fmt.Sprintf(`{"matches": ["Failed password for root from %s port 22 ssh2"], "failures": 5}`, b.ip)
		for _, table := range []string{"bans", "bips"} {
			if _, err := db.Exec("INSERT INTO "+table+"(jail, ip, timeofban, bantime, bancount, data) VALUES (?, ?, ?, ?, ?, ?)",
				b.jail, b.ip, b.timeofban, b.bantime, b.bancount, data); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestServeSwitchFromFail2ban is the switch from fail2ban with the seed's
// shell action to edgeban serve. The seed's action left its rules at
// cfsim (user level, global key, note "Banned by Fail2Ban") for the bans
// of a fail2ban.sqlite3; beside them are rules that are not ours. The
// database is imported into a fresh edgeban database and edgeban serve
// runs the seed's jail.local. Then:
//
//   - the imported bans get no second rule: each running ban adopts the
//     rule it finds (or, the one IPv6 ban, which the seed's action could not
//     make, gets its first);
//   - a ban that ended while fail2ban was down has its rule deleted at the
//     start, and one whose rule is gone costs a look-up and nothing else;
//   - each running ban's rule is deleted when the ban ends, not before;
//   - an address that sshd's ended ban and recidive's running ban share
//     keeps its one rule, untouched, for recidive;
//   - a rule whose note is not ours is never deleted: one made by hand for
//     an address fail2ban bans, one whose note merely contains ours, and
//     one for an address fail2ban never banned;
//   - a rule with our note for an address fail2ban's database holds no
//     ban of (unbanned by hand with fail2ban-client, whose shell unban
//     failed; or purged) is not ours to track, and stays: the daemon only
//     lifts what a ban it knows of covers. "edgeban cloudflare sync" names
//     it as an orphan, for whoever wants it gone.
func TestServeSwitchFromFail2ban(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	stock := sharedtest.Path(t, "fail2ban/config")
	bin := edgebanBinary(t)
	const (
		email = seedEmail
		key   = seedKey
		ours  = "Banned by Fail2Ban"
		hand  = "added by hand"
	)
	sim, api, c := seedSim(t)
	ctx := context.Background()
	user := cloudflare.Scope{Kind: "user"}

	// The addresses, and what fail2ban's database holds of each.
	const (
		endsFirst  = "192.0.2.21"    // sshd, running, ends first
		v6         = "2001:db8::21"  // sshd, running: the seed could not ban it at Cloudflare
		whitelist  = "198.51.100.77" // sshd, running; whitelisted by hand at Cloudflare
		endsLast   = "192.0.2.22"    // sshd, running, a repeat offender
		running    = "192.0.2.23"    // sshd, running for an hour more
		endedDown  = "192.0.2.24"    // sshd, ended while fail2ban was down
		endedHand  = "192.0.2.25"    // sshd, ended; a rule by hand whose note contains ours
		endedGone  = "192.0.2.27"    // sshd, ended, its rule deleted back then
		recidivist = "192.0.2.26"    // sshd ended; recidive running for a week
		untracked  = "192.0.2.99"    // no record: our note, but no ban of fail2ban's
		stranger   = "203.0.113.5"   // no record: a rule by hand
	)
	// The rules as the seed's shell action and people left them.
	before := map[string]struct{ mode, note string }{
		endsFirst:  {"block", ours},
		whitelist:  {"whitelist", hand},
		endsLast:   {"block", ours},
		running:    {"block", ours},
		endedDown:  {"block", ours},
		endedHand:  {"challenge", ours + " - kept by hand, see ticket 42"},
		recidivist: {"block", ours},
		untracked:  {"block", ours},
		stranger:   {"challenge", hand},
	}
	ids := map[string]string{} // address → the rule's id before the switch
	for ip, r := range before {
		rule, err := c.CreateAccessRule(ctx, user, r.mode, cloudflare.Configuration{Target: "ip", Value: ip}, r.note)
		if err != nil {
			t.Fatal(err)
		}
		ids[ip] = rule.ID
	}
	// The seed's action sends target "ip" for every address: an IPv6 ban
	// never became a rule.
	if _, err := c.CreateAccessRule(ctx, user, "block", cloudflare.Configuration{Target: "ip", Value: v6}, ours); err == nil {
		t.Fatal("cfsim took an IPv6 address with target ip")
	}

	dir := t.TempDir()
	copyTree(t, stock, dir)
	os.Remove(filepath.Join(dir, "action.d", "cloudflare-restv4.conf"))
	base := time.Now().Unix()
	end := func(ip string) time.Time {
		return time.Unix(base+map[string]int64{endsFirst: 6, v6: 7, whitelist: 8, endsLast: 9}[ip], 0)
	}
	f2b := filepath.Join(dir, "fail2ban.sqlite3")
	writeFail2banDB(t, f2b, []f2bBan{
		{"sshd", endsFirst, end(endsFirst).Unix() - 600, 600, 1},
		{"sshd", v6, end(v6).Unix() - 600, 600, 1},
		{"sshd", whitelist, end(whitelist).Unix() - 600, 600, 1},
		{"sshd", endsLast, end(endsLast).Unix() - 1200, 1200, 2},
		{"sshd", running, base - 60, 3600, 1},
		{"sshd", endedDown, base - 1200, 600, 1},
		{"sshd", endedHand, base - 3000, 600, 1},
		{"sshd", endedGone, base - 5000, 600, 1},
		{"sshd", recidivist, base - 4000, 600, 3},
		{"recidive", recidivist, base - 3000, 7 * 86400, 1},
	})
	files := map[string]string{
		"edgeban.conf": "[Definition]\ndbfile = " + dir + "/edgeban.db\nlogtarget = " + dir + "/edgeban.log\n",
		// The seed's jail.local: sshd and recidive ban at Cloudflare.
		"jail.local": fmt.Sprintf(`[DEFAULT]
cfemail = %s
cfapikey = %s
cfapi = %s
action_cf_v4 = cloudflare-restv4[cfuser="%%(cfemail)s", cftoken="%%(cfapikey)s", cfapi="%%(cfapi)s"]
action = %%(action_cf_v4)s

[sshd]
enabled = true
logpath = %[4]s/auth.log
backend = auto

[recidive]
enabled = true
logpath = %[4]s/edgeban.log
action = fw-slow[name=%%(__name__)s]
         %%(action_cf_v4)s
`, email, key, api, dir),
		// recidive's firewall, ahead of Cloudflare as in the seed's
		// jail.local; a restored ban's actions run in order, and this one
		// takes a second, as a long queue of restored bans would.
		"action.d/fw-slow.conf": "[Definition]\nactionban = sleep 1; printf 'ban %%s %%s\\n' '<name>' <ip> >> " + dir + "/fw\n" +
			"actionunban = printf 'unban %%s %%s\\n' '<name>' <ip> >> " + dir + "/fw\n",
		"auth.log": "",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f2bBefore, _ := os.ReadFile(f2b)

	start := time.Now()
	out := run(t, bin, "", "import-fail2ban-db", "-c", dir, f2b)
	t.Logf("import (%v): %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(out))
	if !strings.Contains(out, "imported 10 bans on record, 6 of them still running") {
		t.Fatalf("import: %s", out)
	}
	if b, _ := os.ReadFile(f2b); string(b) != string(f2bBefore) {
		t.Fatal("the import changed fail2ban's database")
	}

	rules := func() map[string]cfsim.AccessRule {
		m := map[string]cfsim.AccessRule{}
		for _, r := range sim.AccessRules(cfsim.UserScope) {
			if _, dup := m[r.Value]; dup {
				t.Errorf("two rules for %s", r.Value)
			}
			m[r.Value] = r
		}
		return m
	}
	stats := func(route string) int64 { return sim.Stats().ByRoute[route] }
	const (
		posts   = "POST /user/firewall/access_rules/rules"
		gets    = "GET /user/firewall/access_rules/rules"
		deletes = "DELETE /user/firewall/access_rules/rules/{rule_id}"
	)
	postsBefore, getsBefore, deletesBefore := stats(posts), stats(gets), stats(deletes)

	sock := filepath.Join(dir, "edgeban.sock")
	start = time.Now()
	d := startServe(t, bin, dir, sock)
	ready := time.Since(start)
	defer func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "edgeban.log"))
			t.Logf("edgeban.log:\n%s", b)
		}
	}()
	if time.Now().After(end(endsFirst).Add(-time.Second)) {
		t.Fatalf("the daemon took %v to start: the first imported ban ends before the test can watch it", ready)
	}

	// Watch cfsim until the last imported ban has ended: when each rule
	// goes, and every rule that appears.
	gone := map[string]time.Time{}
	var created []cfsim.AccessRule
	seenV6 := false
	for deadline := end(endsLast).Add(4 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		now := time.Now()
		cur := rules()
		for ip := range before {
			if _, ok := cur[ip]; !ok && gone[ip].IsZero() {
				gone[ip] = now
			}
		}
		for _, r := range cur {
			if ids[r.Value] != r.ID && !slices.ContainsFunc(created, func(c cfsim.AccessRule) bool { return c.ID == r.ID }) {
				created = append(created, r)
			}
		}
		_, has := cur[v6]
		seenV6 = seenV6 || has
		if seenV6 && !has && gone[v6].IsZero() {
			gone[v6] = now
		}
	}

	// Nothing but the IPv6 ban, which had no rule, got a new one; in
	// particular no rule was deleted and made again.
	if len(created) != 1 || created[0].Value != v6 || created[0].Notes != ours || created[0].Target != "ip6" {
		t.Errorf("rules made by edgeban: %+v, want one, for %s", created, v6)
	}
	// The ban that ended while fail2ban was down: deleted at the start.
	if g := gone[endedDown]; g.IsZero() || g.After(start.Add(5*time.Second)) {
		t.Errorf("%s's rule (ended while fail2ban was down) went at %v, want at the start (%v)", endedDown, g, start)
	} else {
		t.Logf("the rule of the ban that ended while fail2ban was down went %v after the start", g.Sub(start).Round(time.Millisecond))
	}
	// The running ones: deleted when they end, not before.
	for _, ip := range []string{endsFirst, v6, endsLast} {
		g := gone[ip]
		switch {
		case g.IsZero():
			t.Errorf("%s's rule was not deleted when its ban ended (%v)", ip, end(ip))
		case g.Before(end(ip)):
			t.Errorf("%s's rule went at %v, before its ban's end %v", ip, g, end(ip))
		case g.After(end(ip).Add(3 * time.Second)):
			t.Errorf("%s's rule went %v after its ban's end", ip, g.Sub(end(ip)))
		default:
			t.Logf("%s's rule went %v after its ban's end", ip, g.Sub(end(ip)).Round(time.Millisecond))
		}
	}
	// Everything else is as it was, ids included.
	after := rules()
	var left []string
	for ip, r := range after {
		left = append(left, ip)
		if want, ok := before[ip]; !ok || r.ID != ids[ip] || r.Notes != want.note || r.Mode != want.mode {
			t.Errorf("rule for %s at the end: %+v, want the one from before the switch (%s, %v)", ip, r, ids[ip], want)
		}
	}
	slices.Sort(left)
	want := []string{running, endedHand, recidivist, untracked, whitelist, stranger}
	slices.Sort(want)
	if !slices.Equal(left, want) {
		t.Errorf("rules at the end: %v, want %v", left, want)
	}
	nPost, nGet, nDelete := stats(posts)-postsBefore, stats(gets)-getsBefore, stats(deletes)-deletesBefore
	t.Logf("requests after the start: %d POST, %d GET, %d DELETE (daemon ready in %v)", nPost, nGet, nDelete, ready.Round(time.Millisecond))
	// One create at most per running imported ban (six, recidive's
	// included): those with a rule are answered "duplicate" and adopt it.
	if nPost > 6 {
		t.Errorf("%d creates for 6 running imported bans", nPost)
	}
	// Exactly the rules of the ended ban and of the three that ended.
	if nDelete != 4 {
		t.Errorf("%d deletes, want 4", nDelete)
	}
	out = run(t, bin, "", "status", "sshd", "--socket", sock)
	if !strings.Contains(out, running) || !strings.Contains(out, "Cloudflare user: 2 live, 0 bans and 0 unbans to send") {
		t.Errorf("status sshd:\n%s", out)
	}
	if out := run(t, bin, "", "status", "recidive", "--socket", sock); !strings.Contains(out, recidivist) {
		t.Errorf("status recidive:\n%s", out)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "fw")); string(b) != "ban recidive "+recidivist+"\n" {
		t.Errorf("recidive's firewall: %q", b)
	}
	stopServe(t, d)

	// The rule with our note that no ban covers: sync names it.
	out = run(t, bin, key+"\n", "cloudflare", "sync", "--dry-run", "--db", filepath.Join(dir, "edgeban.db"),
		"--api", api, "--scope", "user", "--email", email, "--secret-stdin")
	if !strings.Contains(out, "orphans 1") || !strings.Contains(out, "orphan:  "+untracked+"\n") {
		t.Errorf("sync --dry-run:\n%s", out)
	}
	if r := rules(); len(r) != len(want) {
		t.Errorf("sync --dry-run changed the rules: %v", r)
	}
}

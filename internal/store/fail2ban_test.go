package store

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// fail2banSchema is fail2ban's database schema, version 4, as its
// database.py creates it.
const fail2banSchema = `
CREATE TABLE fail2banDb(version INTEGER);
CREATE TABLE jails(name TEXT NOT NULL UNIQUE, enabled INTEGER NOT NULL DEFAULT 1);
CREATE TABLE logs(jail TEXT NOT NULL, path TEXT, firstlinemd5 TEXT, lastfilepos INTEGER DEFAULT 0,
	FOREIGN KEY(jail) REFERENCES jails(name) ON DELETE CASCADE, UNIQUE(jail, path), UNIQUE(jail, path, firstlinemd5));
CREATE TABLE bans(jail TEXT NOT NULL, ip TEXT, timeofban INTEGER NOT NULL, bantime INTEGER NOT NULL,
	bancount INTEGER NOT NULL default 1, data JSON, FOREIGN KEY(jail) REFERENCES jails(name));
CREATE TABLE bips(ip TEXT NOT NULL, jail TEXT NOT NULL, timeofban INTEGER NOT NULL, bantime INTEGER NOT NULL,
	bancount INTEGER NOT NULL default 1, data JSON, PRIMARY KEY(ip, jail), FOREIGN KEY(jail) REFERENCES jails(name));
`

func writeFail2banDB(t *testing.T, version int, bips [][]any) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fail2ban.sqlite3")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(fail2banSchema); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("INSERT INTO fail2banDb(version) VALUES (?)", version); err != nil {
		t.Fatal(err)
	}
	for _, r := range bips {
		if _, err := db.Exec("INSERT INTO bips(ip, jail, timeofban, bantime, bancount, data) VALUES (?, ?, ?, ?, ?, ?)", r...); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec("INSERT INTO bans(ip, jail, timeofban, bantime, bancount, data) VALUES (?, ?, ?, ?, ?, ?)", r...); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func TestImportFail2ban(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_700_000_000, 0)
	src := writeFail2banDB(t, 4, [][]any{
		{"192.0.2.1", "sshd", now.Add(-5 * time.Minute).Unix(), 600, 1, `{"matches": ["a"], "failures": 5}`}, // running
		{"192.0.2.2", "sshd", now.Add(-time.Hour).Unix(), 600, 3, nil},                                       // ended: lifted at the start
		{"192.0.2.3", "recidive", now.Add(-48 * time.Hour).Unix(), -1, 2, `{}`},                              // permanent
		{"2001:db8::1", "sshd", now.Add(-time.Minute).Unix(), 86400, 4, `{}`},                                // running
	})
	before, _ := os.ReadFile(src)
	db := mustOpen(t, "")
	for round := 0; round < 2; round++ { // a second import changes nothing
		st, err := db.ImportFail2ban(ctx, src, now)
		if err != nil {
			t.Fatal(err)
		}
		if st.Records != 4 || st.Active != 3 {
			t.Fatalf("round %d: imported %+v", round, st)
		}
	}
	active, err := db.JailBans(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range active {
		got = append(got, b.Jail+" "+b.IP)
	}
	// The ended ban is among them, with its end: edgeban serve's start
	// lifts it where bans outlive the daemon (Cloudflare), as one that
	// ended while the daemon was down.
	if strings.Join(got, ",") != "recidive 192.0.2.3,sshd 192.0.2.2,sshd 192.0.2.1,sshd 2001:db8::1" {
		t.Fatalf("active bans: %v", got)
	}
	if active[0].BanTime != -1 || !active[1].End().Equal(now.Add(-50*time.Minute)) ||
		!active[2].End().Equal(now.Add(5*time.Minute)) || active[2].Data != `{"matches": ["a"], "failures": 5}` {
		t.Fatalf("bans: %+v", active)
	}
	if b, ok, _ := db.LastBan(ctx, "192.0.2.2", "sshd", false); !ok || b.BanCount != 3 {
		t.Fatalf("record of an ended ban: %+v %v", b, ok)
	}
	if after, _ := os.ReadFile(src); string(after) != string(before) {
		t.Fatal("the fail2ban database was changed")
	}
}

func TestImportFail2banErrors(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t, "")
	old := writeFail2banDB(t, 2, nil)
	notDB := filepath.Join(t.TempDir(), "junk.sqlite3")
	os.WriteFile(notDB, []byte(strings.Repeat("junk", 500)), 0o600)
	for _, tt := range []struct{ path, want string }{
		{old, "schema version 2"},
		{notDB, "is not a fail2ban database"},
		{filepath.Join(t.TempDir(), "missing.sqlite3"), "no such file"},
	} {
		if _, err := db.ImportFail2ban(ctx, tt.path, time.Now()); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error containing %q", tt.path, err, tt.want)
		}
	}
}

// TestUnbanWaitsForAnotherJailsImportedBan: after an import, sshd's ban
// of an address ended and is lifted at the start, while recidive still
// bans it; under the seed's jail.local both share the address's one rule
// (one note). recidive's ban reaches its Cloudflare action later (a
// restored ban's actions run in the background), so sshd's unban of a
// hold never recorded must not look the rule up and delete it before:
// the look-up waits until recidive's ban ends, and recidive's hold, when
// it comes, takes the rule over. With no other ban, it goes at once.
func TestUnbanWaitsForAnotherJailsImportedBan(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	now := clk.now()
	src := writeFail2banDB(t, 4, [][]any{
		{"192.0.2.1", "sshd", now.Add(-time.Hour).Unix(), 600, 1, nil},
		{"192.0.2.1", "recidive", now.Add(-30 * time.Minute).Unix(), 3600, 1, nil}, // ends in 30 minutes
		{"192.0.2.2", "sshd", now.Add(-time.Hour).Unix(), 600, 1, nil},
		{"192.0.2.2", "recidive", now.Add(-time.Hour).Unix(), -1, 1, nil}, // permanent
		{"192.0.2.3", "sshd", now.Add(-time.Hour).Unix(), 600, 1, nil},    // no other ban
		{"192.0.2.4", "sshd", now.Add(-time.Hour).Unix(), 600, 1, nil},
		{"192.0.2.4", "recidive", now.Add(-3 * time.Hour).Unix(), 3600, 1, nil}, // ended too
		{"192.0.2.5", "sshd", now.Add(-time.Hour).Unix(), 600, 1, nil},
		{"192.0.2.5", "nginx", now.Add(-30 * time.Minute).Unix(), 3600, 1, nil}, // a jail that never bans at Cloudflare
	})
	db := mustOpen(t, "", WithClock(clk.now))
	if _, err := db.ImportFail2ban(ctx, src, now); err != nil {
		t.Fatal(err)
	}
	dest, err := db.Destination(ctx, "k", []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	due := func() []string {
		t.Helper()
		es, err := db.Claim(ctx, "t", ClaimFilter{}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range es {
			out = append(out, e.Target)
		}
		if err := db.Release(ctx, "t"); err != nil {
			t.Fatal(err)
		}
		slices.Sort(out)
		return out
	}
	hold := func(jail, ip string) Hold { return Hold{Dest: dest, Target: ip, Jail: jail, IP: ip} }
	// The start: sshd lifts its ended bans.
	for _, ip := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5"} {
		if _, err := db.Unban(ctx, hold("sshd", ip)); err != nil {
			t.Fatal(err)
		}
	}
	if got := due(); !slices.Equal(got, []string{"192.0.2.3", "192.0.2.4"}) {
		t.Fatalf("due at the start: %v, want only the addresses no other jail bans", got)
	}
	// recidive's restored ban of 192.0.2.1 reaches its action: the rule is
	// its, held, and nothing is to be sent.
	if _, err := db.Ban(ctx, hold("recidive", "192.0.2.1")); err != nil {
		t.Fatal(err)
	}
	if e, err := db.Entry(ctx, dest, "192.0.2.1"); err != nil || e.Pending() || !e.Want || !e.Have {
		t.Fatalf("192.0.2.1 once recidive holds it: %+v %v", e, err)
	}
	// nginx's ban, which never reaches Cloudflare, ends: the look-up is due.
	clk.add(31 * time.Minute)
	if got := due(); !slices.Equal(got, []string{"192.0.2.3", "192.0.2.4", "192.0.2.5"}) {
		t.Fatalf("due after 31 minutes: %v", got)
	}
	// recidive's ban ends: its unban deletes the rule at once.
	if _, err := db.Unban(ctx, hold("recidive", "192.0.2.1")); err != nil {
		t.Fatal(err)
	}
	if got := due(); !slices.Contains(got, "192.0.2.1") || slices.Contains(got, "192.0.2.2") {
		t.Fatalf("due after recidive's unban: %v", got)
	}
}

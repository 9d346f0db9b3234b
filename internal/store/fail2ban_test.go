package store

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
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
		{"192.0.2.2", "sshd", now.Add(-time.Hour).Unix(), 600, 3, nil},                                       // ended: record only
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
	if strings.Join(got, ",") != "recidive 192.0.2.3,sshd 192.0.2.1,sshd 2001:db8::1" {
		t.Fatalf("active bans: %v", got)
	}
	if active[0].BanTime != -1 || !active[1].End().Equal(now.Add(5*time.Minute)) || active[1].Data != `{"matches": ["a"], "failures": 5}` {
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

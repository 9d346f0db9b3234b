package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestJailBansSurviveReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "edgeban.db")
	t0 := time.UnixMilli(1_700_000_000_000)
	db := mustOpen(t, path)
	bans := []JailBan{
		{Jail: "sshd", IP: "192.0.2.1", At: t0, BanTime: 10 * time.Minute, BanCount: 1, Data: `{"failures":5}`},
		{Jail: "sshd", IP: "2001:db8::1", At: t0.Add(time.Second), BanTime: -1, BanCount: 3},
		{Jail: "nginx-http-auth", IP: "192.0.2.1", At: t0.Add(2 * time.Second), BanTime: time.Hour, BanCount: 2},
	}
	for _, b := range bans {
		if err := db.AddJailBan(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.SetLogPosition(ctx, "sshd", "/var/log/auth.log", "abc", 1234); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db = mustOpen(t, path)
	got, err := db.JailBans(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("%d bans after reopening", len(got))
	}
	for i, b := range got {
		w := bans[i]
		if w.Data == "" {
			w.Data = "{}"
		}
		if b != w {
			t.Errorf("ban %d: %+v, want %+v", i, b, w)
		}
	}
	if e := got[0].End(); !e.Equal(t0.Add(10 * time.Minute)) {
		t.Errorf("end %v", e)
	}
	if !got[1].End().IsZero() {
		t.Errorf("a permanent ban ends at %v", got[1].End())
	}
	if md5, pos, ok, err := db.LogPosition(ctx, "sshd", "/var/log/auth.log"); err != nil || !ok || md5 != "abc" || pos != 1234 {
		t.Fatalf("position %q %d %v %v", md5, pos, ok, err)
	}
	if _, _, ok, _ := db.LogPosition(ctx, "sshd", "/other"); ok {
		t.Fatal("position of an unknown log")
	}

	tests := []struct {
		name      string
		ip, jail  string
		overall   bool
		wantOK    bool
		wantCount int
	}{
		{"own jail", "192.0.2.1", "sshd", false, true, 1},
		{"overall: the highest count", "192.0.2.1", "sshd", true, true, 2},
		{"other jail only", "2001:db8::1", "nginx-http-auth", false, false, 0},
		{"overall finds it", "2001:db8::1", "nginx-http-auth", true, true, 3},
		{"never banned", "198.51.100.1", "sshd", true, false, 0},
	}
	for _, tt := range tests {
		b, ok, err := db.LastBan(ctx, tt.ip, tt.jail, tt.overall)
		if err != nil || ok != tt.wantOK || b.BanCount != tt.wantCount {
			t.Errorf("%s: LastBan = %+v, %v, %v", tt.name, b, ok, err)
		}
	}

	if err := db.RemoveJailBan(ctx, "sshd", "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.JailBans(ctx, "sshd"); len(got) != 1 || got[0].IP != "2001:db8::1" {
		t.Fatalf("after unban: %+v", got)
	}
	if _, ok, _ := db.LastBan(ctx, "192.0.2.1", "sshd", false); !ok {
		t.Fatal("the record of the ban went with the unban")
	}
}

func TestPurgeJails(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.UnixMilli(1_700_000_000_000)}
	db := mustOpen(t, "", WithClock(c.now))
	t0 := c.now()
	for _, b := range []JailBan{
		{Jail: "sshd", IP: "192.0.2.1", At: t0, BanTime: time.Minute, BanCount: 1},    // ended, unbanned: purged
		{Jail: "sshd", IP: "192.0.2.2", At: t0, BanTime: time.Minute, BanCount: 1},    // ended but still active: kept
		{Jail: "sshd", IP: "192.0.2.3", At: t0, BanTime: -1, BanCount: 1},             // permanent: kept
		{Jail: "sshd", IP: "192.0.2.4", At: t0, BanTime: 48 * time.Hour, BanCount: 1}, // not ended: kept
	} {
		if err := db.AddJailBan(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	db.RemoveJailBan(ctx, "sshd", "192.0.2.1")
	db.RemoveJailBan(ctx, "sshd", "192.0.2.3")
	c.add(25 * time.Hour)
	n, err := db.PurgeJails(ctx, 24*time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("purged %d, %v", n, err)
	}
	for ip, want := range map[string]bool{"192.0.2.1": false, "192.0.2.2": true, "192.0.2.3": true, "192.0.2.4": true} {
		if _, ok, _ := db.LastBan(ctx, ip, "sshd", false); ok != want {
			t.Errorf("%s kept: %v, want %v", ip, ok, want)
		}
	}
}

// TestOpenCorrupt checks that a damaged database is an error that names
// it, never a silent reset.
func TestOpenCorrupt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edgeban.db")
	junk := []byte(strings.Repeat("this is not a database ", 200))
	if err := os.WriteFile(path, junk, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), path)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open of a corrupt file: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != string(junk) {
		t.Fatal("the corrupt file was changed")
	}
}

// TestJailWritesSurviveProcessCrash kills a process right after its jail
// writes returned, before anything synced them or closed the database:
// the writes are there when the database is opened again.
func TestJailWritesSurviveProcessCrash(t *testing.T) {
	const env = "EDGEBAN_STORE_CRASH_DB"
	ctx := context.Background()
	if path := os.Getenv(env); path != "" {
		db, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		at := time.UnixMilli(1_700_000_000_000)
		bans := []JailBan{{Jail: "sshd", IP: "192.0.2.1", At: at, BanTime: time.Hour, BanCount: 1},
			{Jail: "sshd", IP: "192.0.2.2", At: at, BanTime: time.Hour, BanCount: 1}}
		if err := db.AddJailBans(ctx, bans); err != nil {
			t.Fatal(err)
		}
		if err := db.AddJailBan(ctx, JailBan{Jail: "sshd", IP: "192.0.2.3", At: at, BanTime: -1, BanCount: 2}); err != nil {
			t.Fatal(err)
		}
		if err := db.RemoveJailBans(ctx, "sshd", []string{"192.0.2.2"}); err != nil {
			t.Fatal(err)
		}
		if err := db.SetLogPosition(ctx, "sshd", "/var/log/auth.log", "abc", 42); err != nil {
			t.Fatal(err)
		}
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // not reached
	}
	path := filepath.Join(t.TempDir(), "edgeban.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestJailWritesSurviveProcessCrash$")
	cmd.Env = append(os.Environ(), env+"="+path)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the child was to die of SIGKILL: %v\n%s", err, out)
	}
	db := mustOpen(t, path)
	got, err := db.JailBans(ctx, "sshd")
	if err != nil {
		t.Fatal(err)
	}
	var ips []string
	for _, b := range got {
		ips = append(ips, b.IP)
	}
	if strings.Join(ips, " ") != "192.0.2.1 192.0.2.3" {
		t.Fatalf("bans after the crash: %v", ips)
	}
	if _, pos, ok, err := db.LogPosition(ctx, "sshd", "/var/log/auth.log"); err != nil || !ok || pos != 42 {
		t.Fatalf("position after the crash: %d %v %v", pos, ok, err)
	}
}

func TestSyncAndClose(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "edgeban.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	at := time.UnixMilli(1_700_000_000_000)
	// More commits than a checkpoint round: the syncer checkpoints.
	for i := range checkpointEvery + 10 {
		ip := fmt.Sprintf("198.51.100.%d", i%250)
		if err := db.AddJailBan(ctx, JailBan{Jail: fmt.Sprint("j", i/250), IP: ip, At: at, BanTime: time.Hour, BanCount: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := db.SyncErr(); err != nil {
		t.Fatal(err)
	}
	db = mustOpen(t, path)
	if got, err := db.JailBans(ctx, ""); err != nil || len(got) != checkpointEvery+10 {
		t.Fatalf("%d bans after reopening, %v", len(got), err)
	}
}

func TestEachJailBan(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t, "")
	t0 := time.UnixMilli(1_700_000_000_000)
	if err := db.AddJailBans(ctx, []JailBan{
		{Jail: "sshd", IP: "192.0.2.2", At: t0.Add(time.Second), BanTime: time.Hour, BanCount: 1, Data: `{"failures":2}`},
		{Jail: "sshd", IP: "192.0.2.1", At: t0, BanTime: -1, BanCount: 3, Data: `{"failures":1}`},
		{Jail: "nginx", IP: "192.0.2.3", At: t0, BanTime: time.Hour, BanCount: 1},
	}); err != nil {
		t.Fatal(err)
	}
	stop := errors.New("stop")
	tests := []struct {
		name    string
		jail    string
		stopAt  int // fn returns stop at this call (0: never)
		want    []JailBan
		wantErr error
	}{
		{"oldest first, without data", "sshd", 0, []JailBan{
			{Jail: "sshd", IP: "192.0.2.1", At: t0, BanTime: -1, BanCount: 3},
			{Jail: "sshd", IP: "192.0.2.2", At: t0.Add(time.Second), BanTime: time.Hour, BanCount: 1},
		}, nil},
		{"fn's error stops it", "sshd", 1, []JailBan{{Jail: "sshd", IP: "192.0.2.1", At: t0, BanTime: -1, BanCount: 3}}, stop},
		{"no bans", "recidive", 0, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []JailBan
			err := db.EachJailBan(ctx, tt.jail, func(b JailBan) error {
				got = append(got, b)
				if len(got) == tt.stopAt {
					return stop
				}
				return nil
			})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
	for _, tt := range []struct {
		jail, ip, want string
		ok             bool
	}{
		{"sshd", "192.0.2.2", `{"failures":2}`, true},
		{"nginx", "192.0.2.3", "{}", true},
		{"nginx", "192.0.2.1", "", false},
	} {
		if data, ok, err := db.JailBanData(ctx, tt.jail, tt.ip); err != nil || ok != tt.ok || data != tt.want {
			t.Errorf("JailBanData(%s, %s) = %q, %v, %v; want %q, %v", tt.jail, tt.ip, data, ok, err, tt.want, tt.ok)
		}
	}
}

package jail

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeban/edgeban/internal/action"
	"github.com/edgeban/edgeban/internal/config"
	"github.com/edgeban/edgeban/internal/store"
)

// slowJail is a jail whose shell action takes a while for each restored
// ban, over a store holding n restored bans (198.51.100.1 the oldest),
// the last one ending after end.
type slowJail struct {
	j     *Jail
	log   *os.File
	calls string
}

func startSlowJail(t *testing.T, n int, end time.Duration) *slowJail {
	t.Helper()
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	os.MkdirAll(filepath.Join(dir, "action.d"), 0o755)
	def := "[Definition]\nactionban = if [ <restored> = 1 ]; then sleep 0.02; fi; echo ban <ip> <restored> >> " + calls +
		"\nactionunban = echo unban <ip> >> " + calls + "\n"
	if err := os.WriteFile(filepath.Join(dir, "action.d", "slow.conf"), []byte(def), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := action.Load(dir, "bench", config.Spec{Name: "slow"})
	if err != nil {
		t.Fatal(err)
	}
	sh, err := action.NewShell(d)
	if err != nil {
		t.Fatal(err)
	}
	db := mustOpenStore(t, filepath.Join(dir, "edgeban.db"))
	now := time.Now().Truncate(time.Millisecond)
	var bans []store.JailBan
	for i := range n {
		at := now.Add(-time.Duration(n-i) * time.Second)
		bans = append(bans, store.JailBan{Jail: "bench", IP: fmt.Sprintf("198.51.100.%d", i+1), At: at,
			BanTime: time.Hour, BanCount: 1, Data: `{"failures":3,"matches":["a line"]}`})
	}
	bans[n-1].BanTime = now.Add(end).Sub(bans[n-1].At)
	if err := db.AddJailBans(context.Background(), bans); err != nil {
		t.Fatal(err)
	}
	j, logf := benchJail(t, dir, db, sh)
	return &slowJail{j: j, log: logf, calls: calls}
}

// waitCalls waits until the calls hold each of want, and returns them.
func (sj *slowJail) waitCalls(t *testing.T, want ...string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, _ := os.ReadFile(sj.calls)
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(string(b), w)
		}
		if ok {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the calls:\n%s", want, b)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRestoreInBackground checks what a jail does with restored bans:
// it is ready with every ban known before their actions ran, it bans a
// new offender before it has finished with them, and a restored ban that
// ends meanwhile gets its ban, then its unban.
func TestRestoreInBackground(t *testing.T) {
	const n = 50 // 20 ms each: a second of background work
	sj := startSlowJail(t, n, 300*time.Millisecond)
	st := sj.j.Status()
	if len(st.Banned) != n || st.Pending < n-2 {
		t.Fatalf("ready with %d bans, %d pending; want %d, all or nearly all pending", len(st.Banned), st.Pending, n)
	}
	if !st.Banned[0].Restored {
		t.Fatalf("ban %+v is not marked restored", st.Banned[0])
	}

	fmt.Fprintf(sj.log, "%s login failed for x from 203.0.113.7\n", time.Now().Format("2006-01-02 15:04:05"))
	calls := sj.waitCalls(t, "ban 203.0.113.7 0\n")
	if strings.Contains(calls, fmt.Sprintf("ban 198.51.100.%d 1\n", n-1)) {
		t.Fatalf("the new ban came after the restored ones:\n%s", calls)
	}

	last := fmt.Sprintf("198.51.100.%d", n)
	calls = sj.waitCalls(t, "unban "+last+"\n")
	if i, k := strings.Index(calls, "ban "+last+" 1\n"), strings.Index(calls, "unban "+last+"\n"); i < 0 || i > k {
		t.Fatalf("the restored ban that ended was not banned before its unban:\n%s", calls)
	}
	sj.waitCalls(t, "ban 198.51.100.1 1\n", fmt.Sprintf("ban 198.51.100.%d 1\n", n-1))
	deadline := time.Now().Add(10 * time.Second)
	for sj.j.Status().Pending != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	st = sj.j.Status()
	if st.Pending != 0 || len(st.Banned) != n {
		t.Fatalf("after the restore: %d pending, %d banned", st.Pending, len(st.Banned))
	}
	if calls := sj.waitCalls(t); strings.Count(calls, "ban 198.51.100.1 1\n") != 1 {
		t.Fatalf("a restored ban ran twice:\n%s", calls)
	}
}

func TestUnbanByHandOfPendingBan(t *testing.T) {
	sj := startSlowJail(t, 30, time.Hour)
	// The newest restored ban waits behind the others.
	if err := sj.j.UnbanIP(context.Background(), "198.51.100.30"); err != nil {
		t.Fatal(err)
	}
	calls := sj.waitCalls(t, "unban 198.51.100.30\n")
	if i, k := strings.Index(calls, "ban 198.51.100.30 1\n"), strings.Index(calls, "unban 198.51.100.30\n"); i < 0 || i > k {
		t.Fatalf("not banned before its unban:\n%s", calls)
	}
	sj.waitCalls(t, "ban 198.51.100.29 1\n")
	if calls := sj.waitCalls(t); strings.Count(calls, "198.51.100.30") != 2 {
		t.Fatalf("the unbanned address was banned again:\n%s", calls)
	}
	if err := sj.j.UnbanIP(context.Background(), "198.51.100.30"); err == nil {
		t.Fatal("unbanned twice")
	}
}

func TestPriority(t *testing.T) {
	ctx := context.Background()
	var p priority
	tests := []struct {
		name  string
		held  int
		want  bool
		limit time.Duration
	}{
		{"nothing held", 0, true, time.Hour},
		{"held: waits out the limit", 2, false, 10 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range tt.held {
				p.hold()
			}
			if got := p.wait(ctx, tt.limit); got != tt.want {
				t.Fatalf("wait = %v, want %v", got, tt.want)
			}
			for range tt.held {
				p.release()
			}
		})
	}
	p.hold()
	done := make(chan bool)
	go func() { done <- p.wait(ctx, time.Hour) }()
	p.release()
	if !<-done {
		t.Fatal("wait did not end when the ban work did")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	p.hold()
	if p.wait(cctx, time.Hour) {
		t.Fatal("wait reported calm after its context ended")
	}
	p.release()
}

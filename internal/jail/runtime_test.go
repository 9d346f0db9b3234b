package jail

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeban/edgeban/internal/action"
	"github.com/edgeban/edgeban/internal/config"
	"github.com/edgeban/edgeban/internal/filter"
	"github.com/edgeban/edgeban/internal/store"
)

// testJail builds a jail over real parts: a filter, a log file followed
// with fsnotify, a shell action that appends to a file, and a store.
type testJail struct {
	dir, log, calls string
	db              *store.DB
}

func newTestJail(t *testing.T) *testJail {
	t.Helper()
	dir := t.TempDir()
	tj := &testJail{dir: dir, log: filepath.Join(dir, "auth.log"), calls: filepath.Join(dir, "calls")}
	if err := os.WriteFile(tj.log, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "action.d"), 0o755)
	act := "[Definition]\nactionban = echo ban <ip> <restored> \"<F-USER>\" >> " + tj.calls + "\nactionunban = echo unban <ip> >> " + tj.calls + "\n"
	if err := os.WriteFile(filepath.Join(dir, "action.d", "note.conf"), []byte(act), 0o644); err != nil {
		t.Fatal(err)
	}
	mail := "[Definition]\nnorestored = true\nactionban = echo mail <ip> >> " + tj.calls + "\n"
	if err := os.WriteFile(filepath.Join(dir, "action.d", "mail.conf"), []byte(mail), 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(context.Background(), filepath.Join(dir, "edgeban.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	tj.db = db
	return tj
}

func (tj *testJail) start(t *testing.T, bantime time.Duration) (*Jail, func()) {
	t.Helper()
	return tj.startWith(t, bantime, nil, "note", "mail")
}

// startWith starts the jail with the actions of action.d named, counting
// into c (nil: counters of its own).
func (tj *testJail) startWith(t *testing.T, bantime time.Duration, c *Counters, actionNames ...string) (*Jail, func()) {
	t.Helper()
	f, err := filter.New(filter.Literal(`^\s*auth failure for <F-USER>.*</F-USER> from <HOST>$`), filter.Config{Location: time.Local})
	if err != nil {
		t.Fatal(err)
	}
	var actions []Action
	for _, name := range actionNames {
		def, err := action.Load(tj.dir, "sshd", config.Spec{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		sh, err := action.NewShell(def)
		if err != nil {
			t.Fatal(err)
		}
		actions = append(actions, sh)
	}
	ign, _ := ParseIgnoreIP("127.0.0.1/8")
	j := New(Settings{Name: "sshd", Filter: f, LogPaths: []string{tj.log}, MaxRetry: 3, FindTime: 10 * time.Minute,
		BanTime: bantime, MaxMatches: 5, Ignore: &IgnoreRules{List: ign}, Actions: actions, Store: tj.db, Log: slog.New(slog.DiscardHandler), Counters: c})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- j.Run(ctx) }()
	return j, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

func (tj *testJail) write(t *testing.T, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(tj.log, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, l := range lines {
		fmt.Fprintf(f, "%s %s\n", time.Now().Format("2006-01-02 15:04:05"), l)
	}
}

// waitCalls waits until the action's calls hold want, or fails.
func (tj *testJail) waitCalls(t *testing.T, want string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(tj.calls)
		if strings.Contains(string(b), want) {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the action's calls:\n%s", want, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestJailBansRestoresAndUnbans(t *testing.T) {
	tj := newTestJail(t)
	j, stop := tj.start(t, 6*time.Second)
	evil := `$(touch ` + filepath.Join(tj.dir, "pwned") + `);'"`
	tj.write(t,
		"auth failure for root from 192.0.2.1",
		"auth failure for root from 127.0.0.1", // ignored
		"auth failure for admin from 192.0.2.1",
		"auth failure for "+evil+" from 192.0.2.1",
		"auth failure for root from 192.0.2.2",
	)
	tj.waitCalls(t, "ban 192.0.2.1 0 "+evil+"\n") // the shell took the quotes, and nothing else
	deadline := time.Now().Add(10 * time.Second)
	for j.Status().TotalFailed < 4 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	st := j.Status()
	if len(st.Banned) != 1 || st.Banned[0].IP != "192.0.2.1" || st.Failing != 1 || st.TotalFailed != 4 {
		t.Fatalf("status %+v", st)
	}
	end := st.Banned[0].End
	stop()

	// A restart keeps the ban and its end.
	j2, stop2 := tj.start(t, 6*time.Second)
	defer stop2()
	tj.waitCalls(t, "ban 192.0.2.1 1 ")
	st = j2.Status()
	if len(st.Banned) != 1 || !st.Banned[0].Restored || !st.Banned[0].End.Equal(end) {
		t.Fatalf("after restart: %+v (end %v)", st, end)
	}
	// The lines read before the restart are not read again, and counts
	// of failures start over, as in fail2ban: 192.0.2.2's earlier failure
	// and two new ones do not ban it; a third new one does.
	tj.write(t, "auth failure for x from 192.0.2.2", "auth failure for x from 192.0.2.2")
	deadline = time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		if st := j2.Status(); st.TotalFailed == 2 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st := j2.Status(); st.TotalFailed != 2 || len(st.Banned) != 1 {
		t.Fatalf("after two failures: %+v", st)
	}
	tj.write(t, "auth failure for x from 192.0.2.2")
	tj.waitCalls(t, "ban 192.0.2.2 0")
	if calls := tj.waitCalls(t, "unban 192.0.2.1\n"); strings.Count(calls, "ban 192.0.2.1 0") != 1 || strings.Count(calls, "mail 192.0.2.1") != 1 {
		t.Fatalf("calls:\n%s", calls)
	}
	// The store forgets the ban right after the actions ran.
	deadline = time.Now().Add(10 * time.Second)
	for {
		bans, _ := tj.db.JailBans(context.Background(), "sshd")
		if len(bans) == 1 && bans[0].IP == "192.0.2.2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stored bans %+v", bans)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(tj.dir, "pwned")); err == nil {
		t.Fatal("a user name ran as code")
	}
}

func TestJailBanByHand(t *testing.T) {
	tj := newTestJail(t)
	j, stop := tj.start(t, time.Hour)
	defer stop()
	ctx := context.Background()
	if err := j.BanIP(ctx, "198.51.100.9"); err != nil {
		t.Fatal(err)
	}
	tj.waitCalls(t, "ban 198.51.100.9 0")
	if err := j.BanIP(ctx, "198.51.100.9"); err == nil {
		t.Fatal("banned twice")
	}
	if err := j.UnbanIP(ctx, "198.51.100.9"); err != nil {
		t.Fatal(err)
	}
	tj.waitCalls(t, "unban 198.51.100.9")
	if err := j.UnbanIP(ctx, "198.51.100.9"); err == nil || !strings.Contains(err.Error(), "not banned") {
		t.Fatalf("unban of an address not banned: %v", err)
	}
}

package jail

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/edgeban/edgeban/internal/action"
	"github.com/edgeban/edgeban/internal/config"
	"github.com/edgeban/edgeban/internal/filter"
	"github.com/edgeban/edgeban/internal/store"
)

// signalAction wraps an action and tells bans of each ban it made.
type signalAction struct {
	Action
	bans chan string
}

func (a signalAction) Ban(ctx context.Context, t action.Ticket) error {
	err := a.Action.Ban(ctx, t)
	a.bans <- t.IP
	return err
}

// nopAction does nothing: what is left is edgeban's own path.
type nopAction struct{}

func (nopAction) Name() string                             { return "nop" }
func (nopAction) Start(context.Context) error              { return nil }
func (nopAction) Ban(context.Context, action.Ticket) error { return nil }
func (nopAction) Unban(context.Context, action.Ticket) error {
	return nil
}
func (nopAction) Stop(context.Context) error { return nil }

// shellAction is a one-line shell actionban, as bench/latency.sh has.
func shellAction(tb testing.TB, dir, out string) Action {
	tb.Helper()
	os.MkdirAll(filepath.Join(dir, "action.d"), 0o755)
	def := "[Definition]\nactionban = printf '%%s\\n' <ip> >> " + out + "\n"
	if err := os.WriteFile(filepath.Join(dir, "action.d", "out.conf"), []byte(def), 0o644); err != nil {
		tb.Fatal(err)
	}
	d, err := action.Load(dir, "bench", config.Spec{Name: "out"})
	if err != nil {
		tb.Fatal(err)
	}
	sh, err := action.NewShell(d)
	if err != nil {
		tb.Fatal(err)
	}
	return sh
}

// benchJail runs a jail with maxretry 1 over a real log file and a real
// store, its only action a, until the test ends, and returns it once it
// is ready, with its log open for appending.
func benchJail(tb testing.TB, dir string, db *store.DB, a Action) (*Jail, *os.File) {
	tb.Helper()
	j, logf, stop := startBenchJail(tb, dir, db, a)
	tb.Cleanup(stop)
	return j, logf
}

// startBenchJail is benchJail with the function that stops the jail.
func startBenchJail(tb testing.TB, dir string, db *store.DB, a Action) (*Jail, *os.File, func()) {
	tb.Helper()
	logPath := filepath.Join(dir, "app.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { logf.Close() })
	f, err := filter.New(filter.Literal(`^\s*login failed for \S+ from <HOST>$`), filter.Config{Location: time.Local})
	if err != nil {
		tb.Fatal(err)
	}
	j := New(Settings{Name: "bench", Filter: f, LogPaths: []string{logPath}, MaxRetry: 1, FindTime: 10 * time.Minute,
		BanTime: time.Hour, Actions: []Action{a}, Store: db, Log: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- j.Run(ctx) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Run: %v", err)
		}
	}
	select {
	case <-j.Ready():
	case err := <-done:
		tb.Fatalf("Run: %v", err)
	}
	return j, logf, stop
}

func mustOpenStore(tb testing.TB, path string) *store.DB {
	tb.Helper()
	db, err := store.Open(context.Background(), path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// addr returns the n-th address of 100.64.0.0/10.
func addr(n int) string {
	return netip.AddrFrom4([4]byte{100, 64 + byte(n>>16&0x3f), byte(n >> 8), byte(n)}).String()
}

// BenchmarkBanLatency measures one ban from the line's write to the
// action's Ban having returned: fsnotify, the source, the jail's loop,
// the filter, the store and the action. Each iteration appends one line
// with a new address and waits for its ban. ns/op is the mean; the
// metrics give the quantiles. "nop" leaves the action out; "shell" runs
// bench/latency.sh's one-line actionban; "idle" pauses 10 ms between bans
// (outside the timer), as a daemon waits between offenders: waking from
// idle costs more than the back-to-back bans of the others.
func BenchmarkBanLatency(b *testing.B) {
	for _, tc := range []struct {
		name  string
		shell bool
		pause time.Duration
	}{
		{"nop", false, 0},
		{"shell", true, 0},
		{"nop-idle", false, 10 * time.Millisecond},
		{"shell-idle", true, 10 * time.Millisecond},
	} {
		b.Run(tc.name, func(b *testing.B) {
			dir := b.TempDir()
			var a Action = nopAction{}
			if tc.shell {
				a = shellAction(b, dir, filepath.Join(dir, "bans"))
			}
			sig := signalAction{Action: a, bans: make(chan string, 1)}
			_, logf := benchJail(b, dir, mustOpenStore(b, filepath.Join(dir, "edgeban.db")), sig)
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				if tc.pause > 0 {
					b.StopTimer()
					time.Sleep(tc.pause)
					b.StartTimer()
				}
				ip := addr(i + 1)
				line := time.Now().Format("2006-01-02 15:04:05") + " login failed for bench from " + ip + "\n"
				t0 := time.Now()
				if _, err := logf.WriteString(line); err != nil {
					b.Fatal(err)
				}
				if got := <-sig.bans; got != ip {
					b.Fatalf("banned %s, want %s", got, ip)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			slices.Sort(lat)
			q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
			b.ReportMetric(q(.5), "p50-µs")
			b.ReportMetric(q(.99), "p99-µs")
			b.ReportMetric(q(1), "max-µs")
		})
	}
}

// BenchmarkRestore measures a jail's start over 100,000 active bans in
// the store: from Run to Ready, when the jail knows every ban and bans
// new offenders; the actions' bans of the restored ones come after, in
// the background (with a nop action here). live-MB is the heap in use
// after the restore, collected.
func BenchmarkRestore(b *testing.B) {
	const n = 100_000
	dir := b.TempDir()
	path := filepath.Join(dir, "edgeban.db")
	db := mustOpenStore(b, path)
	now := time.Now().Truncate(time.Millisecond)
	bans := make([]store.JailBan, n)
	for i := range bans {
		bans[i] = store.JailBan{Jail: "bench", IP: addr(i + 1), At: now.Add(-time.Duration(n-i) * time.Millisecond),
			BanTime: 24 * time.Hour, BanCount: 1, Data: `{"failures":1}`}
	}
	if err := db.AddJailBans(context.Background(), bans); err != nil {
		b.Fatal(err)
	}
	var live uint64
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		sub := filepath.Join(dir, fmt.Sprint(i))
		os.Mkdir(sub, 0o755)
		var before runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		b.StartTimer()
		j, _, stop := startBenchJail(b, sub, db, nopAction{})
		b.StopTimer()
		var after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&after)
		live = max(live, after.HeapAlloc-min(after.HeapAlloc, before.HeapAlloc))
		if got := j.Status().Banned; len(got) != n {
			b.Fatalf("%d bans restored, want %d", len(got), n)
		}
		stop()
		b.StartTimer()
	}
	b.ReportMetric(float64(live)/(1<<20), "live-MB")
}

// BenchmarkHandleLine measures the jail's work on one line read, without
// the source: the filter, the counters (see Stats), and for a failure its
// counting. "miss" is a line without a failure, "ignored" a failure of an
// address ignoreip lets pass, which is the whole per-line path short of a
// ban.
func BenchmarkHandleLine(b *testing.B) {
	f, err := filter.New(filter.Literal(`^\s*login failed for \S+ from <HOST>$`), filter.Config{Location: time.Local})
	if err != nil {
		b.Fatal(err)
	}
	ign, _ := ParseIgnoreIP("192.0.2.0/24")
	j := New(Settings{Name: "bench", Filter: f, MaxRetry: 5, FindTime: 10 * time.Minute, BanTime: time.Hour,
		Ignore: &IgnoreRules{List: ign}, Log: slog.New(slog.DiscardHandler)})
	stamp := time.Now().Format("2006-01-02 15:04:05")
	for _, tc := range []struct{ name, line string }{
		{"miss", stamp + " session opened for user alice by (uid=0)"},
		{"ignored", stamp + " login failed for root from 192.0.2.7"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			for b.Loop() {
				j.handleLine(ctx, tc.line, time.Time{})
			}
		})
	}
	if st := j.Stats(); st.LinesRead == 0 || st.Ignored == 0 {
		b.Fatalf("nothing counted: %+v", st)
	}
}

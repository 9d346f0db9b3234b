package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// mustOpen opens a fresh database in a temp dir and closes it at cleanup.
func mustOpen(tb testing.TB, path string, opts ...Option) *DB {
	tb.Helper()
	if path == "" {
		path = filepath.Join(tb.TempDir(), "edgeban.db")
	}
	db, err := Open(context.Background(), path, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestOpenPrivateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "edgeban.db")
	mustOpen(t, path)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	// A database that others can read holds credentials in the open: refuse it.
	open := filepath.Join(t.TempDir(), "open.db")
	if err := os.WriteFile(open, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(open, 0o644)
	if _, err := Open(context.Background(), open); err == nil {
		t.Error("opened a world-readable database")
	}
}

// step is one outbox operation in a scenario.
type step struct {
	// op is ban, unban, deliver, or one of these deliveries whose outcome
	// is never recorded: "lost" (the write went out, then the worker was
	// killed), "failed" (it went out and was answered with an error) and
	// "held" (claimed, then held back without a request).
	op     string
	jail   string
	ip     string
	target string
}

func TestOutboxCoalescing(t *testing.T) {
	tests := []struct {
		name        string
		steps       []step
		wantPending []string // targets pending after the steps, as want/have
		wantCalls   int      // deliveries made by "deliver" steps
	}{
		{
			name:        "ban then unban before delivery is a no-op",
			steps:       []step{{op: "ban", jail: "sshd", ip: "192.0.2.1"}, {op: "unban", jail: "sshd", ip: "192.0.2.1"}, {op: "deliver"}},
			wantPending: nil,
		},
		{
			name:      "ban delivered once",
			steps:     []step{{op: "ban", jail: "sshd", ip: "192.0.2.1"}, {op: "ban", jail: "sshd", ip: "192.0.2.1"}, {op: "deliver"}},
			wantCalls: 1,
		},
		{
			name: "two jails share one rule until the last unbans",
			steps: []step{
				{op: "ban", jail: "sshd", ip: "192.0.2.1"}, {op: "ban", jail: "nginx", ip: "192.0.2.1"}, {op: "deliver"},
				{op: "unban", jail: "sshd", ip: "192.0.2.1"}, {op: "deliver"},
			},
			wantCalls: 1,
		},
		{
			name: "last jail's unban deletes",
			steps: []step{
				{op: "ban", jail: "sshd", ip: "192.0.2.1"}, {op: "ban", jail: "nginx", ip: "192.0.2.1"}, {op: "deliver"},
				{op: "unban", jail: "sshd", ip: "192.0.2.1"}, {op: "unban", jail: "nginx", ip: "192.0.2.1"},
			},
			wantPending: []string{"192.0.2.1 0/1 id=id"},
			wantCalls:   1,
		},
		{
			name: "two addresses of one /64 share a target",
			steps: []step{
				{op: "ban", jail: "sshd", ip: "2001:db8::1", target: "2001:db8::/64"}, {op: "ban", jail: "sshd", ip: "2001:db8::2", target: "2001:db8::/64"}, {op: "deliver"},
				{op: "unban", jail: "sshd", ip: "2001:db8::1", target: "2001:db8::/64"},
			},
			wantCalls: 1,
		},
		{
			name:        "unban of something never banned here is looked up remotely",
			steps:       []step{{op: "unban", jail: "sshd", ip: "192.0.2.9"}},
			wantPending: []string{"192.0.2.9 0/1"},
		},
		{
			// The create may have made the rule: it is looked up and deleted.
			name:        "unban after a create that went out and was lost",
			steps:       []step{{op: "ban", jail: "sshd", ip: "192.0.2.1"}, {op: "lost"}, {op: "unban", jail: "sshd", ip: "192.0.2.1"}},
			wantPending: []string{"192.0.2.1 0/1 id=''"},
		},
		{
			name:        "unban after a create that went out and failed",
			steps:       []step{{op: "ban", jail: "sshd", ip: "192.0.2.1"}, {op: "failed"}, {op: "unban", jail: "sshd", ip: "192.0.2.1"}},
			wantPending: []string{"192.0.2.1 0/1 id=''"},
		},
		{
			name:        "unban after a create that never went out is still a no-op",
			steps:       []step{{op: "ban", jail: "sshd", ip: "192.0.2.1"}, {op: "held"}, {op: "unban", jail: "sshd", ip: "192.0.2.1"}},
			wantPending: nil,
		},
		{
			// The delete may not have happened: create again (it adopts).
			name: "ban again after a delete that went out and was lost",
			steps: []step{
				{op: "ban", jail: "sshd", ip: "192.0.2.1"}, {op: "deliver"},
				{op: "unban", jail: "sshd", ip: "192.0.2.1"}, {op: "lost"},
				{op: "ban", jail: "nginx", ip: "192.0.2.1"},
			},
			wantPending: []string{"192.0.2.1 1/0 id=''"},
			wantCalls:   1,
		},
		{
			name: "ban again after an unban that never went out is still a no-op",
			steps: []step{
				{op: "ban", jail: "sshd", ip: "192.0.2.1"}, {op: "deliver"},
				{op: "unban", jail: "sshd", ip: "192.0.2.1"}, {op: "held"},
				{op: "ban", jail: "nginx", ip: "192.0.2.1"},
			},
			wantCalls: 1,
		},
		{
			name: "a recorded outcome ends the doubt",
			steps: []step{
				{op: "ban", jail: "sshd", ip: "192.0.2.1"}, {op: "failed"}, {op: "deliver"},
				{op: "unban", jail: "sshd", ip: "192.0.2.1"},
			},
			wantPending: []string{"192.0.2.1 0/1 id=id"},
			wantCalls:   1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			db := mustOpen(t, "")
			dest, err := db.Destination(ctx, "k", []byte("{}"))
			if err != nil {
				t.Fatal(err)
			}
			calls := 0
			for _, s := range tt.steps {
				target := s.target
				if target == "" {
					target = s.ip
				}
				h := Hold{Dest: dest, Target: target, Jail: s.jail, IP: s.ip}
				switch s.op {
				case "ban":
					_, err = db.Ban(ctx, h)
				case "unban":
					_, err = db.Unban(ctx, h)
				case "deliver":
					var claimed []Entry
					claimed, err = db.Claim(ctx, "t", ClaimFilter{}, time.Minute)
					for _, e := range claimed {
						calls++
						_, err = db.Complete(ctx, "t", Result{Dest: e.Dest, Target: e.Target, Have: e.Want, RemoteID: "id", Op: "x", Outcome: "ok"})
					}
				case "lost", "failed", "held":
					var claimed []Entry
					claimed, err = db.Claim(ctx, "worker:1", ClaimFilter{}, time.Minute)
					for _, e := range claimed {
						if err == nil && s.op != "held" {
							err = db.MarkSent(ctx, "worker:1", e.Dest, e.Target)
						}
						if err == nil && s.op != "lost" {
							err = db.Fail(ctx, "worker:1", e.Dest, e.Target, "HTTP 503", time.Time{})
						}
					}
					if err == nil && s.op == "lost" {
						// The worker was killed; the next one takes its claims back.
						_, err = db.ReleasePrefix(ctx, "worker:")
					}
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			var pending []string
			db.Entries(ctx, dest, func(e Entry) error {
				if e.Pending() {
					p := fmt.Sprintf("%s %d/%d", e.Target, b2i(e.Want), b2i(e.Have))
					if e.Sent || e.RemoteID != "" {
						// The remote id tells a delete by id from one that
						// looks the rule up first.
						p += fmt.Sprintf(" id=%s", cmp.Or(e.RemoteID, "''"))
					}
					pending = append(pending, p)
				}
				return nil
			})
			if fmt.Sprint(pending) != fmt.Sprint(tt.wantPending) {
				t.Errorf("pending = %v, want %v", pending, tt.wantPending)
			}
			if calls != tt.wantCalls {
				t.Errorf("deliveries = %d, want %d", calls, tt.wantCalls)
			}
		})
	}
}

func TestClaimExclusiveAcrossHandles(t *testing.T) {
	// Several handles on one file stand in for several processes.
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "edgeban.db")
	first := mustOpen(t, path)
	dest, err := first.Destination(ctx, "k", []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	const n = 300
	for i := range n {
		if _, err := first.Ban(ctx, Hold{Dest: dest, Target: fmt.Sprintf("198.51.100.%d", i%250) + fmt.Sprint(i/250), Jail: "j", IP: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for w := range 6 {
		db := mustOpen(t, path)
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprintf("w%d", w)
			for {
				es, err := db.Claim(ctx, owner, ClaimFilter{Limit: 7}, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if len(es) == 0 {
					return
				}
				for _, e := range es {
					mu.Lock()
					seen[e.Target]++
					mu.Unlock()
					if _, err := db.Complete(ctx, owner, Result{Dest: e.Dest, Target: e.Target, Have: true, Op: "ban", Outcome: "created"}); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Errorf("delivered %d targets, want %d", len(seen), n)
	}
	for target, c := range seen {
		if c != 1 {
			t.Errorf("%s delivered %d times", target, c)
		}
	}
}

func TestClaimLeaseAndFail(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	db := mustOpen(t, "", WithClock(clk.now))
	dest, _ := db.Destination(ctx, "k", []byte("{}"))
	db.Ban(ctx, Hold{Dest: dest, Target: "192.0.2.1", Jail: "j", IP: "192.0.2.1"})

	es, _ := db.Claim(ctx, "a", ClaimFilter{}, time.Minute)
	if len(es) != 1 {
		t.Fatalf("claimed %d", len(es))
	}
	if es, _ := db.Claim(ctx, "b", ClaimFilter{}, time.Minute); len(es) != 0 {
		t.Fatal("b claimed an entry a holds")
	}
	clk.add(2 * time.Minute) // a's lease lapses: a was killed
	if es, _ := db.Claim(ctx, "b", ClaimFilter{}, time.Minute); len(es) != 1 {
		t.Fatal("b could not take over a lapsed claim")
	}
	if lost, _ := db.Complete(ctx, "a", Result{Dest: dest, Target: "192.0.2.1", Have: true}); lost != 1 {
		t.Error("a completed an entry it no longer holds")
	}
	if err := db.Fail(ctx, "b", dest, "192.0.2.1", "HTTP 503", clk.now().Add(30*time.Second)); err != nil {
		t.Fatal(err)
	}
	if es, _ := db.Claim(ctx, "c", ClaimFilter{}, time.Minute); len(es) != 0 {
		t.Fatal("claimed before the retry time")
	}
	clk.add(31 * time.Second)
	es, _ = db.Claim(ctx, "c", ClaimFilter{}, time.Minute)
	if len(es) != 1 || es[0].Attempts != 1 || es[0].LastError != "HTTP 503" {
		t.Fatalf("after retry time: %+v", es)
	}
	failing, _ := db.Failing(ctx, 10)
	if len(failing) != 1 {
		t.Errorf("failing = %d", len(failing))
	}
}

// TestStuck checks which failing entries count as stuck: pending, failed
// at least once, changed before the time asked about, and not held back
// by a capacity policy.
func TestStuck(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	db := mustOpen(t, "", WithClock(clk.now))
	dest, _ := db.Destination(ctx, "k", []byte("{}"))
	ban := func(ip string) {
		t.Helper()
		if _, err := db.Ban(ctx, Hold{Dest: dest, Target: ip, Jail: "j", IP: ip}); err != nil {
			t.Fatal(err)
		}
	}
	fail := func(ip, msg string) {
		t.Helper()
		es, err := db.Claim(ctx, "w", ClaimFilter{Targets: []string{ip}}, time.Minute)
		if err != nil || len(es) != 1 {
			t.Fatalf("claim %s: %v %v", ip, es, err)
		}
		if err := db.Fail(ctx, "w", dest, ip, msg, clk.now()); err != nil {
			t.Fatal(err)
		}
	}
	ban("192.0.2.1") // the oldest, failing
	clk.add(time.Minute)
	ban("192.0.2.2") // failing
	ban("192.0.2.3") // held back by the capacity policy
	ban("192.0.2.4") // not tried yet
	fail("192.0.2.1", "HTTP 503")
	fail("192.0.2.2", "HTTP 403: bad token")
	fail("192.0.2.3", "held: capacity 1 reached")
	clk.add(time.Minute)
	ban("192.0.2.5") // failing, but recent
	fail("192.0.2.5", "HTTP 503")
	tests := []struct {
		name   string
		since  time.Time
		n      int
		oldest string
	}{
		{"all but the recent one", clk.now().Add(-30 * time.Second), 2, "192.0.2.1"},
		{"all", clk.now().Add(time.Second), 3, "192.0.2.1"},
		{"none that old", clk.now().Add(-2 * time.Minute), 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, oldest, err := db.Stuck(ctx, tt.since)
			if err != nil || n != tt.n || oldest.Target != tt.oldest {
				t.Fatalf("Stuck = %d, %q, %v; want %d, %q", n, oldest.Target, err, tt.n, tt.oldest)
			}
			if tt.n > 0 && oldest.LastError != "HTTP 503" {
				t.Fatalf("oldest's last error %q", oldest.LastError)
			}
		})
	}
}

func TestPing(t *testing.T) {
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "edgeban.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(context.Background()); err != nil {
		t.Fatalf("an open database: %v", err)
	}
	db.Close()
	if err := db.Ping(context.Background()); err == nil || !strings.Contains(err.Error(), "edgeban.db") {
		t.Fatalf("a closed database: %v", err)
	}
}

func TestBudgetSlidingWindow(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	path := filepath.Join(t.TempDir(), "edgeban.db")
	a := mustOpen(t, path, WithClock(clk.now)).Budget("fp", 3, time.Minute, 0)
	b := mustOpen(t, path, WithClock(clk.now)).Budget("fp", 3, time.Minute, 0)
	other := mustOpen(t, path, WithClock(clk.now)).Budget("other", 3, time.Minute, 0)
	for i, bu := range []*Budget{a, b, a} {
		if w, err := bu.take(ctx); err != nil || w != 0 {
			t.Fatalf("take %d: wait %v err %v", i, w, err)
		}
		clk.add(time.Second)
	}
	if w, _ := b.take(ctx); w <= 50*time.Second || w > time.Minute {
		t.Errorf("fourth request waits %v, want about 57s", w)
	}
	if w, _ := other.take(ctx); w != 0 {
		t.Errorf("another credential waits %v", w)
	}
	clk.add(58 * time.Second)
	if w, _ := b.take(ctx); w != 0 {
		t.Errorf("after the window slid: wait %v", w)
	}
	a.Penalize(ctx, clk.now().Add(5*time.Minute))
	if w, _ := b.take(ctx); w < 4*time.Minute {
		t.Errorf("during lockout: wait %v", w)
	}
	used, until, err := b.Usage(ctx)
	if err != nil || used != 2 || until.IsZero() {
		t.Errorf("usage = %d, %v, %v", used, until, err)
	}
}

// TestBudgetWaitReports checks that Wait says how long it held the
// caller back: not at all within the budget, then until the window frees
// a slot, and through a lockout, a second of sleep at a time.
func TestBudgetWaitReports(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	b := mustOpen(t, "", WithClock(clk.now)).Budget("fp", 2, 10*time.Second, 0)
	var slept []time.Duration
	b.sleep = func(_ context.Context, d time.Duration) error {
		slept = append(slept, d)
		clk.add(d)
		return nil
	}
	steps := []struct {
		name    string
		penalty time.Duration // a lockout from now, before the Wait
		want    time.Duration
	}{
		{"first", 0, 0},
		{"second", 0, 0},
		{"the window is full", 0, 10 * time.Second},
		{"a lockout", 3 * time.Second, 3 * time.Second},
	}
	for _, st := range steps {
		if st.penalty > 0 {
			b.Penalize(ctx, clk.now().Add(st.penalty))
		}
		slept = nil
		waited, err := b.Wait(ctx)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		var total time.Duration
		for _, d := range slept {
			total += d
		}
		if waited != st.want || total != waited {
			t.Errorf("%s: Wait = %v (slept %v), want %v", st.name, waited, slept, st.want)
		}
	}
}

func TestLease(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	db := mustOpen(t, "", WithClock(clk.now))
	if ok, _ := db.AcquireLease(ctx, "list:acc", "a", time.Minute); !ok {
		t.Fatal("a could not take a free lease")
	}
	if ok, _ := db.AcquireLease(ctx, "list:acc", "b", time.Minute); ok {
		t.Fatal("b took a held lease")
	}
	clk.add(2 * time.Minute)
	if ok, _ := db.AcquireLease(ctx, "list:acc", "b", time.Minute); !ok {
		t.Fatal("b could not take a lapsed lease")
	}
	db.ReleaseLease(ctx, "list:acc", "a") // not a's any more: no effect
	if ok, _ := db.AcquireLease(ctx, "list:acc", "a", time.Minute); ok {
		t.Fatal("a's release freed b's lease")
	}
}

func TestBudgetProjected(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	b := mustOpen(t, "", WithClock(clk.now)).Budget("fp", 10, time.Minute, 0)
	for range 10 { // the window is full, sent over the last 10 seconds
		b.take(ctx)
		clk.add(time.Second)
	}
	tests := []struct {
		n    int
		want time.Duration
	}{
		{0, 0},
		{1, 50 * time.Second},              // the first send leaves the window at 60 s
		{10, 59 * time.Second},             // the tenth at 69 s
		{11, 50*time.Second + time.Minute}, // then our own first send must leave it
		{25, 54*time.Second + 2*time.Minute},
	}
	for _, tt := range tests {
		if got, err := b.Projected(ctx, tt.n); err != nil || got != tt.want {
			t.Errorf("Projected(%d) = %v, %v; want %v", tt.n, got, err, tt.want)
		}
	}
}

func TestBudgetSpacing(t *testing.T) {
	// 60 per minute is one a second on average; a burst of 3 goes at once,
	// then the bucket spaces the rest out.
	ctx := context.Background()
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	b := mustOpen(t, "", WithClock(clk.now)).Budget("fp", 60, time.Minute, 3)
	if p, _ := b.Projected(ctx, 5); p != 2*time.Second {
		t.Errorf("projected 5 = %v, want 2s", p)
	}
	for i := range 3 {
		if w, err := b.take(ctx); err != nil || w != 0 {
			t.Fatalf("burst request %d waits %v (%v)", i, w, err)
		}
	}
	if w, _ := b.take(ctx); w != time.Second {
		t.Errorf("after the burst: wait %v, want 1s", w)
	}
	clk.add(500 * time.Millisecond)
	if w, _ := b.take(ctx); w != 500*time.Millisecond {
		t.Errorf("half a second later: wait %v, want 500ms", w)
	}
	clk.add(500 * time.Millisecond)
	if w, _ := b.take(ctx); w != 0 {
		t.Errorf("a second later: wait %v, want 0", w)
	}
}

// TestTakeWorker starts workers on one database: the first takes back
// what a killed worker still claimed; a second waits for the lock and is
// told that a worker runs, or stops waiting when its context ends; once
// the first unlocks, it starts.
func TestTakeWorker(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "e.db")
	db := mustOpen(t, path)
	dest, _ := db.Destination(ctx, "k", []byte("{}"))
	for _, ip := range []string{"192.0.2.1", "192.0.2.2"} {
		if _, err := db.Ban(ctx, Hold{Dest: dest, Target: ip, Jail: "j", IP: ip}); err != nil {
			t.Fatal(err)
		}
	}
	if es, err := db.Claim(ctx, "worker:1", ClaimFilter{}, time.Hour); err != nil || len(es) != 2 {
		t.Fatalf("the killed worker's claim: %d entries, %v", len(es), err)
	}
	unlock, released, err := db.TakeWorker(ctx)
	if err != nil || released != 2 {
		t.Fatalf("TakeWorker: released %d, %v; want 2", released, err)
	}
	if es, _ := db.Claim(ctx, WorkerOwner(), ClaimFilter{}, time.Hour); len(es) != 2 {
		t.Errorf("after TakeWorker the new worker claims %d entries, want 2", len(es))
	}

	other := mustOpen(t, path)
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, _, err := other.TakeWorker(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("TakeWorker while the lock is held, context ending: %v", err)
	}
	if _, _, err := other.TakeWorker(ctx); !errors.Is(err, ErrWorkerRunning) {
		t.Errorf("TakeWorker while the lock is held: %v, want ErrWorkerRunning", err)
	}
	unlock()
	unlock2, _, err := other.TakeWorker(ctx)
	if err != nil {
		t.Fatalf("TakeWorker after the unlock: %v", err)
	}
	unlock2()
}

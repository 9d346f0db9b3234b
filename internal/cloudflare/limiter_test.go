package cloudflare

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// fakeClock is a manual clock whose sleep advances time instantly.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	slept  []time.Duration
	cancel bool // sleep fails as if its context were cancelled
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (c *fakeClock) sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.slept = append(c.slept, d)
	cancel := c.cancel
	c.mu.Unlock()
	if cancel {
		return context.Canceled
	}
	c.advance(d)
	return ctx.Err()
}

func (c *fakeClock) takeSlept() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.slept
	c.slept = nil
	return s
}

func TestMemoryLimiterWindow(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := newMemoryLimiter(3, 10*time.Second, clock.now, clock.sleep)
	ctx := context.Background()
	start := clock.now()

	steps := []struct {
		name      string
		advance   time.Duration // before the Wait
		wantSlept time.Duration // total sleep inside the Wait
	}{
		{"first", 0, 0},
		{"second", time.Second, 0},
		{"third", time.Second, 0},
		// Sends at 0, 1, 2 s: the fourth waits for the first to leave the window at 10 s.
		{"fourth waits", time.Second, 7 * time.Second},
		// Now at 10 s with sends at 1, 2, 10: the next slot is at 11 s.
		{"fifth waits", 0, time.Second},
		// A quiet period empties the window.
		{"after a quiet period", 30 * time.Second, 0},
	}
	for _, st := range steps {
		clock.advance(st.advance)
		waited, err := l.Wait(ctx)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		var total time.Duration
		for _, d := range clock.takeSlept() {
			total += d
		}
		if total != st.wantSlept {
			t.Errorf("%s: slept %v, want %v (at %v)", st.name, total, st.wantSlept, clock.now().Sub(start))
		}
		if waited != st.wantSlept {
			t.Errorf("%s: Wait says it waited %v, want %v", st.name, waited, st.wantSlept)
		}
	}
}

func TestMemoryLimiterPenalty(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := newMemoryLimiter(100, time.Minute, clock.now, clock.sleep)
	ctx := context.Background()
	l.Penalize(ctx, clock.now().Add(300*time.Second))
	l.Penalize(ctx, clock.now().Add(10*time.Second)) // an earlier deadline does not shorten it
	if waited, err := l.Wait(ctx); err != nil || waited != 300*time.Second {
		t.Fatalf("Wait = %v, %v; want 5m0s", waited, err)
	}
	if got := clock.takeSlept(); len(got) != 1 || got[0] != 300*time.Second {
		t.Errorf("slept %v, want [5m0s]", got)
	}
	if _, err := l.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if got := clock.takeSlept(); len(got) != 0 {
		t.Errorf("slept %v after the penalty ended", got)
	}
}

func TestMemoryLimiterUnlimited(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := newMemoryLimiter(0, time.Minute, clock.now, clock.sleep)
	for range 1000 {
		if _, err := l.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if got := clock.takeSlept(); len(got) != 0 {
		t.Errorf("unlimited limiter slept %v", got)
	}
	l.Penalize(context.Background(), clock.now().Add(time.Minute))
	if _, err := l.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := clock.takeSlept(); len(got) != 1 || got[0] != time.Minute {
		t.Errorf("unlimited limiter ignored the penalty: slept %v", got)
	}
}

func TestMemoryLimiterCancel(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), cancel: true}
	l := newMemoryLimiter(1, time.Minute, clock.now, clock.sleep)
	if _, err := l.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Wait(context.Background()); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := NewMemoryLimiter(10, time.Second).Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

// TestMemoryLimiterConcurrent runs the real clock with a short window under
// -race: 20 callers, 5 per 50 ms, must take at least 150 ms.
func TestMemoryLimiterConcurrent(t *testing.T) {
	l := NewMemoryLimiter(5, 50*time.Millisecond)
	start := time.Now()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := l.Wait(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("20 sends at 5 per 50ms took only %v", d)
	}
}

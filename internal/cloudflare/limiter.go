package cloudflare

import (
	"context"
	"sync"
	"time"
)

// Limiter is the rate budget shared by every caller of one credential.
// The client calls Wait before every HTTP attempt and Penalize after every
// 429. The outbox implements it across processes in SQLite; NewMemoryLimiter
// is the in-process version.
type Limiter interface {
	// Wait blocks until one request may be sent, or until ctx is done,
	// and returns how long it held the caller back: zero when the
	// request could go at once.
	Wait(ctx context.Context) (time.Duration, error)
	// Penalize records that nobody using this credential may send before
	// until, as a 429 answer demands.
	Penalize(ctx context.Context, until time.Time)
}

// memoryLimiter is a sliding-window limiter: at most limit requests in any
// window, and none before the latest penalty.
type memoryLimiter struct {
	limit  int
	window time.Duration
	now    func() time.Time
	sleep  func(context.Context, time.Duration) error

	mu      sync.Mutex
	sent    []time.Time // send times within the window, oldest first
	blocked time.Time   // no sends before this instant
}

// NewMemoryLimiter returns an in-process Limiter that admits at most limit
// requests in any sliding window of the given length, for tests and
// single-process use. A limit or window of zero or less admits every request
// and only honours penalties. Cloudflare's global budget is 1200 requests
// per 5 minutes per credential.
func NewMemoryLimiter(limit int, window time.Duration) Limiter {
	return newMemoryLimiter(limit, window, time.Now, sleepCtx)
}

func newMemoryLimiter(limit int, window time.Duration, now func() time.Time, sleep func(context.Context, time.Duration) error) *memoryLimiter {
	if limit <= 0 || window <= 0 {
		limit, window = 0, 0
	}
	return &memoryLimiter{limit: limit, window: window, now: now, sleep: sleep}
}

// Wait implements Limiter.
func (l *memoryLimiter) Wait(ctx context.Context) (time.Duration, error) {
	var waited time.Duration
	for {
		if err := ctx.Err(); err != nil {
			return waited, err
		}
		d := l.reserve()
		if d <= 0 {
			return waited, nil
		}
		if err := l.sleep(ctx, d); err != nil {
			return waited, err
		}
		waited += d
	}
}

// reserve records a send and returns 0 when one is allowed now, or else
// how long to wait before asking again.
func (l *memoryLimiter) reserve() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if now.Before(l.blocked) {
		return l.blocked.Sub(now)
	}
	if l.limit == 0 {
		return 0
	}
	cutoff := now.Add(-l.window)
	drop := 0
	for drop < len(l.sent) && !l.sent[drop].After(cutoff) {
		drop++
	}
	if drop > 0 {
		l.sent = append(l.sent[:0], l.sent[drop:]...)
	}
	if len(l.sent) < l.limit {
		l.sent = append(l.sent, now)
		return 0
	}
	// The oldest send leaves the window at sent[0]+window.
	return max(l.sent[0].Add(l.window).Sub(now), time.Millisecond)
}

// Penalize implements Limiter.
func (l *memoryLimiter) Penalize(_ context.Context, until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if until.After(l.blocked) {
		l.blocked = until
	}
}

// sleepCtx sleeps for d or until ctx is done, whichever comes first.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

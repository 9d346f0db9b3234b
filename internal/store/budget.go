package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Budget is a request budget shared by every process that opens the same
// database: at most limit requests per window for one credential, spaced
// out by a token bucket that refills at limit/window and holds burst
// requests, and no request at all while a rate-limit lockout reported by
// Cloudflare lasts. The window is a sliding one over the recorded send
// times, so it holds however many callers (the worker, a dozen CLI calls)
// draw on it at once; the bucket keeps a wave from going out at hundreds of
// requests per second (Cloudflare allows 200 per second per IP and advises
// a steady rate).
type Budget struct {
	db     *DB
	fp     string
	limit  int
	window time.Duration
	burst  int
	sleep  func(context.Context, time.Duration) error
}

// Budget returns the shared budget of the credential with fingerprint fp.
// A burst of 0 or less turns the spacing off, leaving only the window.
func (db *DB) Budget(fp string, limit int, window time.Duration, burst int) *Budget {
	return &Budget{db: db, fp: fp, limit: limit, window: window, burst: burst, sleep: sleepCtx}
}

// rate is the bucket's refill rate in requests per second.
func (b *Budget) rate() float64 { return float64(b.limit) / b.window.Seconds() }

// refill returns the bucket's tokens at now, from what was stored.
func (b *Budget) refill(tokens float64, at, now time.Time) float64 {
	if at.IsZero() {
		return float64(b.burst)
	}
	return min(float64(b.burst), tokens+now.Sub(at).Seconds()*b.rate())
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Wait blocks until one request may be sent, and records it as sent. It
// returns how long the budget held the caller back: zero when the request
// could go at once.
func (b *Budget) Wait(ctx context.Context) (time.Duration, error) {
	var waited time.Duration
	for {
		wait, err := b.take(ctx)
		if err != nil {
			return waited, err
		}
		if wait <= 0 {
			return waited, nil
		}
		// Re-check at least every second: a lockout may be lifted or the
		// window may drain sooner than computed when others give up.
		d := min(wait, time.Second)
		if err := b.sleep(ctx, d); err != nil {
			return waited, err
		}
		waited += d
	}
}

// take records a send if the budget allows it now, or returns how long to wait.
func (b *Budget) take(ctx context.Context) (time.Duration, error) {
	var wait time.Duration
	err := b.db.tx(ctx, func(tx *sql.Tx) error {
		now := b.db.now()
		var until int64
		err := tx.QueryRowContext(ctx, "SELECT until FROM rate_block WHERE fp = ?", b.fp).Scan(&until)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if until > ms(now) {
			wait = fromMS(until).Sub(now)
			return nil
		}
		start := ms(now.Add(-b.window))
		if _, err := tx.ExecContext(ctx, "DELETE FROM rate_log WHERE fp = ? AND at <= ?", b.fp, start); err != nil {
			return err
		}
		var n int
		var oldest sql.NullInt64
		if err := tx.QueryRowContext(ctx, "SELECT count(*), min(at) FROM rate_log WHERE fp = ?", b.fp).Scan(&n, &oldest); err != nil {
			return err
		}
		if n >= b.limit {
			wait = fromMS(oldest.Int64).Add(b.window).Sub(now) + time.Millisecond
			return nil
		}
		if b.burst > 0 {
			var tokens float64
			var at int64
			err := tx.QueryRowContext(ctx, "SELECT tokens, at FROM rate_bucket WHERE fp = ?", b.fp).Scan(&tokens, &at)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			tokens = b.refill(tokens, fromMS(at), now)
			if tokens < 1 {
				wait = time.Duration((1 - tokens) / b.rate() * float64(time.Second))
				return nil
			}
			if _, err := tx.ExecContext(ctx, `
INSERT INTO rate_bucket (fp, tokens, at) VALUES (?, ?, ?)
ON CONFLICT(fp) DO UPDATE SET tokens = excluded.tokens, at = excluded.at`, b.fp, tokens-1, ms(now)); err != nil {
				return err
			}
		}
		wait = 0
		_, err = tx.ExecContext(ctx, "INSERT INTO rate_log (fp, at) VALUES (?, ?)", b.fp, ms(now))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: rate budget: %w", err)
	}
	return wait, nil
}

// Penalize stops every caller of the credential until the given time, as a
// 429 from Cloudflare demands. A later lockout never shortens an earlier one.
// A failure to record it is not fatal (the next 429 says it again), so it is
// not returned.
func (b *Budget) Penalize(ctx context.Context, until time.Time) {
	_, _ = b.db.sql.ExecContext(ctx, `
INSERT INTO rate_block (fp, until) VALUES (?, ?)
ON CONFLICT(fp) DO UPDATE SET until = max(rate_block.until, excluded.until)`, b.fp, ms(until))
}

// Usage reports how many requests were sent within the current window and
// until when a lockout lasts (zero if none).
func (b *Budget) Usage(ctx context.Context) (used int, blockedUntil time.Time, err error) {
	now := b.db.now()
	if err := b.db.sql.QueryRowContext(ctx, "SELECT count(*) FROM rate_log WHERE fp = ? AND at > ?", b.fp, ms(now.Add(-b.window))).Scan(&used); err != nil {
		return 0, time.Time{}, fmt.Errorf("store: rate usage: %w", err)
	}
	var until int64
	err = b.db.sql.QueryRowContext(ctx, "SELECT until FROM rate_block WHERE fp = ?", b.fp).Scan(&until)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, time.Time{}, fmt.Errorf("store: rate usage: %w", err)
	}
	if until > ms(now) {
		blockedUntil = fromMS(until)
	}
	return used, blockedUntil, nil
}

// Limit returns the budget's size per window.
func (b *Budget) Limit() (int, time.Duration) { return b.limit, b.window }

// AcquireLease takes the named lease for owner until ttl from now, if nobody
// else holds it unexpired. It is the cross-process mutex that keeps one list
// write in flight per account. Re-acquiring one's own lease extends it.
func (db *DB) AcquireLease(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	now := db.now()
	res, err := db.sql.ExecContext(ctx, `
INSERT INTO lease (name, owner, until) VALUES (?, ?, ?)
ON CONFLICT(name) DO UPDATE SET owner = excluded.owner, until = excluded.until
WHERE lease.owner = excluded.owner OR lease.until < ?`, name, owner, ms(now.Add(ttl)), ms(now))
	if err != nil {
		return false, fmt.Errorf("store: lease %s: %w", name, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// ReleaseLease gives the named lease back if owner holds it.
func (db *DB) ReleaseLease(ctx context.Context, name, owner string) error {
	if _, err := db.sql.ExecContext(ctx, "DELETE FROM lease WHERE name = ? AND owner = ?", name, owner); err != nil {
		return fmt.Errorf("store: lease %s: %w", name, err)
	}
	return nil
}

// Projected estimates how long n more requests take to pass the budget,
// assuming nobody else uses it: the ones that fit now go at once, and each
// further one waits for a recorded send (or one of its own, a window later)
// to leave the window. A lockout in force delays everything.
func (b *Budget) Projected(ctx context.Context, n int) (time.Duration, error) {
	if n <= 0 || b.limit <= 0 {
		return 0, nil
	}
	now := b.db.now()
	rows, err := b.db.sql.QueryContext(ctx, "SELECT at FROM rate_log WHERE fp = ? AND at > ? ORDER BY at", b.fp, ms(now.Add(-b.window)))
	if err != nil {
		return 0, fmt.Errorf("store: rate projection: %w", err)
	}
	defer rows.Close()
	var sent []time.Time
	for rows.Next() {
		var at int64
		if err := rows.Scan(&at); err != nil {
			return 0, fmt.Errorf("store: rate projection: %w", err)
		}
		sent = append(sent, fromMS(at))
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	start := now
	if _, until, err := b.Usage(ctx); err != nil {
		return 0, err
	} else if until.After(start) {
		start = until
	}
	tokens := float64(b.burst)
	if b.burst > 0 {
		var at int64
		err := b.db.sql.QueryRowContext(ctx, "SELECT tokens, at FROM rate_bucket WHERE fp = ?", b.fp).Scan(&tokens, &at)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return 0, fmt.Errorf("store: rate projection: %w", err)
		}
		tokens = b.refill(tokens, fromMS(at), start)
	}
	// Replay both limits: each request takes the window slot of the send
	// a limit earlier, which frees a window after it was used, and a token
	// from the bucket, which refills at the window's average rate.
	slots := make([]time.Time, 0, len(sent)+n)
	slots = append(slots, sent...)
	at, last := start, start
	for range n {
		t := last
		if len(slots) >= b.limit {
			if free := slots[len(slots)-b.limit].Add(b.window); free.After(t) {
				t = free
			}
		}
		if b.burst > 0 {
			avail := b.refill(tokens, at, t)
			if avail < 1 {
				t = t.Add(time.Duration((1 - avail) / b.rate() * float64(time.Second)))
				avail = 1
			}
			tokens, at = avail-1, t
		}
		slots = append(slots, t)
		last = t
	}
	return last.Sub(now), nil
}

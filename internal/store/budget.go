package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Budget is a request budget shared by every process that opens the same
// database: at most Limit requests per Window for one credential, and no
// request at all while a rate-limit lockout reported by Cloudflare lasts.
// It is a sliding window over the recorded send times, so it holds however
// many callers (the worker, a dozen CLI calls) draw on it at once.
type Budget struct {
	db     *DB
	fp     string
	limit  int
	window time.Duration
	sleep  func(context.Context, time.Duration) error
}

// Budget returns the shared budget of the credential with fingerprint fp.
func (db *DB) Budget(fp string, limit int, window time.Duration) *Budget {
	return &Budget{db: db, fp: fp, limit: limit, window: window, sleep: sleepCtx}
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

// Wait blocks until one request may be sent, and records it as sent.
func (b *Budget) Wait(ctx context.Context) error {
	for {
		wait, err := b.take(ctx)
		if err != nil {
			return err
		}
		if wait <= 0 {
			return nil
		}
		// Re-check at least every second: a lockout may be lifted or the
		// window may drain sooner than computed when others give up.
		if err := b.sleep(ctx, min(wait, time.Second)); err != nil {
			return err
		}
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
	// Simulate the window: each request takes the slot of the send a
	// limit earlier, which frees a window after it was used.
	slots := make([]time.Time, 0, b.limit)
	slots = append(slots, sent...)
	last := start
	for i := 0; i < n; i++ {
		t := start
		if len(slots) >= b.limit {
			oldest := slots[len(slots)-b.limit]
			if free := oldest.Add(b.window); free.After(t) {
				t = free
			}
		}
		slots = append(slots, t)
		last = t
	}
	return last.Sub(now), nil
}

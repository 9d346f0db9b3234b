package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// The outbox keeps, per destination and target, what we want Cloudflare to
// hold (want: some jail holds a ban on it) and what Cloudflare is known to
// hold (have). Delivery is the work of making have equal want, so a ban
// followed by an unban before anything was sent coalesces into nothing, and
// several jails holding one target share one remote rule.
//
// have is exact only while no write is out: a write that went out and
// whose outcome was never recorded (the process died, the request was
// cut short, or the answer was an error that Cloudflare may have acted
// on all the same) leaves it unknown, which the entry marks as sent. A
// ban or unban of such an entry does not coalesce with it: it turns into
// the operation that is right whatever Cloudflare holds, a create that
// adopts a rule already there, or a delete that looks the rule up first.
//
// A destination is an opaque spec (the delivery layer's JSON) with a unique
// key; a target is the normalised value Cloudflare stores (an address or a
// CIDR). A hold is one jail's ban of one address, which maps onto a target
// (several IPv6 addresses of one /64 map onto one target when aggregating).

// Dest is a delivery destination: one scope at Cloudflare with one
// credential, mode and notes template.
type Dest struct {
	ID   int64
	Key  string
	Spec []byte
}

// Hold is one jail's ban of one address at one destination.
type Hold struct {
	Dest   int64
	Target string
	Jail   string
	IP     string
	// Cover, when set, is a range that may already be wanted in place of
	// Target (an aggregate made when the destination was full); the hold
	// then joins it.
	Cover string
}

// Entry is the outbox state of one target at one destination.
type Entry struct {
	Dest      int64
	Target    string
	Want      bool   // some hold exists
	Have      bool   // Cloudflare holds it, as far as we know
	RemoteID  string // rule or list item id, when known
	Foreign   bool   // the rule at Cloudflare is not ours (its note differs): never delete it
	Jail      string // the jail of the hold that made it wanted, for notes and comments
	Changed   time.Time
	Attempts  int
	LastError string
	NextAt    time.Time
	Claim     string
	Delivered time.Time
	// Sent marks a write (a create or a delete) that went out and whose
	// outcome is not recorded: Have may be wrong.
	Sent bool
}

// Pending reports whether the entry needs delivery.
func (e Entry) Pending() bool { return e.Want != e.Have }

// Destination returns the id of the destination with key, creating it
// with spec if it does not exist yet, and updating its spec if it changed.
func (db *DB) Destination(ctx context.Context, key string, spec []byte) (int64, error) {
	var id int64
	var old []byte
	err := db.sql.QueryRowContext(ctx, "SELECT id, spec FROM cf_dest WHERE key = ?", key).Scan(&id, &old)
	if err == nil && string(old) == string(spec) {
		return id, nil
	}
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("store: destination: %w", err)
	}
	err = db.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "INSERT INTO cf_dest (key, spec, created) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET spec = excluded.spec",
			key, spec, ms(db.now())); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, "SELECT id FROM cf_dest WHERE key = ?", key).Scan(&id)
	})
	if err != nil {
		return 0, fmt.Errorf("store: destination: %w", err)
	}
	return id, nil
}

// DestSpec returns the current spec of destination id.
func (db *DB) DestSpec(ctx context.Context, id int64) ([]byte, error) {
	var spec []byte
	err := db.sql.QueryRowContext(ctx, "SELECT spec FROM cf_dest WHERE id = ?", id).Scan(&spec)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: destination %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: destination %d: %w", id, err)
	}
	return spec, nil
}

// Destinations lists every destination.
func (db *DB) Destinations(ctx context.Context) ([]Dest, error) {
	rows, err := db.sql.QueryContext(ctx, "SELECT id, key, spec FROM cf_dest ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("store: destinations: %w", err)
	}
	defer rows.Close()
	var out []Dest
	for rows.Next() {
		var d Dest
		if err := rows.Scan(&d.ID, &d.Key, &d.Spec); err != nil {
			return nil, fmt.Errorf("store: destinations: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// PutSecret stores a credential's secret material under its fingerprint, so
// that a worker can deliver operations enqueued by callers that were handed
// the credential. It writes only when the value changed.
func (db *DB) PutSecret(ctx context.Context, fp string, secret []byte) error {
	var old []byte
	err := db.sql.QueryRowContext(ctx, "SELECT secret FROM cf_secret WHERE fp = ?", fp).Scan(&old)
	if err == nil && string(old) == string(secret) {
		return nil
	}
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("store: secret: %w", err)
	}
	_, err = db.sql.ExecContext(ctx,
		"INSERT INTO cf_secret (fp, secret, updated) VALUES (?, ?, ?) ON CONFLICT(fp) DO UPDATE SET secret = excluded.secret, updated = excluded.updated",
		fp, secret, ms(db.now()))
	if err != nil {
		return fmt.Errorf("store: secret: %w", err)
	}
	return nil
}

// ErrNotFound is returned when a looked-up record does not exist.
var ErrNotFound = errors.New("not found")

// Secret returns the secret stored under fp, or an error wrapping ErrNotFound.
func (db *DB) Secret(ctx context.Context, fp string) ([]byte, error) {
	var s []byte
	err := db.sql.QueryRowContext(ctx, "SELECT secret FROM cf_secret WHERE fp = ?", fp).Scan(&s)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: secret %s: %w", fp, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: secret %s: %w", fp, err)
	}
	return s, nil
}

// Ban records holds and marks their targets wanted, all in one transaction.
// It reports how many targets became pending (wanted but not held remotely).
func (db *DB) Ban(ctx context.Context, holds ...Hold) (pending int, err error) {
	now := ms(db.now())
	err = db.tx(ctx, func(tx *sql.Tx) error {
		pending = 0
		for _, h := range holds {
			// The same jail banning the same address again keeps its hold,
			// whatever target it maps to now.
			var existing string
			err := tx.QueryRowContext(ctx, "SELECT target FROM cf_hold WHERE dest = ? AND ip = ? AND jail = ?", h.Dest, h.IP, h.Jail).Scan(&existing)
			switch {
			case err == nil:
				h.Target = existing
			case !errors.Is(err, sql.ErrNoRows):
				return err
			case h.Cover != "":
				var n int
				if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM cf_entry WHERE dest = ? AND target = ? AND want = 1", h.Dest, h.Cover).Scan(&n); err != nil {
					return err
				}
				if n > 0 {
					h.Target = h.Cover
				}
			}
			if _, err := tx.ExecContext(ctx,
				"INSERT INTO cf_hold (dest, target, jail, ip, since) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
				h.Dest, h.Target, h.Jail, h.IP, now); err != nil {
				return err
			}
			// A target that was idle (want == have) and becomes pending starts
			// afresh; one that was already pending keeps its backoff.
			var have int
			err = tx.QueryRowContext(ctx, `
INSERT INTO cf_entry (dest, target, want, have, jail, changed) VALUES (?, ?, 1, 0, ?, ?)
ON CONFLICT(dest, target) DO UPDATE SET
	want = 1,
	-- A write whose outcome is unknown: create again, which adopts the
	-- rule if it is still there.
	have = CASE WHEN cf_entry.want = 0 AND cf_entry.sent = 1 THEN 0 ELSE cf_entry.have END,
	remote_id = CASE WHEN cf_entry.want = 0 AND cf_entry.sent = 1 THEN '' ELSE cf_entry.remote_id END,
	foreign_rule = CASE WHEN cf_entry.want = 0 AND cf_entry.sent = 1 THEN 0 ELSE cf_entry.foreign_rule END,
	jail = CASE WHEN cf_entry.want = 0 THEN excluded.jail ELSE cf_entry.jail END,
	changed = CASE WHEN cf_entry.want = 0 THEN excluded.changed ELSE cf_entry.changed END,
	attempts = CASE WHEN cf_entry.want = cf_entry.have THEN 0 ELSE cf_entry.attempts END,
	next_at = CASE WHEN cf_entry.want = cf_entry.have THEN 0 ELSE cf_entry.next_at END,
	last_error = CASE WHEN cf_entry.want = cf_entry.have THEN '' ELSE cf_entry.last_error END
RETURNING have`, h.Dest, h.Target, h.Jail, now).Scan(&have)
			if err != nil {
				return err
			}
			if have == 0 {
				pending++
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: ban: %w", err)
	}
	return pending, nil
}

// Unban removes holds. A target whose last hold goes is no longer wanted.
// It reports how many targets became pending removal.
//
// Removing a hold we never recorded is how fail2ban unbans what its shell
// action banned before edgeban was installed: unless another jail holds the
// target, the entry is marked as possibly held remotely, without an id, so
// that delivery looks the rule up by address and note and deletes it if it
// is ours. If another jail still bans the address by the daemon's record
// (jail_ban), the rule may be that jail's too, shared under one note: a ban
// imported from fail2ban that the jail has not restored at its actions yet.
// The look-up then waits until that ban ends; if the jail takes the target
// meanwhile, the rule is its, and goes with its unban.
func (db *DB) Unban(ctx context.Context, holds ...Hold) (pending int, err error) {
	now := ms(db.now())
	err = db.tx(ctx, func(tx *sql.Tx) error {
		pending = 0
		for _, h := range holds {
			// The hold is found by address: it may belong to an aggregate.
			held := true
			err := tx.QueryRowContext(ctx, "DELETE FROM cf_hold WHERE dest = ? AND ip = ? AND jail = ? RETURNING target",
				h.Dest, h.IP, h.Jail).Scan(&h.Target)
			if errors.Is(err, sql.ErrNoRows) {
				held = false
			} else if err != nil {
				return err
			}
			var left int
			if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM cf_hold WHERE dest = ? AND target = ?",
				h.Dest, h.Target).Scan(&left); err != nil {
				return err
			}
			if left > 0 {
				continue
			}
			if !held {
				// Unknown to us: maybe a rule made by the shell action.
				var due int64 // when the look-up may go: now, or when another jail's ban ends
				if err := tx.QueryRowContext(ctx, `
SELECT COALESCE(MAX(CASE WHEN b.bantime < 0 THEN ? ELSE b.at + b.bantime END), 0)
FROM jail_record r JOIN jail_ban b ON b.jail = r.jail AND b.ip = r.ip -- every ban has its record, keyed by address
WHERE r.ip = ? AND r.jail != ? AND (b.bantime < 0 OR b.at + b.bantime > ?)`, ms(neverDue), h.IP, h.Jail, now).Scan(&due); err != nil {
					return err
				}
				res, err := tx.ExecContext(ctx, `
INSERT INTO cf_entry (dest, target, want, have, jail, changed, next_at) VALUES (?, ?, 0, 1, ?, ?, ?)
ON CONFLICT(dest, target) DO UPDATE SET have = 1, remote_id = '', foreign_rule = 0, changed = excluded.changed,
	attempts = 0, next_at = excluded.next_at, last_error = ''
WHERE cf_entry.want = 0 AND cf_entry.have = 0`, h.Dest, h.Target, h.Jail, now, due)
				if err != nil {
					return err
				}
				if n, _ := res.RowsAffected(); n > 0 {
					pending++
				}
				continue
			}
			// A create whose outcome is unknown may have made the rule: it
			// is deleted if it is there, looked up by address and note.
			var have int
			err = tx.QueryRowContext(ctx, `
UPDATE cf_entry SET
	want = 0,
	have = CASE WHEN have = 0 AND sent = 1 THEN 1 ELSE have END,
	remote_id = CASE WHEN have = 0 AND sent = 1 THEN '' ELSE remote_id END,
	foreign_rule = CASE WHEN have = 0 AND sent = 1 THEN 0 ELSE foreign_rule END,
	changed = ?,
	attempts = CASE WHEN want = have THEN 0 ELSE attempts END,
	next_at = CASE WHEN want = have THEN 0 ELSE next_at END,
	last_error = CASE WHEN want = have THEN '' ELSE last_error END
WHERE dest = ? AND target = ? AND want = 1
RETURNING have`, now, h.Dest, h.Target).Scan(&have)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err != nil {
				return err
			}
			if have == 1 {
				pending++
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: unban: %w", err)
	}
	return pending, nil
}

// neverDue is the retry time of an entry that waits for a permanent ban.
var neverDue = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// ClaimFilter selects the entries a Claim may take.
type ClaimFilter struct {
	Dests   []int64  // only these destinations; nil means any
	Targets []string // only these targets; nil means any
	Limit   int      // at most this many; 0 means 1000
}

const entryCols = "dest, target, want, have, remote_id, foreign_rule, jail, changed, attempts, last_error, next_at, claim, delivered, sent"

func scanEntry(sc interface{ Scan(...any) error }) (Entry, error) {
	var e Entry
	var want, have, foreign, sent int
	var changed, nextAt, delivered int64
	err := sc.Scan(&e.Dest, &e.Target, &want, &have, &e.RemoteID, &foreign, &e.Jail, &changed, &e.Attempts, &e.LastError, &nextAt, &e.Claim, &delivered, &sent)
	e.Want, e.Have, e.Foreign, e.Sent = want == 1, have == 1, foreign == 1, sent == 1
	e.Changed, e.NextAt, e.Delivered = fromMS(changed), fromMS(nextAt), fromMS(delivered)
	return e, err
}

// Claim takes pending entries that are due and not claimed by anyone else
// (or whose claim lapsed), marking them claimed by owner for lease. Oldest
// changes come first. Only the owner may complete or fail a claimed entry.
func (db *DB) Claim(ctx context.Context, owner string, f ClaimFilter, lease time.Duration) ([]Entry, error) {
	if owner == "" {
		return nil, errors.New("store: claim: empty owner")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 1000
	}
	now := db.now()
	extra, fargs, empty := f.where()
	if empty {
		return nil, nil
	}
	args := append([]any{owner, ms(now.Add(lease)), ms(now), ms(now)}, fargs...)
	args = append(args, limit)
	q := `
UPDATE cf_entry SET claim = ?, claim_until = ?
WHERE (dest, target) IN (
	SELECT dest, target FROM cf_entry
	WHERE want != have AND next_at <= ? AND (claim = '' OR claim_until < ?)` + extra + `
	ORDER BY changed LIMIT ?)
RETURNING ` + entryCols
	var out []Entry
	err := db.tx(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			e, err := scanEntry(rows)
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("store: claim: %w", err)
	}
	return out, nil
}

// where renders the filter as SQL conditions (each preceded by AND) and
// their arguments; empty is true when the filter selects nothing.
func (f ClaimFilter) where() (sql string, args []any, empty bool) {
	var where []string
	if f.Dests != nil {
		if len(f.Dests) == 0 {
			return "", nil, true
		}
		where = append(where, "dest IN ("+placeholders(len(f.Dests))+")")
		for _, d := range f.Dests {
			args = append(args, d)
		}
	}
	if f.Targets != nil {
		if len(f.Targets) == 0 {
			return "", nil, true
		}
		where = append(where, "target IN ("+placeholders(len(f.Targets))+")")
		for _, t := range f.Targets {
			args = append(args, t)
		}
	}
	if len(where) == 0 {
		return "", nil, false
	}
	return " AND " + strings.Join(where, " AND "), args, false
}

// NextDue returns when the earliest pending entry that f selects may be
// tried again, counting entries claimed by others as not due before their
// claim lapses. ok is false when f selects nothing pending.
func (db *DB) NextDue(ctx context.Context, f ClaimFilter) (next time.Time, ok bool, err error) {
	extra, args, empty := f.where()
	if empty {
		return time.Time{}, false, nil
	}
	var v sql.NullInt64
	err = db.sql.QueryRowContext(ctx, `
SELECT min(max(next_at, CASE WHEN claim = '' THEN 0 ELSE claim_until END)) FROM cf_entry
WHERE want != have`+extra, args...).Scan(&v)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("store: next due: %w", err)
	}
	if !v.Valid {
		return time.Time{}, false, nil
	}
	return fromMS(v.Int64), true, nil
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

// Result is the outcome of delivering one claimed entry.
type Result struct {
	Dest     int64
	Target   string
	Have     bool   // what Cloudflare holds now
	RemoteID string // the rule or item id, if known
	Foreign  bool   // the remote rule is not ours
	Op       string // "ban" or "unban", for the history
	Outcome  string // "created", "adopted", "deleted", "gone", "foreign", ...
	Detail   string
}

// Complete records the outcomes of claimed entries and releases them, in
// one transaction. An entry whose claim owner no longer holds is left as it
// is (someone else took over after the lease lapsed); Complete reports how
// many such results it dropped.
func (db *DB) Complete(ctx context.Context, owner string, results ...Result) (lost int, err error) {
	now := ms(db.now())
	err = db.tx(ctx, func(tx *sql.Tx) error {
		lost = 0
		for _, r := range results {
			res, err := tx.ExecContext(ctx, `
UPDATE cf_entry SET have = ?, remote_id = ?, foreign_rule = ?, attempts = 0, last_error = '', next_at = 0,
	claim = '', claim_until = 0, delivered = ?, sent = 0
WHERE dest = ? AND target = ? AND claim = ?`,
				b2i(r.Have), r.RemoteID, b2i(r.Foreign), now, r.Dest, r.Target, owner)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				lost++
				continue
			}
			if _, err := tx.ExecContext(ctx, "INSERT INTO cf_log (at, dest, target, op, outcome, detail) VALUES (?, ?, ?, ?, ?, ?)",
				now, r.Dest, r.Target, r.Op, r.Outcome, r.Detail); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: complete: %w", err)
	}
	return lost, nil
}

// MarkSent records that a write for owner's claimed entries of dest is
// about to go out: until Complete records its outcome, the entries' have
// is unknown, and a ban or unban meanwhile is not coalesced with them.
// It must come before the request, and the request must not go if it
// fails. Sent stays through Fail and Release: an error or an interrupted
// request may have reached Cloudflare all the same.
func (db *DB) MarkSent(ctx context.Context, owner string, dest int64, targets ...string) error {
	if len(targets) == 0 {
		return nil
	}
	err := db.tx(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, "UPDATE cf_entry SET sent = 1 WHERE dest = ? AND target = ? AND claim = ? AND sent = 0")
		if err != nil {
			return err
		}
		defer st.Close()
		for _, t := range targets {
			if _, err := st.ExecContext(ctx, dest, t, owner); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: mark sent: %w", err)
	}
	return nil
}

// Fail records a failed delivery attempt of a claimed entry, releases the
// claim and schedules the next attempt at retryAt. The operation stays in
// the outbox: nothing is ever dropped because delivery failed.
func (db *DB) Fail(ctx context.Context, owner string, dest int64, target, msg string, retryAt time.Time) error {
	_, err := db.sql.ExecContext(ctx, `
UPDATE cf_entry SET attempts = attempts + 1, last_error = ?, next_at = ?, claim = '', claim_until = 0
WHERE dest = ? AND target = ? AND claim = ?`, truncate(msg, 500), ms(retryAt), dest, target, owner)
	if err != nil {
		return fmt.Errorf("store: fail: %w", err)
	}
	return nil
}

// Release gives back every claim held by owner, unchanged, so that others
// may deliver those entries at once.
func (db *DB) Release(ctx context.Context, owner string) error {
	_, err := db.sql.ExecContext(ctx, "UPDATE cf_entry SET claim = '', claim_until = 0 WHERE claim = ?", owner)
	if err != nil {
		return fmt.Errorf("store: release: %w", err)
	}
	return nil
}

// ReleasePrefix gives back every claim and lease whose owner starts with
// prefix. A worker that holds the single-worker lock uses it at start to
// take back what a predecessor that was killed still held. It reports how
// many entries it released.
func (db *DB) ReleasePrefix(ctx context.Context, prefix string) (int64, error) {
	var n int64
	err := db.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE cf_entry SET claim = '', claim_until = 0 WHERE claim != '' AND substr(claim, 1, ?) = ?", len(prefix), prefix)
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		_, err = tx.ExecContext(ctx, "DELETE FROM lease WHERE substr(owner, 1, ?) = ?", len(prefix), prefix)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: release: %w", err)
	}
	return n, nil
}

// SetRemoteIDs records the remote ids of targets that Cloudflare holds,
// learnt from a listing, where we had none.
func (db *DB) SetRemoteIDs(ctx context.Context, dest int64, ids map[string]string) error {
	if len(ids) == 0 {
		return nil
	}
	return db.tx(ctx, func(tx *sql.Tx) error {
		for target, id := range ids {
			if _, err := tx.ExecContext(ctx, "UPDATE cf_entry SET remote_id = ? WHERE dest = ? AND target = ? AND have = 1 AND remote_id = ''",
				id, dest, target); err != nil {
				return fmt.Errorf("store: remote ids: %w", err)
			}
		}
		return nil
	})
}

// Entries calls fn for every entry of dest (all destinations when dest is 0).
func (db *DB) Entries(ctx context.Context, dest int64, fn func(Entry) error) error {
	q := "SELECT " + entryCols + " FROM cf_entry"
	var args []any
	if dest != 0 {
		q += " WHERE dest = ?"
		args = append(args, dest)
	}
	q += " ORDER BY dest, target"
	rows, err := db.sql.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("store: entries: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return fmt.Errorf("store: entries: %w", err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Entry returns one entry, or an error wrapping ErrNotFound.
func (db *DB) Entry(ctx context.Context, dest int64, target string) (Entry, error) {
	e, err := scanEntry(db.sql.QueryRowContext(ctx, "SELECT "+entryCols+" FROM cf_entry WHERE dest = ? AND target = ?", dest, target))
	if errors.Is(err, sql.ErrNoRows) {
		return Entry{}, fmt.Errorf("store: entry %s: %w", target, ErrNotFound)
	}
	if err != nil {
		return Entry{}, fmt.Errorf("store: entry %s: %w", target, err)
	}
	return e, nil
}

// Reconcile records what a comparison with Cloudflare found for an entry
// nobody is delivering: have is what Cloudflare holds, remoteID its id. It
// returns false when the entry was claimed meanwhile and was left alone.
func (db *DB) Reconcile(ctx context.Context, dest int64, target string, have bool, remoteID, detail string) (bool, error) {
	var ok bool
	err := db.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `
UPDATE cf_entry SET have = ?, remote_id = ?, foreign_rule = 0, next_at = 0, attempts = 0, sent = 0
WHERE dest = ? AND target = ? AND (claim = '' OR claim_until < ?)`, b2i(have), remoteID, dest, target, ms(db.now()))
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		ok = n == 1
		if !ok {
			return nil
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO cf_log (at, dest, target, op, outcome, detail) VALUES (?, ?, ?, 'sync', 'drift', ?)",
			ms(db.now()), dest, target, detail)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("store: reconcile: %w", err)
	}
	return ok, nil
}

// Log records an event in the delivery history without touching an entry
// (a capacity policy's drop, a sync's deletion of an orphan).
func (db *DB) Log(ctx context.Context, dest int64, target, op, outcome, detail string) error {
	_, err := db.sql.ExecContext(ctx, "INSERT INTO cf_log (at, dest, target, op, outcome, detail) VALUES (?, ?, ?, ?, ?, ?)",
		ms(db.now()), dest, target, op, outcome, detail)
	if err != nil {
		return fmt.Errorf("store: log: %w", err)
	}
	return nil
}

// DestStatus summarises one destination's outbox.
type DestStatus struct {
	Dest          Dest
	Wanted        int // targets some jail holds
	Live          int // targets Cloudflare holds
	PendingBan    int
	PendingUnban  int
	Failing       int // pending entries whose last attempt failed
	Claimed       int // pending entries someone is delivering now
	Held          int // pending entries a capacity policy keeps back
	OldestPending time.Time
}

// Status summarises the outbox per destination.
func (db *DB) Status(ctx context.Context) ([]DestStatus, error) {
	dests, err := db.Destinations(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]DestStatus, 0, len(dests))
	for _, d := range dests {
		s := DestStatus{Dest: d}
		var oldest sql.NullInt64
		err := db.sql.QueryRowContext(ctx, `
SELECT coalesce(sum(want), 0), coalesce(sum(have), 0),
	coalesce(sum(want = 1 AND have = 0), 0), coalesce(sum(want = 0 AND have = 1), 0),
	coalesce(sum(want != have AND attempts > 0), 0),
	coalesce(sum(want != have AND claim != '' AND claim_until >= ?), 0),
	coalesce(sum(want = 1 AND have = 0 AND (last_error LIKE 'held:%' OR last_error LIKE 'evicted:%')), 0),
	min(CASE WHEN want != have THEN changed END)
FROM cf_entry WHERE dest = ?`, ms(db.now()), d.ID).Scan(&s.Wanted, &s.Live, &s.PendingBan, &s.PendingUnban, &s.Failing, &s.Claimed, &s.Held, &oldest)
		if err != nil {
			return nil, fmt.Errorf("store: status: %w", err)
		}
		if oldest.Valid {
			s.OldestPending = fromMS(oldest.Int64)
		}
		out = append(out, s)
	}
	return out, nil
}

// Failing returns up to limit pending entries whose last attempt failed,
// most attempts first.
func (db *DB) Failing(ctx context.Context, limit int) ([]Entry, error) {
	rows, err := db.sql.QueryContext(ctx, "SELECT "+entryCols+" FROM cf_entry WHERE want != have AND attempts > 0 ORDER BY attempts DESC, changed LIMIT ?", limit)
	if err != nil {
		return nil, fmt.Errorf("store: failing: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, fmt.Errorf("store: failing: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// Stuck counts the pending entries changed before since whose last
// attempt failed, leaving out those a capacity policy holds back or
// evicted (a policy's doing, not a failure), and returns the oldest of
// them: a ban or unban that has been failing since then.
func (db *DB) Stuck(ctx context.Context, since time.Time) (n int, oldest Entry, err error) {
	const where = ` FROM cf_entry WHERE want != have AND attempts > 0 AND changed < ?
	AND last_error NOT LIKE 'held:%' AND last_error NOT LIKE 'evicted:%'`
	if err := db.sql.QueryRowContext(ctx, "SELECT count(*)"+where, ms(since)).Scan(&n); err != nil {
		return 0, Entry{}, fmt.Errorf("store: stuck: %w", err)
	}
	if n == 0 {
		return 0, Entry{}, nil
	}
	oldest, err = scanEntry(db.sql.QueryRowContext(ctx, "SELECT "+entryCols+where+" ORDER BY changed LIMIT 1", ms(since)))
	if err != nil {
		return 0, Entry{}, fmt.Errorf("store: stuck: %w", err)
	}
	return n, oldest, nil
}

// Outcome counts the delivery history by operation and outcome.
type Outcome struct {
	Op, Outcome string
	Count       int
}

// History counts delivered operations by kind and outcome since the given time.
func (db *DB) History(ctx context.Context, since time.Time) ([]Outcome, error) {
	rows, err := db.sql.QueryContext(ctx, "SELECT op, outcome, count(*) FROM cf_log WHERE at >= ? GROUP BY op, outcome ORDER BY op, outcome", ms(since))
	if err != nil {
		return nil, fmt.Errorf("store: history: %w", err)
	}
	defer rows.Close()
	var out []Outcome
	for rows.Next() {
		var o Outcome
		if err := rows.Scan(&o.Op, &o.Outcome, &o.Count); err != nil {
			return nil, fmt.Errorf("store: history: %w", err)
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// PendingDest summarises the claimable pending entries of one destination.
type PendingDest struct {
	Dest          int64
	Count         int
	OldestChanged time.Time // the oldest change still waiting
	NextDue       time.Time // the earliest time one of them may be tried
}

// Pending summarises, per destination, the pending entries that nobody has
// claimed.
func (db *DB) Pending(ctx context.Context) ([]PendingDest, error) {
	now := ms(db.now())
	rows, err := db.sql.QueryContext(ctx, `
SELECT dest, count(*), min(changed), min(next_at) FROM cf_entry
WHERE want != have AND (claim = '' OR claim_until < ?) GROUP BY dest`, now)
	if err != nil {
		return nil, fmt.Errorf("store: pending: %w", err)
	}
	defer rows.Close()
	var out []PendingDest
	for rows.Next() {
		var p PendingDest
		var oldest, next int64
		if err := rows.Scan(&p.Dest, &p.Count, &oldest, &next); err != nil {
			return nil, fmt.Errorf("store: pending: %w", err)
		}
		p.OldestChanged, p.NextDue = fromMS(oldest), fromMS(next)
		out = append(out, p)
	}
	return out, rows.Err()
}

// Park takes held targets out of delivery until the given time without a
// claim: Cloudflare no longer holds them (have becomes false) and they are
// not sent again before until, with msg as the reason shown in status. A
// capacity policy that evicts the oldest bans uses it. Targets being
// delivered by someone are left alone; Park reports how many it parked.
func (db *DB) Park(ctx context.Context, dest int64, targets []string, msg string, until time.Time) (int, error) {
	n := 0
	err := db.tx(ctx, func(tx *sql.Tx) error {
		n = 0
		for _, t := range targets {
			res, err := tx.ExecContext(ctx, `
UPDATE cf_entry SET have = 0, remote_id = '', next_at = ?, last_error = ?, attempts = attempts + 1, sent = 0
WHERE dest = ? AND target = ? AND (claim = '' OR claim_until < ?)`, ms(until), truncate(msg, 500), dest, t, ms(db.now()))
			if err != nil {
				return err
			}
			c, _ := res.RowsAffected()
			n += int(c)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: park: %w", err)
	}
	return n, nil
}

// Oldest returns up to limit entries of the given destinations that
// Cloudflare holds and some jail still wants, oldest first: the candidates
// for eviction when a destination is full.
func (db *DB) Oldest(ctx context.Context, dests []int64, limit int) ([]Entry, error) {
	if len(dests) == 0 || limit <= 0 {
		return nil, nil
	}
	args := make([]any, 0, len(dests)+1)
	for _, d := range dests {
		args = append(args, d)
	}
	args = append(args, limit)
	rows, err := db.sql.QueryContext(ctx, "SELECT "+entryCols+" FROM cf_entry WHERE dest IN ("+placeholders(len(dests))+
		") AND want = 1 AND have = 1 AND foreign_rule = 0 AND claim = '' ORDER BY changed LIMIT ?", args...)
	if err != nil {
		return nil, fmt.Errorf("store: oldest: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, fmt.Errorf("store: oldest: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// Live counts the targets Cloudflare holds for the given destinations and
// will go on holding: those pending removal are about to free their room.
func (db *DB) Live(ctx context.Context, dests []int64) (int, error) {
	if len(dests) == 0 {
		return 0, nil
	}
	args := make([]any, 0, len(dests))
	for _, d := range dests {
		args = append(args, d)
	}
	var n int
	if err := db.sql.QueryRowContext(ctx, "SELECT count(*) FROM cf_entry WHERE have = 1 AND want = 1 AND dest IN ("+placeholders(len(dests))+")", args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: live: %w", err)
	}
	return n, nil
}

// Aggregate replaces member targets of dest with the range prefix that
// covers them: their holds move to prefix, the members are no longer
// wanted (delivery removes those Cloudflare holds), and prefix is wanted.
// It is how the aggregate capacity policy frees room. It returns how many
// members it moved.
func (db *DB) Aggregate(ctx context.Context, dest int64, prefix string, members []string, detail string) (int, error) {
	now := ms(db.now())
	moved := 0
	err := db.tx(ctx, func(tx *sql.Tx) error {
		moved = 0
		jail := ""
		for _, m := range members {
			if m == prefix {
				continue
			}
			if jail == "" {
				tx.QueryRowContext(ctx, "SELECT jail FROM cf_hold WHERE dest = ? AND target = ? LIMIT 1", dest, m).Scan(&jail)
			}
			res, err := tx.ExecContext(ctx, "UPDATE cf_hold SET target = ? WHERE dest = ? AND target = ?", prefix, dest, m)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				continue
			}
			if _, err := tx.ExecContext(ctx, `
UPDATE cf_entry SET want = 0, changed = ?,
	have = CASE WHEN have = 0 AND sent = 1 THEN 1 ELSE have END,
	remote_id = CASE WHEN have = 0 AND sent = 1 THEN '' ELSE remote_id END,
	attempts = CASE WHEN have = 0 THEN 0 ELSE attempts END,
	next_at = CASE WHEN have = 0 THEN 0 ELSE next_at END,
	last_error = CASE WHEN have = 0 THEN '' ELSE last_error END
WHERE dest = ? AND target = ?`, now, dest, m); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, "INSERT INTO cf_log (at, dest, target, op, outcome, detail) VALUES (?, ?, ?, 'ban', 'aggregated', ?)",
				now, dest, m, detail); err != nil {
				return err
			}
			moved++
		}
		if moved == 0 {
			return nil
		}
		_, err := tx.ExecContext(ctx, `
INSERT INTO cf_entry (dest, target, want, have, jail, changed) VALUES (?, ?, 1, 0, ?, ?)
ON CONFLICT(dest, target) DO UPDATE SET want = 1, jail = excluded.jail, changed = excluded.changed`, dest, prefix, jail, now)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: aggregate %s: %w", prefix, err)
	}
	return moved, nil
}

// Unclaim gives back owner's claims of the given targets, unchanged.
func (db *DB) Unclaim(ctx context.Context, owner string, dest int64, targets []string) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		for _, t := range targets {
			if _, err := tx.ExecContext(ctx, "UPDATE cf_entry SET claim = '', claim_until = 0 WHERE dest = ? AND target = ? AND claim = ?", dest, t, owner); err != nil {
				return fmt.Errorf("store: unclaim: %w", err)
			}
		}
		return nil
	})
}

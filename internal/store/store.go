// Package store is edgeban's durable state: one SQLite database (through the
// pure-Go modernc.org/sqlite driver) that several processes may open at once.
//
// It holds the daemon's jails (active bans, the record of past bans, log
// positions), the Cloudflare outbox (what we want banned at each destination, what
// Cloudflare is known to hold, and the claims of whoever is delivering the
// difference), the request budget shared by every caller of one credential,
// and the delivery history. The schema is versioned with PRAGMA user_version
// and migrated on Open.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// DB is an open edgeban database. It is safe for concurrent use by many
// goroutines, and other processes may open the same file at the same time.
type DB struct {
	sql  *sql.DB
	path string
	now  func() time.Time
}

// Option changes how Open sets up a DB.
type Option func(*DB)

// WithClock makes the DB read the time from now instead of time.Now. Tests use it.
func WithClock(now func() time.Time) Option { return func(db *DB) { db.now = now } }

// Open opens (creating if needed) the database at path and migrates its
// schema. The file and its directory are created private to the owner (0600
// and 0700): the database holds the Cloudflare credentials that callers hand
// to the outbox.
func Open(ctx context.Context, path string, opts ...Option) (*DB, error) {
	if path == "" {
		return nil, errors.New("store: empty database path")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	// Create the file ourselves so that SQLite never creates it with the umask's mode.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	f.Close()
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("store: %s is accessible by group or others (mode %v); it holds credentials: chmod 600 %s", path, fi.Mode().Perm(), path)
	}

	q := url.Values{}
	q.Add("_pragma", "busy_timeout(15000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
	sdb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	// SQLite serialises writers; a small pool keeps readers concurrent
	// without piling up connections that all wait on the write lock.
	sdb.SetMaxOpenConns(4)
	sdb.SetMaxIdleConns(4)
	db := &DB{sql: sdb, path: path, now: time.Now}
	for _, o := range opts {
		o(db)
	}
	if err := db.migrate(ctx); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("store: %s: %w", path, err)
	}
	return db, nil
}

// Path returns the file the DB was opened from.
func (db *DB) Path() string { return db.path }

// Close closes the database.
func (db *DB) Close() error { return db.sql.Close() }

// migrations are applied in order; user_version records how many have run.
var migrations = []string{
	// 1: the Cloudflare outbox.
	`
CREATE TABLE cf_dest (
	id      INTEGER PRIMARY KEY,
	key     TEXT NOT NULL UNIQUE,
	spec    BLOB NOT NULL,
	created INTEGER NOT NULL
);
CREATE TABLE cf_secret (
	fp      TEXT PRIMARY KEY,
	secret  BLOB NOT NULL,
	updated INTEGER NOT NULL
);
CREATE TABLE cf_hold (
	dest    INTEGER NOT NULL REFERENCES cf_dest(id),
	target  TEXT NOT NULL,
	jail    TEXT NOT NULL,
	ip      TEXT NOT NULL,
	since   INTEGER NOT NULL,
	PRIMARY KEY (dest, target, jail, ip)
) WITHOUT ROWID;
CREATE TABLE cf_entry (
	dest        INTEGER NOT NULL REFERENCES cf_dest(id),
	target      TEXT NOT NULL,
	want        INTEGER NOT NULL,
	have        INTEGER NOT NULL DEFAULT 0,
	remote_id   TEXT NOT NULL DEFAULT '',
	foreign_rule INTEGER NOT NULL DEFAULT 0,
	jail        TEXT NOT NULL DEFAULT '',
	changed     INTEGER NOT NULL,
	attempts    INTEGER NOT NULL DEFAULT 0,
	last_error  TEXT NOT NULL DEFAULT '',
	next_at     INTEGER NOT NULL DEFAULT 0,
	claim       TEXT NOT NULL DEFAULT '',
	claim_until INTEGER NOT NULL DEFAULT 0,
	delivered   INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (dest, target)
) WITHOUT ROWID;
CREATE INDEX cf_entry_pending ON cf_entry (dest, next_at) WHERE want != have;
CREATE TABLE cf_log (
	id      INTEGER PRIMARY KEY,
	at      INTEGER NOT NULL,
	dest    INTEGER NOT NULL,
	target  TEXT NOT NULL,
	op      TEXT NOT NULL,
	outcome TEXT NOT NULL,
	detail  TEXT NOT NULL DEFAULT ''
);
CREATE TABLE rate_log (
	fp  TEXT NOT NULL,
	at  INTEGER NOT NULL
);
CREATE INDEX rate_log_fp_at ON rate_log (fp, at);
CREATE TABLE rate_block (
	fp    TEXT PRIMARY KEY,
	until INTEGER NOT NULL
);
CREATE TABLE lease (
	name  TEXT PRIMARY KEY,
	owner TEXT NOT NULL,
	until INTEGER NOT NULL
);
CREATE TABLE kv (
	k TEXT PRIMARY KEY,
	v TEXT NOT NULL,
	updated INTEGER NOT NULL
);
`,
	// 2: the token bucket that spaces a credential's requests out.
	`
CREATE TABLE rate_bucket (
	fp     TEXT PRIMARY KEY,
	tokens REAL NOT NULL,
	at     INTEGER NOT NULL
);
`,
	// 3: holds are found by address, whatever target they map to (an
	// aggregated range holds the addresses it covers).
	`
CREATE INDEX cf_hold_ip ON cf_hold (dest, ip, jail);
`,
	// 4: the daemon's jails: active bans, the record of past bans that
	// bantime.increment reads, and where each log was read up to.
	`
CREATE TABLE jail_ban (
	jail     TEXT NOT NULL,
	ip       TEXT NOT NULL,
	at       INTEGER NOT NULL,
	bantime  INTEGER NOT NULL,
	bancount INTEGER NOT NULL,
	data     TEXT NOT NULL DEFAULT '{}',
	PRIMARY KEY (jail, ip)
) WITHOUT ROWID;
CREATE TABLE jail_record (
	ip       TEXT NOT NULL,
	jail     TEXT NOT NULL,
	at       INTEGER NOT NULL,
	bantime  INTEGER NOT NULL,
	bancount INTEGER NOT NULL,
	data     TEXT NOT NULL DEFAULT '{}',
	PRIMARY KEY (ip, jail)
) WITHOUT ROWID;
CREATE INDEX jail_record_at ON jail_record (at);
CREATE TABLE log_pos (
	jail  TEXT NOT NULL,
	path  TEXT NOT NULL,
	md5   TEXT NOT NULL,
	pos   INTEGER NOT NULL,
	PRIMARY KEY (jail, path)
) WITHOUT ROWID;
`,
}

func (db *DB) migrate(ctx context.Context) error {
	var v int
	if err := db.sql.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if v == len(migrations) {
		return nil
	}
	if v > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this edgeban knows (%d)", v, len(migrations))
	}
	return db.tx(ctx, func(tx *sql.Tx) error {
		// Re-read inside the write transaction: another process may have migrated meanwhile.
		if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
			return err
		}
		for i := v; i < len(migrations); i++ {
			if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
				return fmt.Errorf("migration %d: %w", i+1, err)
			}
		}
		_, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations)))
		return err
	})
}

// tx runs fn in a write transaction (BEGIN IMMEDIATE), committing if fn
// returns nil.
func (db *DB) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v)
}

// Get returns the value stored under key in the small key-value table that
// caches lookups (a zone's id by name, a list's id by name). ok is false when
// the key is absent.
func (db *DB) Get(ctx context.Context, key string) (value string, ok bool, err error) {
	err = db.sql.QueryRowContext(ctx, "SELECT v FROM kv WHERE k = ?", key).Scan(&value)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("store: get %q: %w", key, err)
	}
	return value, true, nil
}

// Set stores value under key.
func (db *DB) Set(ctx context.Context, key, value string) error {
	_, err := db.sql.ExecContext(ctx,
		"INSERT INTO kv (k, v, updated) VALUES (?, ?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v, updated = excluded.updated",
		key, value, ms(db.now()))
	if err != nil {
		return fmt.Errorf("store: set %q: %w", key, err)
	}
	return nil
}

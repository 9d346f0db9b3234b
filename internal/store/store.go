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
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite" // registers the "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib"
)

// DB is an open edgeban database. It is safe for concurrent use by many
// goroutines, and other processes may open the same file at the same time.
type DB struct {
	sql *sql.DB
	// jails writes the daemon's tables (jail_ban, jail_record, log_pos):
	// one connection, so that the jails' writes queue in Go rather than
	// in SQLite's busy handler, which sleeps a millisecond or more; with
	// synchronous=NORMAL and no automatic checkpoint, so that a commit
	// is a write to the WAL and never waits for the disk. The syncer puts
	// those commits on disk (see syncLoop). Opened by the first jail
	// write: the CLI's commands never open it.
	jails    *sql.DB
	jailsDSN string
	stmts    jailStmts
	path     string
	now      func() time.Time

	jailsMu  sync.Mutex    // guards jails being opened, and closed
	closed   bool          // Close was called
	dirty    chan struct{} // a jail write is not synced yet (capacity 1)
	quit     chan struct{} // closed by Close: the syncer stops
	syncDone chan struct{} // closed when the syncer has stopped
	commits  atomic.Int64  // jail commits since the last checkpoint
	syncMu   sync.Mutex    // guards syncErr
	syncErr  error         // the last sync's error, if it failed
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

	dsn := func(pragmas ...string) string {
		q := url.Values{}
		q.Add("_pragma", "busy_timeout(15000)")
		q.Add("_pragma", "journal_mode(WAL)")
		for _, p := range pragmas {
			q.Add("_pragma", p)
		}
		q.Add("_pragma", "foreign_keys(1)")
		q.Set("_txlock", "immediate")
		return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
	}
	sdb, err := sql.Open("sqlite", dsn("synchronous(FULL)"))
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	// SQLite serialises writers; a small pool keeps readers concurrent
	// without piling up connections that all wait on the write lock.
	sdb.SetMaxOpenConns(4)
	sdb.SetMaxIdleConns(4)
	db := &DB{sql: sdb, path: path, now: time.Now, jailsDSN: dsn("synchronous(NORMAL)", "wal_autocheckpoint(0)"),
		dirty: make(chan struct{}, 1), quit: make(chan struct{}), syncDone: make(chan struct{})}
	for _, o := range opts {
		o(db)
	}
	if err := db.migrateRetrying(ctx); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("store: %s: %w", path, err)
	}
	return db, nil
}

// Path returns the file the DB was opened from.
func (db *DB) Path() string { return db.path }

// Close syncs the jail writes to disk and closes the database.
func (db *DB) Close() error {
	db.jailsMu.Lock()
	defer db.jailsMu.Unlock()
	if db.closed {
		return nil
	}
	db.closed = true
	if db.jails == nil {
		return db.sql.Close()
	}
	close(db.quit)
	<-db.syncDone
	return errors.Join(db.Sync(), db.jails.Close(), db.sql.Close())
}

// jailDB returns the jail connection, opening it and starting the syncer
// the first time.
func (db *DB) jailDB(ctx context.Context) (*sql.DB, error) {
	db.jailsMu.Lock()
	defer db.jailsMu.Unlock()
	if db.closed {
		return nil, errors.New("store: closed")
	}
	if db.jails != nil {
		return db.jails, nil
	}
	jdb, err := sql.Open("sqlite", db.jailsDSN)
	if err != nil {
		return nil, err
	}
	jdb.SetMaxOpenConns(1)
	jdb.SetMaxIdleConns(1)
	db.jails = jdb
	if err := db.prepareJailStmts(ctx); err != nil {
		jdb.Close()
		db.jails = nil
		return nil, err
	}
	go db.syncLoop()
	return jdb, nil
}

// Jail writes and their durability.
//
// The daemon writes a ban to the store before its actions run, so that a
// ban an action made is never unknown to the store, which is what lifts
// it (see internal/jail). That write is on the path from a log line to
// the firewall, so it must not wait for the disk: an fsync costs from a
// tenth of a millisecond to several, and SQLite's automatic checkpoint,
// run by the commit that crosses its threshold, more. So the jail writes
// commit with synchronous=NORMAL on a connection of their own that never
// checkpoints: a commit is a write into the WAL file. From that moment it
// survives a crash of the process (the kernel holds the page and writes
// it out), and any connection reads it. The syncer then fsyncs the WAL,
// as synchronous=FULL would have done inside the commit, and so makes the
// commit survive a crash of the machine too, within an fsync's time of
// it; it also checkpoints the WAL into the database when it grows, off
// the write path. A machine crash within that window can lose the last
// bans: their firewall rules, kept in the kernel, go with it. Close and
// Sync flush what is left.

// checkpointEvery is how many jail commits the WAL takes before the
// syncer checkpoints it: about SQLite's own default of 1,000 pages.
const checkpointEvery = 250

// jailWrite runs fn in a write transaction on the jail connection, then
// wakes the syncer. ctx's values reach fn, not its cancellation: the
// write is short, a ban half recorded is worse than a stop that waits
// for it, and a cancellable context costs the database/sql layer and the
// driver a goroutine each per transaction and statement.
func (db *DB) jailWrite(ctx context.Context, fn func(context.Context, *sql.Tx) error) error {
	ctx = context.WithoutCancel(ctx)
	jdb, err := db.jailDB(ctx)
	if err != nil {
		return err
	}
	tx, err := jdb.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(ctx, tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	db.commits.Add(1)
	select {
	case db.dirty <- struct{}{}:
	default: // the syncer has a round to come that covers this commit
	}
	return nil
}

// syncLoop is the syncer: for each round of jail commits it fsyncs the WAL
// once (commits made during an fsync get the next round), and
// checkpoints every checkpointEvery commits. It stops when Close is
// called.
func (db *DB) syncLoop() {
	defer close(db.syncDone)
	for {
		select {
		case <-db.quit:
			return
		case <-db.dirty:
		}
		err := db.Sync()
		if err == nil && db.commits.Load() >= checkpointEvery {
			db.commits.Store(0)
			// PASSIVE: it neither waits for nor blocks the writers.
			if _, cerr := db.sql.Exec("PRAGMA wal_checkpoint(PASSIVE)"); cerr != nil {
				err = fmt.Errorf("store: checkpoint: %w", cerr)
			}
		}
		db.syncMu.Lock()
		db.syncErr = err
		db.syncMu.Unlock()
	}
}

// Sync puts on disk every jail write committed before it was called, by
// an fsync of the database's WAL file. A WAL that is not there has been
// checkpointed into the database, which SQLite synced. (Closing this
// descriptor of the WAL drops no lock of SQLite's: SQLite locks the
// database file and the -shm file, and opens the WAL without locking.)
func (db *DB) Sync() error {
	f, err := os.Open(db.path + "-wal")
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: sync: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("store: sync %s: %w", f.Name(), err)
	}
	return nil
}

// Ping checks that the database answers: it reads the schema from the
// file, which a database that was closed, removed from under us or
// locked for longer than the busy timeout does not allow.
func (db *DB) Ping(ctx context.Context) error {
	var n int
	if err := db.sql.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n); err != nil {
		return fmt.Errorf("store: %s: %w", db.path, err)
	}
	return nil
}

// SyncErr returns the error of the syncer's last round, nil when it
// succeeded.
func (db *DB) SyncErr() error {
	db.syncMu.Lock()
	defer db.syncMu.Unlock()
	return db.syncErr
}

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
	// 5: an entry whose write went out and whose outcome is not recorded
	// (see Entry.Sent).
	`
ALTER TABLE cf_entry ADD COLUMN sent INTEGER NOT NULL DEFAULT 0;
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

// migrateRetrying runs migrate, trying again for up to five seconds while
// SQLite answers busy at once: while another process recovers the WAL
// (its first open) or checkpoints and removes it (its last close), a new
// connection gets SQLITE_BUSY without the busy timeout's wait. Concurrent
// CLI calls open the database exactly then.
func (db *DB) migrateRetrying(ctx context.Context) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := db.migrate(ctx)
		var se *sqlite.Error
		if err == nil || !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
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

package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// JailBan is a ban of one id (an address, or a filter's F-ID) by a jail.
type JailBan struct {
	Jail string
	IP   string
	At   time.Time
	// BanTime is how long the ban lasts; below zero it never ends.
	BanTime time.Duration
	// BanCount counts this id's bans by the jail (by every jail, for a
	// bantime.overalljails record), this one included.
	BanCount int
	// Data is the ban's details as JSON (failures, matches).
	Data string
}

// End is when the ban ends; zero for a ban that never ends.
func (b JailBan) End() time.Time {
	if b.BanTime < 0 {
		return time.Time{}
	}
	return b.At.Add(b.BanTime)
}

func banTimeMS(d time.Duration) int64 {
	if d < 0 {
		return -1
	}
	return d.Milliseconds()
}

func fromBanTimeMS(v int64) time.Duration {
	if v < 0 {
		return -1
	}
	return time.Duration(v) * time.Millisecond
}

// AddJailBan records b as active and in the record of past bans, in one
// transaction: a crash leaves both or neither. It returns once the
// record survives a crash of the process, without waiting for the disk:
// the syncer puts it there right after (see Sync).
func (db *DB) AddJailBan(ctx context.Context, b JailBan) error {
	if b.Data == "" {
		b.Data = "{}"
	}
	err := db.jailWrite(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.StmtContext(ctx, db.stmts.ban).ExecContext(ctx, b.Jail, b.IP, ms(b.At), banTimeMS(b.BanTime), b.BanCount, b.Data); err != nil {
			return err
		}
		_, err := tx.StmtContext(ctx, db.stmts.record).ExecContext(ctx, b.IP, b.Jail, ms(b.At), banTimeMS(b.BanTime), b.BanCount, b.Data)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: ban %s in jail %q: %w", b.IP, b.Jail, err)
	}
	return nil
}

// AddJailBans records bans as AddJailBan does, all in one transaction:
// what importing or seeding many bans at once needs.
func (db *DB) AddJailBans(ctx context.Context, bans []JailBan) error {
	err := db.jailWrite(ctx, func(ctx context.Context, tx *sql.Tx) error {
		ban, record := tx.StmtContext(ctx, db.stmts.ban), tx.StmtContext(ctx, db.stmts.record)
		for _, b := range bans {
			if b.Data == "" {
				b.Data = "{}"
			}
			if _, err := ban.ExecContext(ctx, b.Jail, b.IP, ms(b.At), banTimeMS(b.BanTime), b.BanCount, b.Data); err != nil {
				return fmt.Errorf("%s in jail %q: %w", b.IP, b.Jail, err)
			}
			if _, err := record.ExecContext(ctx, b.IP, b.Jail, ms(b.At), banTimeMS(b.BanTime), b.BanCount, b.Data); err != nil {
				return fmt.Errorf("%s in jail %q: %w", b.IP, b.Jail, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: add %d bans: %w", len(bans), err)
	}
	return nil
}

// RemoveJailBan drops the active ban of ip by jail, if any; the record of
// past bans keeps it. Like AddJailBan, it does not wait for the disk.
func (db *DB) RemoveJailBan(ctx context.Context, jail, ip string) error {
	err := db.jailWrite(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.StmtContext(ctx, db.stmts.unban).ExecContext(ctx, jail, ip)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: unban %s in jail %q: %w", ip, jail, err)
	}
	return nil
}

// RemoveJailBans drops the active bans of ips by jail in one transaction.
func (db *DB) RemoveJailBans(ctx context.Context, jail string, ips []string) error {
	err := db.jailWrite(ctx, func(ctx context.Context, tx *sql.Tx) error {
		del := tx.StmtContext(ctx, db.stmts.unban)
		for _, ip := range ips {
			if _, err := del.ExecContext(ctx, jail, ip); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: unban %d addresses in jail %q: %w", len(ips), jail, err)
	}
	return nil
}

// jailStmts are the jail writes' statements, prepared once on the jail
// connection: parsing them again for every ban costs more than running
// them.
type jailStmts struct {
	ban, record, unban *sql.Stmt
}

func (db *DB) prepareJailStmts(ctx context.Context) error {
	for _, s := range []struct {
		dst   **sql.Stmt
		query string
	}{
		{&db.stmts.ban, `INSERT INTO jail_ban (jail, ip, at, bantime, bancount, data) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (jail, ip) DO UPDATE SET at = excluded.at, bantime = excluded.bantime, bancount = excluded.bancount, data = excluded.data`},
		{&db.stmts.record, `INSERT INTO jail_record (ip, jail, at, bantime, bancount, data) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (ip, jail) DO UPDATE SET at = excluded.at, bantime = excluded.bantime, bancount = excluded.bancount, data = excluded.data`},
		{&db.stmts.unban, "DELETE FROM jail_ban WHERE jail = ? AND ip = ?"},
	} {
		st, err := db.jails.PrepareContext(ctx, s.query)
		if err != nil {
			return fmt.Errorf("prepare: %w", err)
		}
		*s.dst = st
	}
	return nil
}

// JailBans returns the active bans of jail ("" for every jail), oldest
// first.
func (db *DB) JailBans(ctx context.Context, jail string) ([]JailBan, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT jail, ip, at, bantime, bancount, data FROM jail_ban
		WHERE ? = '' OR jail = ? ORDER BY at, jail, ip`, jail, jail)
	if err != nil {
		return nil, fmt.Errorf("store: bans of %q: %w", jail, err)
	}
	defer rows.Close()
	var out []JailBan
	for rows.Next() {
		var b JailBan
		var at, bt int64
		if err := rows.Scan(&b.Jail, &b.IP, &at, &bt, &b.BanCount, &b.Data); err != nil {
			return nil, fmt.Errorf("store: bans of %q: %w", jail, err)
		}
		b.At, b.BanTime = fromMS(at), fromBanTimeMS(bt)
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: bans of %q: %w", jail, err)
	}
	return out, nil
}

// EachJailBan calls fn for each active ban of jail, oldest first, until
// fn returns an error, which it returns. The bans come without their
// Data (JailBanData reads it) and one at a time: a daemon restoring
// 100,000 bans holds neither their details nor a slice of them all.
func (db *DB) EachJailBan(ctx context.Context, jail string, fn func(JailBan) error) error {
	rows, err := db.sql.QueryContext(ctx, `SELECT ip, at, bantime, bancount FROM jail_ban WHERE jail = ? ORDER BY at, ip`, jail)
	if err != nil {
		return fmt.Errorf("store: bans of %q: %w", jail, err)
	}
	defer rows.Close()
	for rows.Next() {
		b := JailBan{Jail: jail}
		var at, bt int64
		if err := rows.Scan(&b.IP, &at, &bt, &b.BanCount); err != nil {
			return fmt.Errorf("store: bans of %q: %w", jail, err)
		}
		b.At, b.BanTime = fromMS(at), fromBanTimeMS(bt)
		if err := fn(b); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: bans of %q: %w", jail, err)
	}
	return nil
}

// JailBanData returns the Data of the active ban of ip by jail; ok is
// false when there is none.
func (db *DB) JailBanData(ctx context.Context, jail, ip string) (data string, ok bool, err error) {
	err = db.sql.QueryRowContext(ctx, "SELECT data FROM jail_ban WHERE jail = ? AND ip = ?", jail, ip).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("store: ban of %s in jail %q: %w", ip, jail, err)
	}
	return data, true, nil
}

// LastBan returns the latest recorded ban of ip by jail, or by any jail
// when overall is set (bantime.overalljails), with the highest ban count
// among them; ok is false when ip was never banned.
func (db *DB) LastBan(ctx context.Context, ip, jail string, overall bool) (b JailBan, ok bool, err error) {
	var at, bt int64
	err = db.sql.QueryRowContext(ctx, `SELECT jail, ip, at, bantime, bancount, data FROM jail_record
		WHERE ip = ? AND (? OR jail = ?) ORDER BY bancount DESC, at DESC LIMIT 1`, ip, overall, jail).
		Scan(&b.Jail, &b.IP, &at, &bt, &b.BanCount, &b.Data)
	if errors.Is(err, sql.ErrNoRows) {
		return JailBan{}, false, nil
	}
	if err != nil {
		return JailBan{}, false, fmt.Errorf("store: last ban of %s: %w", ip, err)
	}
	b.At, b.BanTime = fromMS(at), fromBanTimeMS(bt)
	return b, true, nil
}

// SetLogPosition records how far jail has read the log at path: the MD5
// of its first line and the offset after the last line handled.
func (db *DB) SetLogPosition(ctx context.Context, jail, path, md5 string, pos int64) error {
	err := db.jailWrite(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO log_pos (jail, path, md5, pos) VALUES (?, ?, ?, ?)
			ON CONFLICT (jail, path) DO UPDATE SET md5 = excluded.md5, pos = excluded.pos`, jail, path, md5, pos)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: position of %s for jail %q: %w", path, jail, err)
	}
	return nil
}

// LogPosition returns what SetLogPosition recorded; ok is false when
// nothing was.
func (db *DB) LogPosition(ctx context.Context, jail, path string) (md5 string, pos int64, ok bool, err error) {
	err = db.sql.QueryRowContext(ctx, "SELECT md5, pos FROM log_pos WHERE jail = ? AND path = ?", jail, path).Scan(&md5, &pos)
	if errors.Is(err, sql.ErrNoRows) {
		return "", 0, false, nil
	}
	if err != nil {
		return "", 0, false, fmt.Errorf("store: position of %s for jail %q: %w", path, jail, err)
	}
	return md5, pos, true, nil
}

// PurgeJails drops the records of bans that ended before now - age, as
// fail2ban's dbpurgeage does; active bans and permanent ones stay. It
// returns how many records went.
func (db *DB) PurgeJails(ctx context.Context, age time.Duration) (int64, error) {
	limit := ms(db.now().Add(-age))
	var n int64
	err := db.jailWrite(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM jail_record WHERE bantime >= 0 AND at + bantime < ?
			AND NOT EXISTS (SELECT 1 FROM jail_ban b WHERE b.jail = jail_record.jail AND b.ip = jail_record.ip)`, limit)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: purge: %w", err)
	}
	return n, nil
}

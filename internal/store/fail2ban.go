package store

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"time"
)

// Fail2banImport counts what ImportFail2ban took from a fail2ban
// database.
type Fail2banImport struct {
	Records int // bans on record (bips), each id once per jail
	Active  int // of those, the bans still running
}

// ImportFail2ban copies the bans of a fail2ban database (schema version
// 4, fail2ban 0.11 and later) into db: every id's latest ban per jail
// with its ban count, so that bantime.increment remembers repeat
// offenders, and the bans still running at now (permanent ones
// included) as active bans, which a restart restores. The fail2ban file is
// opened read-only and not changed. Importing twice changes nothing.
//
// The bans on record that have ended go in among the active bans too,
// with their end: to edgeban serve, they are bans that ended while it
// was down, which its start lifts in the actions whose bans outlive the
// daemon (Cloudflare's) and drops from the others. fail2ban's database
// does not tell whether fail2ban lifted them: a ban that ended while
// fail2ban was down never was, and the seed's shell action fails every
// unban under Python 3. So each gets one look-up at Cloudflare, by
// address and our note, and a delete if a rule of ours is still there.
func (db *DB) ImportFail2ban(ctx context.Context, path string, now time.Time) (Fail2banImport, error) {
	var st Fail2banImport
	if _, err := os.Stat(path); err != nil {
		return st, fmt.Errorf("store: fail2ban database: %w", err)
	}
	src, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?mode=ro&_pragma=busy_timeout(15000)")
	if err != nil {
		return st, fmt.Errorf("store: fail2ban database %s: %w", path, err)
	}
	defer src.Close()
	var version int
	if err := src.QueryRowContext(ctx, "SELECT version FROM fail2banDb LIMIT 1").Scan(&version); err != nil {
		return st, fmt.Errorf("store: %s is not a fail2ban database: %w", path, err)
	}
	if version != 4 {
		return st, fmt.Errorf("store: %s has fail2ban's schema version %d; edgeban imports version 4 (fail2ban 0.11 and later): start that fail2ban once to upgrade it", path, version)
	}
	rows, err := src.QueryContext(ctx, "SELECT jail, ip, timeofban, bantime, bancount, COALESCE(data, '{}') FROM bips ORDER BY timeofban")
	if err != nil {
		return st, fmt.Errorf("store: fail2ban database %s: %w", path, err)
	}
	defer rows.Close()
	var bans []JailBan
	for rows.Next() {
		var (
			b        JailBan
			at, secs int64
		)
		if err := rows.Scan(&b.Jail, &b.IP, &at, &secs, &b.BanCount, &b.Data); err != nil {
			return st, fmt.Errorf("store: fail2ban database %s: %w", path, err)
		}
		b.At = time.Unix(at, 0)
		b.BanTime = time.Duration(secs) * time.Second
		if secs < 0 {
			b.BanTime = -1
		}
		if b.Data == "" || b.Data == "null" {
			b.Data = "{}"
		}
		bans = append(bans, b)
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("store: fail2ban database %s: %w", path, err)
	}
	err = db.tx(ctx, func(tx *sql.Tx) error {
		for _, b := range bans {
			if _, err := tx.ExecContext(ctx, `INSERT INTO jail_record (ip, jail, at, bantime, bancount, data) VALUES (?, ?, ?, ?, ?, ?)
				ON CONFLICT (ip, jail) DO UPDATE SET at = excluded.at, bantime = excluded.bantime, bancount = excluded.bancount, data = excluded.data
				WHERE excluded.at >= jail_record.at`,
				b.IP, b.Jail, ms(b.At), banTimeMS(b.BanTime), b.BanCount, b.Data); err != nil {
				return err
			}
			st.Records++
			if _, err := tx.ExecContext(ctx, `INSERT INTO jail_ban (jail, ip, at, bantime, bancount, data) VALUES (?, ?, ?, ?, ?, ?)
				ON CONFLICT (jail, ip) DO UPDATE SET at = excluded.at, bantime = excluded.bantime, bancount = excluded.bancount, data = excluded.data
				WHERE excluded.at >= jail_ban.at`,
				b.Jail, b.IP, ms(b.At), banTimeMS(b.BanTime), b.BanCount, b.Data); err != nil {
				return err
			}
			if end := b.End(); b.BanTime < 0 || end.After(now) {
				st.Active++
			}
		}
		return nil
	})
	if err != nil {
		return Fail2banImport{}, fmt.Errorf("store: import %s: %w", path, err)
	}
	return st, nil
}

package demo

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// stampLayouts are the time stamps a line of the attack log may begin
// with: syslog's (auth.log) and nginx's error.log. Each layout writes a
// stamp of its own length.
var stampLayouts = []string{time.Stamp, "2006/01/02 15:04:05"}

// attackLine is one line of the attack log, to be written into a file.
type attackLine struct {
	file   string        // where it goes, relative to the log directory
	text   string        // the line as stored, its stamp included
	layout string        // the layout of its stamp
	at     time.Duration // its stamp, less the log's first stamp
}

// Expectation is what the attack log says the daemon does: Jail bans IP,
// and the ban has ended by the end of the replay (Unbanned) or is still
// running.
type Expectation struct {
	Jail, IP string
	Unbanned bool
}

// attackLog is a parsed attack log.
type attackLog struct {
	lines  []attackLine
	expect []Expectation
}

// parseAttackLog reads an attack log: comments (#) and blank lines, lines
// "FILE<tab>LINE" where LINE begins with a stamp of stampLayouts and the
// stamps do not go back in time (the year is not looked at), and lines
// "expect<tab>JAIL<tab>IP<tab>banned|unbanned".
func parseAttackLog(b []byte) (*attackLog, error) {
	var log attackLog
	var first, last time.Time
	seen := map[[2]string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		head, rest, ok := strings.Cut(line, "\t")
		if !ok {
			return nil, fmt.Errorf("attack log, line %d: no tab after the file name", n)
		}
		if head == "expect" {
			e, err := parseExpectation(rest)
			if err != nil {
				return nil, fmt.Errorf("attack log, line %d: %w", n, err)
			}
			k := [2]string{e.Jail, e.IP}
			if seen[k] {
				return nil, fmt.Errorf("attack log, line %d: %s %s is expected twice", n, e.Jail, e.IP)
			}
			seen[k] = true
			log.expect = append(log.expect, e)
			continue
		}
		if !filepath.IsLocal(head) {
			return nil, fmt.Errorf("attack log, line %d: file %q is not a relative path inside the log directory", n, head)
		}
		layout, t, err := stamp(rest)
		if err != nil {
			return nil, fmt.Errorf("attack log, line %d: %w", n, err)
		}
		if first.IsZero() {
			first, last = t, t
		}
		if t.Before(last) {
			return nil, fmt.Errorf("attack log, line %d: its stamp goes back in time", n)
		}
		last = t
		log.lines = append(log.lines, attackLine{file: head, text: rest, layout: layout, at: t.Sub(first)})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("attack log: %w", err)
	}
	if len(log.lines) == 0 {
		return nil, fmt.Errorf("attack log: no lines to replay")
	}
	return &log, nil
}

func parseExpectation(s string) (Expectation, error) {
	f := strings.Split(s, "\t")
	if len(f) != 3 {
		return Expectation{}, fmt.Errorf("want expect<tab>JAIL<tab>IP<tab>banned|unbanned")
	}
	e := Expectation{Jail: f[0], IP: f[1]}
	if e.Jail == "" {
		return e, fmt.Errorf("expect: no jail")
	}
	if _, err := netip.ParseAddr(e.IP); err != nil {
		return e, fmt.Errorf("expect: %w", err)
	}
	switch f[2] {
	case "banned":
	case "unbanned":
		e.Unbanned = true
	default:
		return e, fmt.Errorf("expect: %q is neither banned nor unbanned", f[2])
	}
	return e, nil
}

// stamp finds the stamp line begins with; its time is given in the year
// 2000 (a leap year: February 29 parses), whatever the stamp's year.
func stamp(line string) (string, time.Time, error) {
	for _, layout := range stampLayouts {
		if len(line) < len(layout) {
			continue
		}
		t, err := time.Parse(layout, line[:len(layout)])
		if err != nil {
			continue
		}
		return layout, time.Date(2000, t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), 0, time.UTC), nil
	}
	return "", time.Time{}, fmt.Errorf("the line does not begin with a stamp like %q", stampLayouts)
}

// restamp returns l's text with its stamp replaced by now's.
func (l attackLine) restamp(now time.Time) string {
	return now.Format(l.layout) + l.text[len(l.layout):]
}

// files returns the files the lines go to, sorted.
func (log *attackLog) files() []string {
	set := map[string]bool{}
	for _, l := range log.lines {
		set[l.file] = true
	}
	var out []string
	for f := range set {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

// duration is the time the replay takes.
func (log *attackLog) duration() time.Duration {
	return log.lines[len(log.lines)-1].at
}

// createFiles creates the files the lines go to under dir, empty, so that
// the daemon follows them from the start.
func (log *attackLog) createFiles(dir string) error {
	for _, name := range log.files() {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		f.Close()
	}
	return nil
}

// replay appends the lines to their files under dir, each when its time
// after start comes, stamped with the time it is written in its stamp's
// layout (local time, as the daemon writing it would).
func (log *attackLog) replay(ctx context.Context, dir string, start time.Time) error {
	files := map[string]*os.File{}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for _, l := range log.lines {
		if wait := time.Until(start.Add(l.at)); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return fmt.Errorf("replay: %w", ctx.Err())
			case <-timer.C:
			}
		}
		f, ok := files[l.file]
		if !ok {
			var err error
			if f, err = os.OpenFile(filepath.Join(dir, l.file), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644); err != nil {
				return fmt.Errorf("replay: %w", err)
			}
			files[l.file] = f
		}
		if _, err := f.WriteString(l.restamp(time.Now()) + "\n"); err != nil {
			return fmt.Errorf("replay: %w", err)
		}
	}
	return nil
}

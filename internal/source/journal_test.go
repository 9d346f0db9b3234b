package source

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgeban/edgeban/internal/journaltest"
	"github.com/edgeban/edgeban/internal/sharedtest"
)

type field = journaltest.Field

var exportEntry = journaltest.Export

func TestFormatEntry(t *testing.T) {
	tests := []struct {
		name   string
		fields []field
		want   string
		at     int64 // µs, 0: zero time
	}{
		{"sshd", []field{{"_HOSTNAME", "srv"}, {"SYSLOG_IDENTIFIER", "sshd"}, {"_PID", "13709"}, {"MESSAGE", "Invalid user ftp from 192.0.2.1"}, {"__REALTIME_TIMESTAMP", "1700000000123456"}},
			"srv sshd[13709]: Invalid user ftp from 192.0.2.1", 1700000000123456},
		{"SYSLOG_PID before _PID", []field{{"_HOSTNAME", "h"}, {"SYSLOG_IDENTIFIER", "x"}, {"SYSLOG_PID", "7"}, {"_PID", "8"}, {"MESSAGE", "m"}},
			"h x[7]: m", 0},
		{"_COMM when no identifier", []field{{"_HOSTNAME", "h"}, {"_COMM", "nginx"}, {"_PID", "9"}, {"MESSAGE", "m"}},
			"h nginx[9]: m", 0},
		{"no PID", []field{{"_HOSTNAME", "h"}, {"SYSLOG_IDENTIFIER", "app"}, {"MESSAGE", "m"}},
			"h app: m", 0},
		{"no host, no identifier", []field{{"MESSAGE", "bare"}}, "bare", 0},
		{"no message", []field{{"_HOSTNAME", "h"}, {"SYSLOG_IDENTIFIER", "app"}}, "h app: ", 0},
		{"kernel, source monotonic time", []field{{"_HOSTNAME", "h"}, {"SYSLOG_IDENTIFIER", "kernel"}, {"_SOURCE_MONOTONIC_TIMESTAMP", "12345678"}, {"__MONOTONIC_TIMESTAMP", "99"}, {"MESSAGE", "IN=eth0 SRC=192.0.2.7"}},
			"h kernel: [   12.345678] IN=eth0 SRC=192.0.2.7", 0},
		{"kernel, entry monotonic time", []field{{"SYSLOG_IDENTIFIER", "kernel"}, {"__MONOTONIC_TIMESTAMP", "123456789012"}, {"MESSAGE", "x"}},
			"kernel: [123456.789012] x", 0},
		{"repeated message", []field{{"SYSLOG_IDENTIFIER", "a"}, {"MESSAGE", "one"}, {"MESSAGE", "two"}}, "a: one two", 0},
		{"newlines kept on one line", []field{{"SYSLOG_IDENTIFIER", "a"}, {"MESSAGE", "one\ntwo\n"}}, `a: one\ntwo\n`, 0},
		{"bytes that are not UTF-8", []field{{"SYSLOG_IDENTIFIER", "a"}, {"MESSAGE", "bad \xff\xfe byte, é ok"}}, "a: bad \uFFFD\uFFFD byte, é ok", 0},
		{"source time first", []field{{"MESSAGE", "m"}, {"__REALTIME_TIMESTAMP", "1700000000000002"}, {"_SOURCE_REALTIME_TIMESTAMP", "1700000000000001"}},
			"m", 1700000000000001},
		{"unreadable source time", []field{{"MESSAGE", "m"}, {"__REALTIME_TIMESTAMP", "1700000000000002"}, {"_SOURCE_REALTIME_TIMESTAMP", "soon"}},
			"m", 1700000000000002},
		{"attacker's text stays text", []field{{"SYSLOG_IDENTIFIER", "sshd"}, {"_PID", "1"}, {"MESSAGE", "Invalid user $(reboot)`id`;'\" from 192.0.2.3"}},
			"sshd[1]: Invalid user $(reboot)`id`;'\" from 192.0.2.3", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := newExportReader(bytes.NewReader(exportEntry(tt.fields...)), DefaultMaxLine)
			var raw rawEntry
			if err := x.next(&raw); err != nil {
				t.Fatal(err)
			}
			e := formatEntry(&raw)
			if e.Text != tt.want {
				t.Errorf("text %q, want %q", e.Text, tt.want)
			}
			var at time.Time
			if tt.at != 0 {
				at = time.UnixMicro(tt.at)
			}
			if !e.Time.Equal(at) {
				t.Errorf("time %v, want %v", e.Time, at)
			}
		})
	}
}

func TestExportReader(t *testing.T) {
	long := strings.Repeat("x", 100)
	tests := []struct {
		name     string
		stream   string
		max      int
		want     []string // MESSAGE of each entry
		cut      []bool
		wantErr  error
		wantLast string // the cursor of the last entry
	}{
		{"two entries", string(exportEntry(field{"__CURSOR", "c1"}, field{"MESSAGE", "a"})) + string(exportEntry(field{"__CURSOR", "c2"}, field{"MESSAGE", "b"})),
			100, []string{"a", "b"}, []bool{false, false}, nil, "c2"},
		{"blank lines between entries", "\n\nMESSAGE=a\n\n\n\nMESSAGE=b\n\n", 100, []string{"a", "b"}, []bool{false, false}, nil, ""},
		{"binary field", string(exportEntry(field{"MESSAGE", "l1\nl2"}, field{"__CURSOR", "c"})), 100, []string{`l1\nl2`}, []bool{false}, nil, "c"},
		{"text field cut", "MESSAGE=" + long + "\n__CURSOR=c\n\n", 10, []string{"xxxxxxxxxx"}, []bool{true}, nil, "c"},
		{"binary field cut", string(exportEntry(field{"MESSAGE", long + "\n"}, field{"__CURSOR", "c"})), 10, []string{"xxxxxxxxxx"}, []bool{true}, nil, "c"},
		{"other fields are skipped", "A=1\nMESSAGE=m\nB\n\x03\x00\x00\x00\x00\x00\x00\x00a\nb\n\n", 100, []string{"m"}, []bool{false}, nil, ""},
		{"cut inside an entry", "MESSAGE=a\n\nMESSAGE=b\n", 100, []string{"a"}, []bool{false}, io.ErrUnexpectedEOF, ""},
		{"cut inside a binary field", "MESSAGE\n\x09\x00\x00\x00\x00\x00\x00\x00abc", 100, nil, nil, io.ErrUnexpectedEOF, ""},
		{"binary field without its newline", "MESSAGE\n\x01\x00\x00\x00\x00\x00\x00\x00ab\n\n", 100, nil, nil, errExport, ""},
		{"absurd binary size", "MESSAGE\n\xff\xff\xff\xff\xff\xff\xff\xff\n", 10, nil, nil, errExport, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := newExportReader(strings.NewReader(tt.stream), tt.max)
			var got []string
			var cut []bool
			var last string
			var err error
			for {
				var raw rawEntry
				if err = x.next(&raw); err != nil {
					break
				}
				e := formatEntry(&raw)
				got, cut, last = append(got, e.Text), append(cut, e.Truncated), e.Cursor
			}
			if tt.wantErr == nil && err != io.EOF || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) || fmt.Sprint(cut) != fmt.Sprint(tt.cut) || last != tt.wantLast {
				t.Fatalf("entries %q cut %v last cursor %q, want %q %v %q", got, cut, last, tt.want, tt.cut, tt.wantLast)
			}
		})
	}
}

func TestJournalctlArgs(t *testing.T) {
	since := time.UnixMicro(1700000000000042)
	common := "--output=export --output-fields=MESSAGE,_HOSTNAME,SYSLOG_IDENTIFIER,SYSLOG_PID,_PID,_COMM,_SOURCE_REALTIME_TIMESTAMP,_SOURCE_MONOTONIC_TIMESTAMP --follow --no-tail --no-pager --quiet "
	sshd := [][]string{{"_SYSTEMD_UNIT=sshd.service", "_COMM=x"}, {"_COMM=sshd"}, {"_COMM=sshd-session"}}
	tests := []struct {
		name   string
		opts   JournalOptions
		files  []string
		cursor string
		since  time.Time
		want   string
	}{
		{"system journal, fail2ban's default flags", JournalOptions{Match: sshd, Flags: JournalSystem}, nil, "", since,
			"--merge --system --since=@1700000000.000042 -- _SYSTEMD_UNIT=sshd.service _COMM=x + _COMM=sshd + _COMM=sshd-session"},
		{"local system journal after a cursor", JournalOptions{Match: sshd[1:2], Flags: JournalSystem | JournalLocalOnly}, nil, "s=1;i=2", since,
			"--system --after-cursor=s=1;i=2 -- _COMM=sshd"},
		{"runtime journal, user", JournalOptions{Flags: JournalRuntimeOnly | JournalCurrentUser | JournalLocalOnly}, nil, "", time.Time{},
			"--directory=/run/log/journal --user --"},
		{"journalpath", JournalOptions{Path: "/srv/j", Match: sshd[1:2]}, nil, "", since,
			"--directory=/srv/j --since=@1700000000.000042 -- _COMM=sshd"},
		{"journalpath, system", JournalOptions{Path: "/srv/j", Flags: JournalSystem}, nil, "", time.Time{},
			"--directory=/srv/j --system --"},
		{"journalfiles, globs escaped", JournalOptions{Files: []string{"/j/*.journal"}}, []string{"/j/a.journal", "/j/b[1].journal"}, "c", time.Time{},
			`--file=/j/a.journal --file=/j/b\[1].journal --after-cursor=c --`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Join(journalctlArgs(&tt.opts, tt.files, tt.cursor, tt.since), " ")
			if got != common+tt.want {
				t.Fatalf("args\n%s\nwant\n%s", got, common+tt.want)
			}
		})
	}
}

func TestJournalOptionsValidate(t *testing.T) {
	tests := []struct {
		name    string
		opts    JournalOptions
		wantErr string
	}{
		{"default", JournalOptions{}, ""},
		{"fail2ban's sshd", JournalOptions{Match: [][]string{{"_SYSTEMD_UNIT=sshd.service"}, {"_COMM=sshd"}}, Flags: JournalSystem}, ""},
		{"empty value", JournalOptions{Match: [][]string{{"_COMM="}}}, ""},
		{"path and files", JournalOptions{Path: "/a", Files: []string{"/b"}}, "cannot be used together"},
		{"flags with files", JournalOptions{Files: []string{"/b"}, Flags: JournalSystem}, "journalflags cannot be used with journalfiles"},
		{"local only with path", JournalOptions{Path: "/a", Flags: JournalLocalOnly}, "cannot be used with journalpath"},
		{"unknown flag", JournalOptions{Flags: 16}, "journalflags 16"},
		{"a term without =", JournalOptions{Match: [][]string{{"/usr/sbin/sshd"}}}, `"/usr/sbin/sshd": not FIELD=VALUE`},
		{"an option as a term", JournalOptions{Match: [][]string{{"--file=/etc/shadow"}}}, "the field name has '-'"},
		{"lower-case field", JournalOptions{Match: [][]string{{"_comm=sshd"}}}, "the field name has 'c'"},
		{"field starting with a digit", JournalOptions{Match: [][]string{{"1A=b"}}}, "not FIELD=VALUE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestArchived(t *testing.T) {
	for name, want := range map[string]bool{
		"/var/log/journal/m/system.journal":                                        false,
		"/var/log/journal/m/user-1000.journal":                                     false,
		"/var/log/journal/m/system@0a1b-0000000000000001-0005f0e1d2c3b4a5.journal": true,
		"/var/log/journal/m/system@0005f0e1d2c3b4a5-0123456789abcdef.journal~":     true,
		"/srv/a@b/x.journal": false,
	} {
		if got := archived(name); got != want {
			t.Errorf("archived(%q) = %v, want %v", name, got, want)
		}
	}
}

// The tests below write real journal files with systemd-journal-remote,
// which builds them from an export stream with no journald running, and
// read them back with journalctl.

// sshdEntry is the entry of a line "HOST IDENT[PID]: MESSAGE" of unit.
func sshdEntry(t *testing.T, line, unit string) []field {
	f, ok := journaltest.SyslogEntry(line, unit)
	if !ok {
		t.Fatalf("not a journal sample line: %q", line)
	}
	return f
}

// sampleLines returns the log lines of fail2ban's sshd-journal sample.
func sampleLines(t testing.TB) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(sharedtest.Path(t, "fail2ban/fail2ban/tests/files/logs"), "sshd-journal"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for l := range strings.Lines(string(b)) {
		l = strings.TrimRight(l, "\n")
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// journalFollower runs FollowJournal until the test ends.
type journalFollower struct {
	t       *testing.T
	entries chan JournalEntry
	cancel  context.CancelFunc
	done    chan struct{}
	err     error
	once    sync.Once
}

func followJournal(t *testing.T, opts JournalOptions) *journalFollower {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	f := &journalFollower{t: t, entries: make(chan JournalEntry, 10000), cancel: cancel, done: make(chan struct{})}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	}
	go func() {
		defer close(f.done)
		f.err = FollowJournal(ctx, opts, func(e JournalEntry) error {
			f.entries <- e
			return nil
		})
	}()
	t.Cleanup(func() { f.stop() })
	return f
}

func (f *journalFollower) stop() {
	f.once.Do(func() {
		f.cancel()
		select {
		case <-f.done:
		case <-time.After(timeout):
			f.t.Error("FollowJournal did not return after cancel")
		}
		if !errors.Is(f.err, context.Canceled) {
			f.t.Errorf("FollowJournal returned %v, want context.Canceled", f.err)
		}
	})
}

// next waits for n entries.
func (f *journalFollower) next(n int) []JournalEntry {
	f.t.Helper()
	var out []JournalEntry
	deadline := time.After(timeout)
	for len(out) < n {
		select {
		case e := <-f.entries:
			out = append(out, e)
		case <-deadline:
			f.t.Fatalf("%d entries of %d came: %q", len(out), n, texts(out))
		}
	}
	return out
}

// none checks that no entry comes for a while: journalctl has had the
// time to send it, had there been one.
func (f *journalFollower) none(wait time.Duration) {
	f.t.Helper()
	select {
	case e := <-f.entries:
		f.t.Fatalf("unexpected entry %q", e.Text)
	case <-time.After(wait):
	}
}

func texts(es []JournalEntry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Text
	}
	return out
}

// TestFollowJournalSample reads fail2ban's sshd journal sample, written
// as real journal entries, through journalpath and journalfiles: each
// entry reads back as the line the sample shows, with the entry's time.
func TestFollowJournalSample(t *testing.T) {
	w := journaltest.NewWriter(t)
	lines := sampleLines(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "sshd.journal")
	at := time.Now().Add(-time.Minute).Truncate(time.Microsecond)
	var entries [][]field
	for _, l := range lines {
		entries = append(entries, sshdEntry(t, l, "ssh.service"))
	}
	w.Write(file, at, entries...)
	match := [][]string{{"_SYSTEMD_UNIT=ssh.service"}}
	for _, tt := range []struct {
		name string
		opts JournalOptions
	}{
		{"journalpath", JournalOptions{Path: dir, Match: match}},
		{"journalfiles", JournalOptions{Files: []string{filepath.Join(dir, "*.journal")}, Match: match}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := followJournal(t, tt.opts)
			got := f.next(len(lines))
			for i, e := range got {
				if e.Text != lines[i] {
					t.Errorf("entry %d: %q, want %q", i, e.Text, lines[i])
				}
				if want := at.Add(time.Duration(i) * time.Microsecond); !e.Time.Equal(want) {
					t.Errorf("entry %d: time %v, want %v", i, e.Time, want)
				}
				if e.Cursor == "" || (i > 0 && e.Cursor == got[i-1].Cursor) {
					t.Errorf("entry %d: cursor %q", i, e.Cursor)
				}
			}
			f.none(300 * time.Millisecond)
		})
	}
}

// TestFollowJournal checks the matches, the start (since, cursor, a
// cursor journalctl refuses), following new entries, and a journalctl
// that dies.
func TestFollowJournal(t *testing.T) {
	w := journaltest.NewWriter(t)
	base := time.Now().Add(-time.Hour).Truncate(time.Microsecond)
	ssh := func(msg string) []field {
		return []field{{"_HOSTNAME", "srv"}, {"SYSLOG_IDENTIFIER", "sshd"}, {"_PID", "1"}, {"_COMM", "sshd"}, {"_SYSTEMD_UNIT", "ssh.service"}, {"MESSAGE", msg}}
	}
	other := func(msg string) []field {
		return []field{{"_HOSTNAME", "srv"}, {"SYSLOG_IDENTIFIER", "sshd"}, {"_PID", "2"}, {"_COMM", "fake"}, {"_SYSTEMD_UNIT", "user@1000.service"}, {"MESSAGE", msg}}
	}
	sshdMatch := [][]string{{"_SYSTEMD_UNIT=ssh.service"}, {"_SYSTEMD_UNIT=sshd.service"}}

	t.Run("matches", func(t *testing.T) {
		dir := t.TempDir()
		w.Write(filepath.Join(dir, "a.journal"), base,
			ssh("one"), other("forged sshd line"), ssh("two"),
			[]field{{"_SYSTEMD_UNIT", "sshd.service"}, {"SYSLOG_IDENTIFIER", "sshd"}, {"MESSAGE", "three"}},
			[]field{{"_SYSTEMD_UNIT", "ssh.service"}, {"_COMM", "sshd"}, {"MESSAGE", "four"}},
			[]field{{"_SYSTEMD_UNIT", "ssh.service"}, {"_COMM", "sshd-session"}, {"MESSAGE", "five"}})
		for _, tt := range []struct {
			name  string
			match [][]string
			want  []string
		}{
			{"OR of groups", sshdMatch, []string{"srv sshd[1]: one", "srv sshd[1]: two", "sshd: three", "sshd: four", "sshd-session: five"}},
			{"AND within a group", [][]string{{"_SYSTEMD_UNIT=ssh.service", "_COMM=sshd"}}, []string{"srv sshd[1]: one", "srv sshd[1]: two", "sshd: four"}},
			{"one field twice in a group is either", [][]string{{"_COMM=sshd", "_COMM=fake"}}, []string{"srv sshd[1]: one", "srv sshd[2]: forged sshd line", "srv sshd[1]: two", "sshd: four"}},
			{"no match: everything", nil, []string{"srv sshd[1]: one", "srv sshd[2]: forged sshd line", "srv sshd[1]: two", "sshd: three", "sshd: four", "sshd-session: five"}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				f := followJournal(t, JournalOptions{Path: dir, Match: tt.match})
				if got := texts(f.next(len(tt.want))); fmt.Sprint(got) != fmt.Sprint(tt.want) {
					t.Fatalf("entries %q, want %q", got, tt.want)
				}
				f.none(300 * time.Millisecond)
			})
		}
	})

	t.Run("start", func(t *testing.T) {
		dir := t.TempDir()
		w.Write(filepath.Join(dir, "a.journal"), base, ssh("old"))
		w.Write(filepath.Join(dir, "a.journal"), base.Add(time.Minute), ssh("new 1"), ssh("new 2"))
		all := followJournal(t, JournalOptions{Path: dir, Match: sshdMatch}).next(3)
		for _, tt := range []struct {
			name string
			opts JournalOptions
			want []string
		}{
			{"since", JournalOptions{Since: base.Add(30 * time.Second)}, []string{"srv sshd[1]: new 1", "srv sshd[1]: new 2"}},
			{"after the cursor", JournalOptions{Cursor: all[1].Cursor}, []string{"srv sshd[1]: new 2"}},
			{"cursor wins over since", JournalOptions{Cursor: all[0].Cursor, Since: base.Add(2 * time.Minute)}, []string{"srv sshd[1]: new 1", "srv sshd[1]: new 2"}},
			{"a refused cursor falls back to since", JournalOptions{Cursor: "not a cursor", Since: base.Add(30 * time.Second)}, []string{"srv sshd[1]: new 1", "srv sshd[1]: new 2"}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				opts := tt.opts
				opts.Path, opts.Match, opts.RestartDelay = dir, sshdMatch, 10*time.Millisecond
				f := followJournal(t, opts)
				if got := texts(f.next(len(tt.want))); fmt.Sprint(got) != fmt.Sprint(tt.want) {
					t.Fatalf("entries %q, want %q", got, tt.want)
				}
				f.none(300 * time.Millisecond)
			})
		}
	})

	t.Run("follow", func(t *testing.T) {
		for _, tt := range []struct {
			name   string
			opts   func(dir string) JournalOptions
			second string // where the new entries go
		}{
			{"journalpath, a new file", func(dir string) JournalOptions { return JournalOptions{Path: dir} }, "b.journal"},
			{"journalpath, the same file", func(dir string) JournalOptions { return JournalOptions{Path: dir} }, "a.journal"},
			{"journalfiles, the same file", func(dir string) JournalOptions {
				return JournalOptions{Files: []string{filepath.Join(dir, "a.journal")}}
			}, "a.journal"},
			{"journalfiles, a new file the glob names", func(dir string) JournalOptions {
				return JournalOptions{Files: []string{filepath.Join(dir, "*.journal")}, Recheck: 50 * time.Millisecond}
			}, "b.journal"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				dir := t.TempDir()
				w.Write(filepath.Join(dir, "a.journal"), base, ssh("before"))
				opts := tt.opts(dir)
				opts.Match = sshdMatch
				f := followJournal(t, opts)
				f.next(1)
				w.Write(filepath.Join(dir, tt.second), time.Now(), other("not ours"), ssh("after 1"), ssh("after 2"))
				if got := texts(f.next(2)); fmt.Sprint(got) != "[srv sshd[1]: after 1 srv sshd[1]: after 2]" {
					t.Fatalf("entries %q", got)
				}
				f.none(300 * time.Millisecond)
			})
		}
	})

	t.Run("journalpath empty at the start", func(t *testing.T) {
		// journalctl exits at once on a directory without journal files;
		// it is started again until there is one.
		dir := t.TempDir()
		f := followJournal(t, JournalOptions{Path: dir, Match: sshdMatch, RestartDelay: 10 * time.Millisecond, MaxRestartDelay: 50 * time.Millisecond})
		time.Sleep(200 * time.Millisecond)
		w.Write(filepath.Join(dir, "a.journal"), time.Now(), ssh("first"))
		if got := f.next(1)[0].Text; got != "srv sshd[1]: first" {
			t.Fatalf("entry %q", got)
		}
		f.none(300 * time.Millisecond)
	})

	t.Run("journalctl dies", func(t *testing.T) {
		dir := t.TempDir()
		w.Write(filepath.Join(dir, "a.journal"), base, ssh("1"), ssh("2"))
		f := followJournal(t, JournalOptions{Path: dir, Match: sshdMatch, RestartDelay: 10 * time.Millisecond})
		f.next(2)
		for round := range 2 {
			pid := journalctlChild(t)
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			// Entries written while it is down are read once it is back,
			// and the ones read before are not read again.
			msg := fmt.Sprintf("while down %d", round)
			w.Write(filepath.Join(dir, "a.journal"), time.Now(), ssh(msg))
			if got := f.next(1)[0].Text; got != "srv sshd[1]: "+msg {
				t.Fatalf("after restart %d: %q", round, got)
			}
			f.none(300 * time.Millisecond)
			if p := journalctlChild(t); p == pid {
				t.Fatal("the killed journalctl is still the child")
			}
		}
	})

	t.Run("stopped while journalctl runs", func(t *testing.T) {
		dir := t.TempDir()
		w.Write(filepath.Join(dir, "a.journal"), base, ssh("1"))
		f := followJournal(t, JournalOptions{Path: dir})
		f.next(1)
		pid := journalctlChild(t)
		f.stop()
		if err := syscall.Kill(pid, 0); err == nil {
			if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); !bytes.Contains(st, []byte(") Z")) {
				t.Fatalf("journalctl %d still runs after FollowJournal returned", pid)
			}
		}
	})
}

// TestFollowJournalRotated checks what journalfiles reads of a directory
// holding an archived file beside the active one.
func TestFollowJournalRotated(t *testing.T) {
	w := journaltest.NewWriter(t)
	dir := t.TempDir()
	old := filepath.Join(dir, "system@0123456789abcdef0123456789abcdef-0000000000000001-0005f0e1d2c3b4a5.journal")
	at := time.Now().Add(-time.Hour)
	w.Write(old, at, []field{{"MESSAGE", "archived"}})
	w.Write(filepath.Join(dir, "system.journal"), at.Add(time.Minute), []field{{"MESSAGE", "active"}})
	for _, tt := range []struct {
		name    string
		files   []string
		rotated bool
		want    string
	}{
		{"active files only", []string{filepath.Join(dir, "*.journal")}, false, "[active]"},
		{"rotated", []string{filepath.Join(dir, "*.journal")}, true, "[archived active]"},
		{"an archived file named without a glob", []string{old}, false, "[archived]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := followJournal(t, JournalOptions{Files: tt.files, Rotated: tt.rotated})
			n := strings.Count(tt.want, " ") + 1
			if got := fmt.Sprint(texts(f.next(n))); got != tt.want {
				t.Fatalf("entries %s, want %s", got, tt.want)
			}
			f.none(300 * time.Millisecond)
		})
	}
}

// journalctlChild returns the pid of the test process's journalctl
// child, waiting for it to be started.
func journalctlChild(t *testing.T) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ms, _ := filepath.Glob("/proc/[0-9]*/stat")
		for _, m := range ms {
			b, err := os.ReadFile(m)
			if err != nil {
				continue
			}
			// pid (comm) state ppid ...
			s := string(b)
			i := strings.LastIndexByte(s, ')')
			if i < 0 || !strings.HasSuffix(s[:i], "(journalctl") {
				continue
			}
			f := strings.Fields(s[i+1:])
			if len(f) > 2 && f[0] != "Z" && f[1] == strconv.Itoa(os.Getpid()) {
				pid, _ := strconv.Atoi(strings.Fields(s)[0])
				return pid
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no journalctl child")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func FuzzReadExport(f *testing.F) {
	// The seed corpus is in testdata/fuzz/FuzzReadExport; a few more here.
	f.Add(exportEntry(field{"__CURSOR", "c"}, field{"MESSAGE", "hello"}, field{"SYSLOG_IDENTIFIER", "kernel"}, field{"__MONOTONIC_TIMESTAMP", "5"}))
	f.Add(exportEntry(field{"MESSAGE", "a\nb\xff"}))
	f.Fuzz(func(t *testing.T, data []byte) {
		const limit = 64
		x := newExportReader(bytes.NewReader(data), limit)
		for range 1000 {
			var raw rawEntry
			err := x.next(&raw)
			if err != nil {
				if err != io.EOF && !errors.Is(err, errExport) {
					t.Fatalf("error %v is neither the end nor a malformed stream", err)
				}
				return
			}
			for _, m := range raw.message {
				if len(m) > limit {
					t.Fatalf("a message of %d bytes kept, over the limit %d", len(m), limit)
				}
			}
			e := formatEntry(&raw)
			if strings.Contains(e.Text, "\n") || !isUTF8(e.Text) {
				t.Fatalf("text %q is not one line of UTF-8", e.Text)
			}
		}
	})
}

func isUTF8(s string) bool { return strings.ToValidUTF8(s, "") == s }

// TestReadExportRoundTrip writes entries with the test's own writer
// and reads them back: every value, binary or not, comes back.
func TestReadExportRoundTrip(t *testing.T) {
	values := []string{"", "plain", "with = sign", "new\nline", "\x00nul", "\xff\xfe", strings.Repeat("long ", 2000), "trailing newline\n", "é"}
	var stream bytes.Buffer
	for i, v := range values {
		stream.Write(exportEntry(field{"__CURSOR", strconv.Itoa(i)}, field{"MESSAGE", v}, field{"OTHER", v}))
	}
	x := newExportReader(bufio.NewReaderSize(&stream, 16), 1<<20)
	for i, v := range values {
		var raw rawEntry
		if err := x.next(&raw); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if len(raw.message) != 1 || string(raw.message[0]) != v || string(raw.cursor) != strconv.Itoa(i) {
			t.Fatalf("entry %d: %q %q, want %q", i, raw.message, raw.cursor, v)
		}
	}
	var raw rawEntry
	if err := x.next(&raw); err != io.EOF {
		t.Fatalf("after the last entry: %v", err)
	}
}

// BenchmarkReadExport measures the parsing and formatting of journal
// entries as journalctl sends them: fail2ban's sshd journal sample in a
// loop, each entry with the fields journalctl adds.
func BenchmarkReadExport(b *testing.B) {
	b.StopTimer()
	var stream bytes.Buffer
	lines := sampleLines(b)
	for i := range 10000 {
		f, ok := journaltest.SyslogEntry(lines[i%len(lines)], "ssh.service")
		if !ok {
			b.Fatalf("not a sample line: %q", lines[i%len(lines)])
		}
		head := []field{{"__CURSOR", fmt.Sprintf("s=0123456789abcdef0123456789abcdef;i=%x;b=%s;m=%x;t=%x;x=0123456789abcdef", i, journaltest.BootID, i, 1700000000000000+i)},
			{"__REALTIME_TIMESTAMP", strconv.Itoa(1700000000000000 + i)}, {"__MONOTONIC_TIMESTAMP", strconv.Itoa(i)}, {"_BOOT_ID", journaltest.BootID}}
		stream.Write(exportEntry(append(head, f...)...))
	}
	data := stream.Bytes()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.StartTimer()
	for b.Loop() {
		x := newExportReader(bytes.NewReader(data), DefaultMaxLine)
		var raw rawEntry
		n := 0
		for x.next(&raw) == nil {
			formatEntry(&raw)
			n++
		}
		if n != 10000 {
			b.Fatalf("%d entries", n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*10000), "ns/entry")
}

// BenchmarkFollowJournal measures reading a real journal file through
// journalctl: the entries of 10,000 sshd lines, from journalctl's start
// to the last entry handed out.
func BenchmarkFollowJournal(b *testing.B) {
	w := journaltest.NewWriter(b)
	lines := sampleLines(b)
	dir := b.TempDir()
	const n = 10000
	var entries [][]field
	for i := range n {
		f, _ := journaltest.SyslogEntry(lines[i%len(lines)], "ssh.service")
		entries = append(entries, f)
	}
	w.Write(filepath.Join(dir, "system.journal"), time.Now().Add(-time.Hour), entries...)
	b.ResetTimer()
	for b.Loop() {
		ctx, cancel := context.WithCancel(b.Context())
		got := 0
		err := FollowJournal(ctx, JournalOptions{Path: dir, Match: [][]string{{"_SYSTEMD_UNIT=ssh.service"}}, Logger: slog.New(slog.DiscardHandler)},
			func(JournalEntry) error {
				if got++; got == n {
					cancel()
				}
				return nil
			})
		if !errors.Is(err, context.Canceled) {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/entry")
}

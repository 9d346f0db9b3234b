package daemon

import (
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edgeban/edgeban/internal/config"
	"github.com/edgeban/edgeban/internal/journaltest"
	"github.com/edgeban/edgeban/internal/sharedtest"
	"github.com/edgeban/edgeban/internal/source"
)

// TestJournalJail runs fail2ban's sshd jail as a Debian 12 system would
// with its journal elsewhere: backend = systemd[journalpath=...], the
// stock sshd filter and its journalmatch, a shell action. Failures
// logged by sshd.service ban; the same lines logged by another unit do
// not; a user name with shell syntax reaches the action as text.
func TestJournalJail(t *testing.T) {
	w := journaltest.NewWriter(t)
	dir := writeConf(t, map[string]string{
		"action.d/note.conf": "[Definition]\nactionban = echo ban <ip> >> $DIR/calls\nactionunban = true\n",
		"jail.local": "[sshd]\nenabled = true\nbackend = systemd[journalpath=$DIR/journal]\naction = note\nmaxretry = 2\n" +
			"logpath = /nonexistent/auth.log\n",
	})
	if err := os.Symlink(filepath.Join(sharedtest.Path(t, "fail2ban/config"), "filter.d"), filepath.Join(dir, "filter.d")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "jail.conf"), []byte("[sshd]\nfilter = sshd\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	jdir := filepath.Join(dir, "journal")
	os.Mkdir(jdir, 0o755)
	entry := func(unit, comm, msg string) []journaltest.Field {
		return []journaltest.Field{{"_HOSTNAME", "srv"}, {"SYSLOG_IDENTIFIER", "sshd"}, {"_PID", "4242"}, {"_COMM", comm},
			{"_SYSTEMD_UNIT", unit}, {"MESSAGE", msg}}
	}
	// Before the start: within findtime, so read.
	w.Write(filepath.Join(jdir, "system.journal"), time.Now().Add(-time.Minute),
		entry("sshd.service", "sshd", "Invalid user admin from 192.0.2.10 port 4711"),
		entry("user@1000.service", "bash", "Invalid user admin from 198.51.100.66 port 1"),
		entry("user@1000.service", "bash", "Invalid user admin from 198.51.100.66 port 2"))
	_, d := runDaemon(t, dir, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})))
	j, err := d.jail("sshd")
	if err != nil {
		t.Fatal(err)
	}
	<-j.Ready()
	evil := "$(touch " + filepath.Join(dir, "pwned") + ")"
	w.Write(filepath.Join(jdir, "system.journal"), time.Now(),
		entry("ssh.service", "sshd-session", "Invalid user "+evil+" from 192.0.2.10 port 4712"))
	deadline := time.Now().Add(15 * time.Second)
	for {
		calls, _ := os.ReadFile(filepath.Join(dir, "calls"))
		if strings.Contains(string(calls), "ban 192.0.2.10\n") {
			if strings.Contains(string(calls), "198.51.100.66") {
				t.Fatalf("another unit's entries banned: %s", calls)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ban; calls %q, status %+v", calls, j.Status())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
		t.Fatal("a user name from the journal ran as code")
	}
}

// TestAutoFallsBackToJournal checks what a backend = auto jail reads: the
// journal (the system's, without user sessions, as fail2ban) when no log
// file exists and the filter has a journalmatch, with the filter read
// for journal lines; its log files otherwise.
func TestAutoFallsBackToJournal(t *testing.T) {
	if _, err := source.Journalctl(); err != nil {
		t.Skipf("needs journalctl: %v", err)
	}
	dir := writeConf(t, map[string]string{
		"filter.d/j.conf":      "[INCLUDES]\nbefore = common.conf\n[Definition]\nfailregex = ^<lt_<logtype>/x> from <HOST>$\njournalmatch = _SYSTEMD_UNIT=j.service + _COMM=j\n[lt_file]\nx = file\n[lt_journal]\nx = journal\n",
		"filter.d/common.conf": "[DEFAULT]\nlogtype = file\n",
		"action.d/note.conf":   "[Definition]\nactionban = true\n",
		"jail.local": "[DEFAULT]\naction = note\nfilter = j\n" +
			"[missing]\nenabled = true\nlogpath = $DIR/none.log\n" +
			"[present]\nenabled = true\nlogpath = $DIR/app.log\n",
		"app.log": "",
	})
	jails, err := config.ReadJails(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		jail    string
		journal *journalFrom
		regex   string
	}{
		{"missing", &journalFrom{Match: [][]string{{"_SYSTEMD_UNIT=j.service"}, {"_COMM=j"}}, Flags: source.JournalSystem}, "^journal from <HOST>$"},
		{"present", nil, "^file from <HOST>$"},
	} {
		t.Run(tt.jail, func(t *testing.T) {
			var jc *config.Jail
			for _, j := range jails {
				if j.Name == tt.jail {
					jc = j
				}
			}
			_, what, err := buildJailFrom(dir, jc, Options{Log: slog.New(slog.DiscardHandler)}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if (what.Journal == nil) != (tt.journal == nil) || what.Journal != nil && !reflect.DeepEqual(what.Journal, tt.journal) {
				t.Fatalf("journal %+v, want %+v", what.Journal, tt.journal)
			}
			if got := strings.Join(what.Filter.FailRegex, "\n"); got != tt.regex {
				t.Fatalf("failregex %q, want %q", got, tt.regex)
			}
		})
	}
}

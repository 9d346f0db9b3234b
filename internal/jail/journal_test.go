package jail

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/edgeban/edgeban/internal/filter"
	"github.com/edgeban/edgeban/internal/journaltest"
	"github.com/edgeban/edgeban/internal/sharedtest"
	"github.com/edgeban/edgeban/internal/source"
	"github.com/edgeban/edgeban/internal/store"
)

// sampleSection is a run of lines of a fail2ban sample file read with
// the same filter options.
type sampleSection struct {
	options []map[string]string // "# filterOptions:" of the section
	lines   []string
}

// readSample splits a fail2ban sample log into its filterOptions
// sections; lines before the first have the filter's defaults.
func readSample(t *testing.T, name string) []sampleSection {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(sharedtest.Path(t, "fail2ban/fail2ban/tests/files/logs"), name))
	if err != nil {
		t.Fatal(err)
	}
	secs := []sampleSection{{options: []map[string]string{{}}}}
	for l := range strings.Lines(string(b)) {
		l = strings.TrimRight(l, "\n")
		if opts, ok := strings.CutPrefix(l, "# filterOptions:"); ok {
			var o []map[string]string
			if err := json.Unmarshal([]byte(opts), &o); err != nil {
				t.Fatalf("%s: filterOptions %q: %v", name, opts, err)
			}
			secs = append(secs, sampleSection{options: o})
			continue
		}
		if l != "" && !strings.HasPrefix(l, "#") {
			secs[len(secs)-1].lines = append(secs[len(secs)-1].lines, l)
		}
	}
	return secs
}

// filterSpec is the jail's filter option for filter name with opts.
func filterSpec(name string, opts map[string]string) string {
	var kv []string
	for k, v := range opts {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	if len(kv) == 0 {
		return name
	}
	return name + "[" + strings.Join(kv, ", ") + "]"
}

// sentinel is a failure written after the sample's lines: once it is
// banned, every line before it has been handled.
const sentinel = "srv sshd[1]: Invalid user sentinel from 198.51.100.254"

// banOnce runs a jail with maxretry 1 over what src sets up, until the
// sentinel is banned, and returns the banned ids.
func banOnce(t *testing.T, def *filter.Definition, s Settings) []string {
	t.Helper()
	f, err := filter.New(def, filter.Config{Location: time.Local, UseDNS: "raw"})
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "edgeban.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s.Name, s.Filter, s.MaxRetry, s.FindTime, s.BanTime, s.MaxMatches = "sshd", f, 1, 10*time.Minute, time.Hour, 5
	s.UseDNS, s.Store, s.Log = "raw", db, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	j := New(s)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- j.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var ids []string
		for _, b := range j.Status().Banned {
			ids = append(ids, b.IP)
		}
		if slices.Contains(ids, "198.51.100.254") {
			return ids
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sentinel was not banned; banned %v", ids)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestJournalBansAsFile reads fail2ban's sshd journal sample, written as
// real journal entries of sshd.service, through the jail with fail2ban's
// own sshd filter and its journalmatch, through journalpath and
// journalfiles, and checks that it bans the same hosts as the same lines
// read from a file (maxretry 1: every failure bans). An entry of another
// unit, whose text is a failure, bans nobody.
func TestJournalBansAsFile(t *testing.T) {
	w := journaltest.NewWriter(t)
	conf := sharedtest.Path(t, "fail2ban/config")
	for si, sec := range readSample(t, "sshd-journal") {
		if len(sec.lines) == 0 {
			continue
		}
		for _, opts := range sec.options {
			spec := filterSpec("sshd", opts)
			t.Run(fmt.Sprintf("section %d %s", si, spec), func(t *testing.T) {
				def, err := filter.Load(conf, spec, filter.LoadOptions{Backend: "systemd"})
				if err != nil {
					t.Fatal(err)
				}
				dir := t.TempDir()
				lines := append(slices.Clone(sec.lines), sentinel)

				log := filepath.Join(dir, "auth.log")
				var text strings.Builder
				at := time.Now().Add(-time.Minute)
				for _, l := range lines {
					fmt.Fprintf(&text, "%s %s\n", at.Format("2006-01-02 15:04:05"), l)
				}
				if err := os.WriteFile(log, []byte(text.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				fromFile := banOnce(t, def, Settings{LogPaths: []string{log}})

				jdir := filepath.Join(dir, "journal")
				os.Mkdir(jdir, 0o755)
				var entries [][]journaltest.Field
				decoy, _ := journaltest.SyslogEntry("srv sshd[9]: Invalid user decoy from 203.0.113.250", "user@1000.service")
				entries = append(entries, append(decoy, journaltest.Field{"_COMM", "python3"}))
				for _, l := range lines {
					e, ok := journaltest.SyslogEntry(l, "sshd.service")
					if !ok {
						t.Fatalf("not a journal sample line: %q", l)
					}
					entries = append(entries, e)
				}
				w.Write(filepath.Join(jdir, "system.journal"), at, entries...)

				for _, src := range []struct {
					name string
					opts source.JournalOptions
				}{
					{"journalpath", source.JournalOptions{Path: jdir}},
					{"journalfiles", source.JournalOptions{Files: []string{filepath.Join(jdir, "*.journal")}}},
				} {
					opts := src.opts
					opts.Match = def.JournalMatch
					fromJournal := banOnce(t, def, Settings{Journal: &opts})
					if fmt.Sprint(fromJournal) != fmt.Sprint(fromFile) {
						t.Errorf("%s bans %v, the file %v", src.name, fromJournal, fromFile)
					}
					if slices.Contains(fromJournal, "203.0.113.250") {
						t.Errorf("%s: the entry of another unit banned", src.name)
					}
				}
				t.Logf("%d hosts banned: %v", len(fromFile), fromFile)
				if len(fromFile) < 2 {
					t.Fatalf("the file banned %v only: the comparison shows nothing", fromFile)
				}
			})
		}
	}
}

// TestJournalResumes checks that a jail reading the journal resumes
// after the last entry it handled: a restart reads only the entries
// logged since, and counts their failures only.
func TestJournalResumes(t *testing.T) {
	w := journaltest.NewWriter(t)
	tj := newTestJail(t)
	file := filepath.Join(tj.dir, "system.journal")
	entry := func(user, ip string) []journaltest.Field {
		return []journaltest.Field{{"_SYSTEMD_UNIT", "app.service"}, {"MESSAGE", "auth failure for " + user + " from " + ip}}
	}
	start := func() (*Jail, func()) {
		f, err := filter.New(filter.Literal(`^auth failure for <F-USER>\S+</F-USER> from <HOST>$`), filter.Config{Location: time.Local})
		if err != nil {
			t.Fatal(err)
		}
		j := New(Settings{Name: "app", Filter: f, MaxRetry: 3, FindTime: 10 * time.Minute, BanTime: time.Hour, MaxMatches: 5,
			Journal: &source.JournalOptions{Files: []string{file}, Match: [][]string{{"_SYSTEMD_UNIT=app.service"}}},
			Store:   tj.db, Log: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- j.Run(ctx) }()
		return j, func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	waitFailed := func(j *Jail, n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for j.Status().TotalFailed < n {
			if time.Now().After(deadline) {
				t.Fatalf("%d failures counted, want %d", j.Status().TotalFailed, n)
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond) // no more come
		if st := j.Status(); st.TotalFailed != n {
			t.Fatalf("%d failures counted, want %d", st.TotalFailed, n)
		}
	}

	// An entry older than findtime is not read; two recent ones are.
	w.Write(file, time.Now().Add(-time.Hour), entry("old", "192.0.2.1"))
	w.Write(file, time.Now().Add(-time.Minute), entry("a", "192.0.2.1"), entry("b", "192.0.2.1"))
	j, stop := start()
	waitFailed(j, 2)
	if st := j.Status(); len(st.Banned) != 0 {
		t.Fatalf("banned %v after two failures", st.Banned)
	}
	stop()
	cursor, at, ok, err := tj.db.LogPosition(t.Context(), "app", JournalPosition)
	if err != nil || !ok || !strings.Contains(cursor, "i=") || at == 0 {
		t.Fatalf("stored position %q %d %v %v", cursor, at, ok, err)
	}

	// While it is down, one more failure is logged; after the restart,
	// only that one is read: the address is not banned by the three
	// failures it has in all (fail2ban counts afresh at a restart, and
	// the two before were handled).
	w.Write(file, time.Now(), entry("c", "192.0.2.1"))
	j, stop = start()
	defer stop()
	waitFailed(j, 1)
	if st := j.Status(); len(st.Banned) != 0 {
		t.Fatalf("banned %v: entries handled before the restart were read again", st.Banned)
	}
	// Following goes on: two more failures ban.
	w.Write(file, time.Now(), entry("d", "192.0.2.1"), entry("e", "192.0.2.1"))
	waitFailed(j, 3)
	if st := j.Status(); len(st.Banned) != 1 || st.Banned[0].IP != "192.0.2.1" {
		t.Fatalf("status %+v", st)
	}
}

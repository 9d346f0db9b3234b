package demo

import (
	"cmp"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	ownconfig "github.com/edgeban/edgeban/config"
	"github.com/edgeban/edgeban/internal/config"
	"github.com/edgeban/edgeban/internal/filter"
)

func TestParseAttackLog(t *testing.T) {
	const sshd = "auth.log\tNov 25 10:00:00 h sshd[1]: Failed password for root from 192.0.2.1 port 1 ssh2\n"
	tests := []struct {
		name    string
		log     string
		wantErr string // "" for none
		lines   int
		expect  []Expectation
		span    time.Duration
	}{
		{name: "lines, comments and expectations",
			log: "# a comment\n\n" + sshd +
				"nginx/error.log\t2026/11/25 10:00:04 [error] 1#1: *1 x\n" +
				"auth.log\tNov 25 10:00:07 h sshd[1]: y\n" +
				"expect\tsshd\t192.0.2.1\tunbanned\nexpect\trecidive\t2001:db8::1\tbanned\n",
			lines: 3, span: 7 * time.Second,
			expect: []Expectation{{Jail: "sshd", IP: "192.0.2.1", Unbanned: true}, {Jail: "recidive", IP: "2001:db8::1"}}},
		{name: "a stamp with a one-digit day", log: "auth.log\tNov  5 10:00:00 h x\nauth.log\tNov  5 10:00:02 h y\n", lines: 2, span: 2 * time.Second},
		{name: "the year is not looked at", log: "a.log\t2025/12/31 23:59:59 x\nb.log\tDec 31 23:59:59 h y\n", lines: 2},
		{name: "no tab", log: "auth.log Nov 25 10:00:00 h x\n", wantErr: "line 1: no tab"},
		{name: "no stamp", log: "auth.log\thello\n", wantErr: "line 1: the line does not begin with a stamp"},
		{name: "back in time", log: sshd + "auth.log\tNov 25 09:59:59 h x\n", wantErr: "line 2: its stamp goes back in time"},
		{name: "a file outside the log directory", log: "../auth.log\tNov 25 10:00:00 h x\n", wantErr: "not a relative path inside"},
		{name: "an absolute file", log: "/var/log/auth.log\tNov 25 10:00:00 h x\n", wantErr: "not a relative path inside"},
		{name: "expectation without a state", log: sshd + "expect\tsshd\t192.0.2.1\n", wantErr: "line 2: want expect"},
		{name: "expectation with a bad state", log: sshd + "expect\tsshd\t192.0.2.1\tgone\n", wantErr: "neither banned nor unbanned"},
		{name: "expectation with a bad address", log: sshd + "expect\tsshd\t192.0.2\tbanned\n", wantErr: "line 2: expect: ParseAddr"},
		{name: "expectation twice", log: sshd + "expect\tsshd\t192.0.2.1\tbanned\nexpect\tsshd\t192.0.2.1\tunbanned\n", wantErr: "line 3: sshd 192.0.2.1 is expected twice"},
		{name: "nothing to replay", log: "# nothing\n", wantErr: "no lines to replay"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, err := parseAttackLog([]byte(tt.log))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(log.lines) != tt.lines || log.duration() != tt.span || !slices.Equal(log.expect, tt.expect) {
				t.Errorf("%d lines over %v, expect %v; want %d over %v, %v", len(log.lines), log.duration(), log.expect, tt.lines, tt.span, tt.expect)
			}
		})
	}
}

func TestRestamp(t *testing.T) {
	now := time.Date(2027, 3, 4, 5, 6, 7, 0, time.Local)
	tests := []struct{ in, want string }{
		{"Nov 25 10:00:00 web1 sshd[1]: Failed password", "Mar  4 05:06:07 web1 sshd[1]: Failed password"},
		{"Nov  5 10:00:00 web1 x", "Mar  4 05:06:07 web1 x"},
		{"2026/11/25 10:00:00 [error] 812#812: *1 user", "2027/03/04 05:06:07 [error] 812#812: *1 user"},
	}
	for _, tt := range tests {
		layout, _, err := stamp(tt.in)
		if err != nil {
			t.Fatalf("%q: %v", tt.in, err)
		}
		if got := (attackLine{text: tt.in, layout: layout}).restamp(now); got != tt.want {
			t.Errorf("restamp(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestReplay(t *testing.T) {
	log, err := parseAttackLog([]byte("a.log\tNov 25 10:00:00 h one\nsub/b.log\t2026/11/25 10:00:00 two\na.log\tNov 25 10:00:01 h three\n"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := log.createFiles(dir); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	if err := log.replay(context.Background(), dir, begin); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(begin); took < time.Second || took > 5*time.Second {
		t.Errorf("the replay of 1 s took %v", took)
	}
	a, _ := os.ReadFile(filepath.Join(dir, "a.log"))
	b, _ := os.ReadFile(filepath.Join(dir, "sub", "b.log"))
	lines := strings.Split(strings.TrimSuffix(string(a), "\n"), "\n")
	if len(lines) != 2 || !strings.HasSuffix(lines[0], " h one") || !strings.HasSuffix(lines[1], " h three") || !strings.HasSuffix(string(b), " two\n") {
		t.Fatalf("a.log:\n%s\nb.log:\n%s", a, b)
	}
	for _, l := range append(lines, strings.TrimSuffix(string(b), "\n")) {
		layout, _, err := stamp(l)
		if err != nil {
			t.Fatal(err)
		}
		at, err := time.ParseInLocation(layout, l[:len(layout)], time.Local)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		if layout == time.Stamp {
			at = at.AddDate(now.Year(), 0, 0)
		}
		if d := now.Sub(at); d < -time.Second || d > 10*time.Second {
			t.Errorf("%q is not stamped with the time it was written (%v ago)", l, d)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	slow, _ := parseAttackLog([]byte("a.log\tNov 25 10:00:00 h one\na.log\tNov 25 10:30:00 h two\n"))
	if err := slow.replay(ctx, dir, time.Now()); err == nil {
		t.Error("a replay went on after its context ended")
	}
}

// TestAttackLogImpliesExpectations runs the example's filters over the
// shipped attack log, stamped as the demo stamps it, and plays fail2ban's
// counting with the example's maxretry and bantime: the bans that come
// out are the log's expectations, and each ends (or does not) before the
// demo takes stock, with a margin that keeps the demo steady on a slow
// machine.
func TestAttackLogImpliesExpectations(t *testing.T) {
	const margin = 4 * time.Second
	dir := t.TempDir()
	if err := ownconfig.WriteExample(dir); err != nil {
		t.Fatal(err)
	}
	log, err := parseAttackLog(ownconfig.AttackLog())
	if err != nil {
		t.Fatal(err)
	}
	jcs, err := config.ReadJails(dir)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	type ban struct {
		jail, ip string
		at, end  time.Duration
	}
	var bans []ban
	var recidive *config.Jail
	for _, jc := range config.EnabledJails(jcs) {
		if jc.Filter.Name == "recidive" {
			recidive = jc
			continue
		}
		if len(jc.LogPath) != 1 {
			t.Fatalf("jail %s: logpath %v", jc.Name, jc.LogPath)
		}
		file, err := filepath.Rel(filepath.Join(dir, "log"), jc.LogPath[0])
		if err != nil {
			t.Fatal(err)
		}
		def, err := filter.Load(dir, jc.Options["filter"], filter.LoadOptions{Backend: jc.Backend})
		if err != nil {
			t.Fatal(err)
		}
		f, err := filter.New(def, filter.Config{Location: time.Local})
		if err != nil {
			t.Fatal(err)
		}
		bantime := seconds(t, jc, "bantime")
		count := map[string]int{}
		until := map[string]time.Duration{}
		lines := 0
		for _, l := range log.lines {
			if l.file != file {
				continue
			}
			lines++
			for _, fl := range f.Process(l.restamp(base.Add(l.at))).Failures {
				if fl.NoFail || fl.ID == "" {
					continue
				}
				at := fl.Time.Sub(base)
				if end, ok := until[fl.ID]; ok && at < end {
					continue // banned: not counted
				}
				if count[fl.ID]++; count[fl.ID] == jc.MaxRetry {
					delete(count, fl.ID)
					until[fl.ID] = at + bantime
					bans = append(bans, ban{jc.Name, fl.ID, at, at + bantime})
				}
			}
		}
		if lines == 0 {
			t.Errorf("jail %s: no line of the attack log goes to its log %s", jc.Name, file)
		}
	}
	if recidive == nil {
		t.Fatal("no recidive jail")
	}
	// recidive: maxretry bans by the other jails (within findtime: the
	// whole log is).
	slices.SortStableFunc(bans, func(a, b ban) int { return cmp.Compare(a.at, b.at) })
	n := map[string]int{}
	for _, b := range slices.Clone(bans) {
		if n[b.ip]++; n[b.ip] == recidive.MaxRetry {
			bans = append(bans, ban{recidive.Name, b.ip, b.at, b.at + seconds(t, recidive, "bantime")})
		}
	}

	// The demo takes stock once the replay is over and settled, and every
	// unban expected has come.
	want := map[[2]string]Expectation{}
	stock := log.duration() + settle
	for _, x := range log.expect {
		want[[2]string{x.Jail, x.IP}] = x
	}
	for _, b := range bans {
		if x, ok := want[[2]string{b.jail, b.ip}]; ok && x.Unbanned {
			stock = max(stock, b.end)
		}
	}
	for _, b := range bans {
		k := [2]string{b.jail, b.ip}
		x, ok := want[k]
		if !ok {
			t.Errorf("%s bans %s at +%v, which the attack log does not expect", b.jail, b.ip, b.at)
			continue
		}
		delete(want, k)
		if !x.Unbanned && b.end < stock+margin {
			t.Errorf("%s's ban of %s ends at +%v, too soon after the demo takes stock (+%v) to be expected still running", b.jail, b.ip, b.end, stock)
		}
	}
	for _, x := range want {
		t.Errorf("the attack log expects %s to ban %s, which its lines do not bring about", x.Jail, x.IP)
	}
	if stock > 20*time.Second {
		t.Errorf("the daemon part takes stock %v after the replay began: too long for the demo's minute", stock)
	}
}

func seconds(t *testing.T, jc *config.Jail, opt string) time.Duration {
	t.Helper()
	s, err := config.Seconds(jc.Options[opt])
	if err != nil {
		t.Fatalf("jail %s: %s: %v", jc.Name, opt, err)
	}
	return time.Duration(s * float64(time.Second))
}

package demo

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDaemonPart runs the daemon part: on the shipped attack log it ends
// with what the log implies; on a log whose expectations are wrong it
// fails, naming the differences.
func TestDaemonPart(t *testing.T) {
	t.Parallel()
	stamp := func(sec int) string {
		return fmt.Sprintf("Nov 25 10:00:%02d h sshd[7]: Failed password for root from ", sec)
	}
	tests := []struct {
		name      string
		attackLog []byte // nil: the shipped one
		timeout   time.Duration
		wantErr   bool
		// wantBanned are the bans at the end, "jail ip where...".
		wantBanned []string
		// wantProblems are in the problems (wantErr).
		wantProblems []string
		// wantEvents are among the events, "Verb jail ip".
		wantEvents []string
		wantFiles  map[string][]string
		// wantRules are the rules at the simulated Cloudflare, "ip notes".
		wantRules []string
	}{
		{
			name: "the shipped attack log", timeout: 45 * time.Second,
			wantBanned: []string{
				"sshd 203.0.113.99 hosts-deny-file: banned/hosts.deny",
				"nginx-http-auth 2001:db8:77::9 nginx-deny-file: banned/nginx-deny.conf cloudflare-token: Cloudflare zone example.com",
				"recidive 203.0.113.10 hosts-deny-file: banned/hosts.deny nginx-deny-file: banned/nginx-deny.conf cloudflare-token: Cloudflare zone example.com",
			},
			// One rule for 203.0.113.10, which nginx-http-auth banned
			// first and recidive still holds after its unban.
			wantRules: []string{"2001:db8:77::9 Fail2Ban nginx-http-auth", "203.0.113.10 Fail2Ban nginx-http-auth"},
			wantEvents: []string{
				"Ban sshd 203.0.113.10", "Ban nginx-http-auth 203.0.113.10", "Ban recidive 203.0.113.10",
				"Unban sshd 203.0.113.10", "Unban nginx-http-auth 203.0.113.10",
				"Ban sshd 2001:db8:5:1::d", "Unban sshd 2001:db8:5:1::d",
			},
			wantFiles: map[string][]string{
				"banned/hosts.deny":      {"ALL: 203.0.113.10", "sshd: 203.0.113.99"},
				"banned/nginx-deny.conf": {"deny 2001:db8:77::9; # edgeban nginx-http-auth", "deny 203.0.113.10; # edgeban recidive"},
			},
		},
		{
			name: "expectations the daemon does not meet", timeout: 6 * time.Second, wantErr: true,
			attackLog: []byte("auth.log\t" + stamp(0) + "192.0.2.1 port 1 ssh2\n" +
				"auth.log\t" + stamp(0) + "192.0.2.1 port 1 ssh2\n" +
				"auth.log\t" + stamp(1) + "192.0.2.1 port 1 ssh2\n" +
				"auth.log\t" + stamp(1) + "192.0.2.2 port 1 ssh2\n" +
				"expect\tsshd\t192.0.2.2\tbanned\n"),
			wantBanned: []string{"sshd 192.0.2.1 hosts-deny-file: banned/hosts.deny"},
			wantEvents: []string{"Ban sshd 192.0.2.1"},
			wantProblems: []string{
				"gave up after 6s waiting for: [sshd] Ban 192.0.2.2",
				"sshd did not ban 192.0.2.2",
				"sshd banned 192.0.2.1 (1 times), which the attack log does not imply",
			},
			wantFiles: map[string][]string{"banned/hosts.deny": {"sshd: 192.0.2.1"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := DefaultDaemonOptions()
			o.Timeout, o.AttackLog, o.Dir = tt.timeout, tt.attackLog, t.TempDir()
			var out bytes.Buffer
			o.Out = &out
			res, err := RunDaemon(context.Background(), o)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want one: %v\n%s", err, tt.wantErr, out.String())
			}
			if res.OK() == tt.wantErr {
				t.Errorf("OK() = %v, problems %q", res.OK(), res.Problems)
			}
			var banned []string
			for _, b := range res.Banned {
				s := b.Jail + " " + b.IP
				for _, p := range b.Where {
					s += " " + p.String()
				}
				banned = append(banned, s)
			}
			if !slices.Equal(banned, tt.wantBanned) {
				t.Errorf("banned at the end:\n%s\nwant:\n%s", strings.Join(banned, "\n"), strings.Join(tt.wantBanned, "\n"))
			}
			var rules []string
			for _, r := range res.Rules {
				rules = append(rules, r.IP+" "+r.Notes)
			}
			slices.Sort(rules)
			if !slices.Equal(rules, tt.wantRules) {
				t.Errorf("rules at cfsim %q, want %q", rules, tt.wantRules)
			}
			var events []string
			for _, e := range res.Events {
				events = append(events, e.Verb()+" "+e.Jail+" "+e.IP)
			}
			for _, e := range tt.wantEvents {
				if !slices.Contains(events, e) {
					t.Errorf("no event %q in %q", e, events)
				}
			}
			for _, p := range tt.wantProblems {
				if !slices.Contains(res.Problems, p) {
					t.Errorf("no problem %q in %q", p, res.Problems)
				}
			}
			if !tt.wantErr && len(res.Problems) > 0 {
				t.Errorf("problems: %q", res.Problems)
			}
			for _, f := range res.Files {
				got := slices.Sorted(slices.Values(f.Lines))
				if want := tt.wantFiles[f.Path]; !slices.Equal(got, want) {
					t.Errorf("%s holds %q, want %q", f.Path, got, want)
				}
			}
			// The bans are in the daemon's log target, which recidive reads.
			logb, err := os.ReadFile(filepath.Join(res.Dir, "log", "edgeban.log"))
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range tt.wantEvents {
				f := strings.Fields(e)
				if line := fmt.Sprintf("NOTICE  [%s] %s %s\n", f[1], f[0], f[2]); !strings.Contains(string(logb), line) {
					t.Errorf("the log target lacks %q:\n%s", line, logb)
				}
			}
			text := out.String()
			for _, s := range []string{"what is banned where", "the files of bans", "FAILURES  BANS  UNBANS  BANNED NOW"} {
				if !strings.Contains(text, s) {
					t.Errorf("the output lacks %q:\n%s", s, text)
				}
			}
			if verdict := "the daemon did exactly what the attack log implies"; strings.Contains(text, verdict) == tt.wantErr {
				t.Errorf("the output has the verdict %q: %v, want %v:\n%s", verdict, !tt.wantErr, tt.wantErr, text)
			}
			if tt.wantErr && !strings.Contains(text, "MISMATCH") {
				t.Errorf("the output lacks the mismatch:\n%s", text)
			}
		})
	}
}

func TestCompare(t *testing.T) {
	ban := func(j, ip string) Event { return Event{Jail: j, IP: ip} }
	unban := func(j, ip string) Event { return Event{Jail: j, IP: ip, Unban: true} }
	expect := []Expectation{{Jail: "sshd", IP: "192.0.2.1", Unbanned: true}, {Jail: "recidive", IP: "192.0.2.1"}}
	tests := []struct {
		name   string
		events []Event
		banned map[string][]string
		want   []string
	}{
		{name: "as expected",
			events: []Event{ban("sshd", "192.0.2.1"), ban("recidive", "192.0.2.1"), unban("sshd", "192.0.2.1")},
			banned: map[string][]string{"recidive": {"192.0.2.1"}}},
		{name: "no ban",
			events: []Event{ban("recidive", "192.0.2.1")},
			banned: map[string][]string{"recidive": {"192.0.2.1"}},
			want:   []string{"sshd did not ban 192.0.2.1"}},
		{name: "no unban",
			events: []Event{ban("sshd", "192.0.2.1"), ban("recidive", "192.0.2.1")},
			banned: map[string][]string{"sshd": {"192.0.2.1"}, "recidive": {"192.0.2.1"}},
			want:   []string{"sshd did not unban 192.0.2.1 when its bantime was up"}},
		{name: "unbanned yet held",
			events: []Event{ban("sshd", "192.0.2.1"), ban("recidive", "192.0.2.1"), unban("sshd", "192.0.2.1")},
			banned: map[string][]string{"sshd": {"192.0.2.1"}, "recidive": {"192.0.2.1"}},
			want:   []string{"sshd still bans 192.0.2.1 at the end"}},
		{name: "a ban that ended early",
			events: []Event{ban("sshd", "192.0.2.1"), ban("recidive", "192.0.2.1"), unban("sshd", "192.0.2.1"), unban("recidive", "192.0.2.1")},
			want:   []string{"recidive unbanned 192.0.2.1 before the end"}},
		{name: "a ban not held at the end",
			events: []Event{ban("sshd", "192.0.2.1"), ban("recidive", "192.0.2.1"), unban("sshd", "192.0.2.1")},
			want:   []string{"recidive does not ban 192.0.2.1 at the end"}},
		{name: "banned twice",
			events: []Event{ban("sshd", "192.0.2.1"), unban("sshd", "192.0.2.1"), ban("sshd", "192.0.2.1"), ban("recidive", "192.0.2.1"), unban("sshd", "192.0.2.1")},
			banned: map[string][]string{"recidive": {"192.0.2.1"}},
			want:   []string{"sshd banned 192.0.2.1 2 times, not once"}},
		{name: "bans not expected",
			events: []Event{ban("sshd", "192.0.2.1"), ban("recidive", "192.0.2.1"), unban("sshd", "192.0.2.1"), ban("nginx-http-auth", "192.0.2.9")},
			banned: map[string][]string{"recidive": {"192.0.2.1"}, "nginx-http-auth": {"192.0.2.9"}, "sshd": {"192.0.2.8"}},
			want: []string{
				"nginx-http-auth banned 192.0.2.9 (1 times), which the attack log does not imply",
				"sshd bans 192.0.2.8 at the end, which the attack log does not imply",
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := compare(expect, tt.events, tt.banned); !slices.Equal(got, tt.want) {
				t.Errorf("compare:\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestPlaceBans(t *testing.T) {
	places := map[string][]Placement{
		"sshd":     {{Action: "hosts", File: "banned/hosts.deny"}},
		"recidive": {{Action: "hosts", File: "banned/hosts.deny"}, {Action: "mail"}},
	}
	jails := []string{"sshd", "recidive"}
	tests := []struct {
		name   string
		file   string // hosts.deny's content
		banned map[string][]string
		want   []string
	}{
		{name: "one line per jail banning",
			file:   "sshd: 192.0.2.1\nALL: 192.0.2.1\nsshd: 2001:db8::1\n",
			banned: map[string][]string{"sshd": {"192.0.2.1", "2001:db8::1"}, "recidive": {"192.0.2.1"}}},
		{name: "a line left behind",
			file:   "sshd: 192.0.2.1\nALL: 192.0.2.1\n",
			banned: map[string][]string{"recidive": {"192.0.2.1"}},
			want:   []string{"banned/hosts.deny holds 192.0.2.1 2 time(s); the bans running put it there 1 time(s)"}},
		{name: "a line missing",
			file:   "ALL: 192.0.2.1\n",
			banned: map[string][]string{"sshd": {"192.0.2.1", "192.0.2.2"}, "recidive": {"192.0.2.1"}},
			want: []string{
				"banned/hosts.deny holds 192.0.2.1 1 time(s); the bans running put it there 2 time(s)",
				"banned/hosts.deny holds 192.0.2.2 0 time(s); the bans running put it there 1 time(s)",
			}},
		{name: "an address nobody bans",
			file: "sshd: 192.0.2.7\n",
			want: []string{"banned/hosts.deny holds 192.0.2.7 1 time(s); the bans running put it there 0 time(s)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			os.MkdirAll(filepath.Join(dir, "banned"), 0o755)
			if err := os.WriteFile(filepath.Join(dir, "banned", "hosts.deny"), []byte(tt.file), 0o644); err != nil {
				t.Fatal(err)
			}
			rows, files, problems, err := placeBans(dir, jails, places, tt.banned)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(problems, tt.want) {
				t.Errorf("problems:\n%q\nwant\n%q", problems, tt.want)
			}
			if n := len(tt.banned["sshd"]) + len(tt.banned["recidive"]); len(rows) != n {
				t.Errorf("%d rows, want %d", len(rows), n)
			}
			if len(files) != 1 || strings.Join(files[0].Lines, "\n")+"\n" != tt.file {
				t.Errorf("files %q", files)
			}
		})
	}
}

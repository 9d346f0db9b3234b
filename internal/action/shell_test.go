package action

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeban/edgeban/internal/config"
	"github.com/edgeban/edgeban/internal/sharedtest"
)

// shellAction writes action.d/<name>.conf into a new config dir and
// loads it for jail "sshd"; $LOG in content is the log the commands
// append to.
func shellAction(t *testing.T, name, content string) (*Shell, string) {
	t.Helper()
	dir := t.TempDir()
	log := filepath.Join(dir, "calls.log")
	if err := os.MkdirAll(filepath.Join(dir, "action.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	content = strings.ReplaceAll(content, "$LOG", log)
	content = strings.ReplaceAll(content, "$DIR", dir)
	if err := os.WriteFile(filepath.Join(dir, "action.d", name+".conf"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	spec, err := config.ParseSpec(name + "[port=ssh]")
	if err != nil {
		t.Fatal(err)
	}
	def, err := Load(dir, "sshd", spec)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewShell(def)
	if err != nil {
		t.Fatal(err)
	}
	return s, log
}

func calls(t *testing.T, log string) string {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

func TestShellLifecycle(t *testing.T) {
	ctx := context.Background()
	s, log := shellAction(t, "note", `[Definition]
actionstart = echo start <name> <port> >> $LOG
actionban = echo ban <ip> <family> <failures> <bantime> <F-USER> >> $LOG
actionunban = echo unban <ip> >> $LOG
actionflush = echo flush >> $LOG
actionstop = echo stop >> $LOG
`)
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	tk := Ticket{IP: "192.0.2.1", Time: time.Unix(1_700_000_000, 0), BanTime: 10 * time.Minute, Failures: 5,
		Fields: map[string]string{"user": `$(touch $DIR/pwned);'"`}}
	if err := s.Ban(ctx, tk); err != nil {
		t.Fatal(err)
	}
	if err := s.Unban(ctx, tk); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	want := "start sshd ssh\nban 192.0.2.1 inet4 5 600 $(touch $DIR/pwned);'\"\nunban 192.0.2.1\nflush\nstop\n"
	if got := calls(t, log); got != want {
		t.Fatalf("calls:\n%s\nwant:\n%s", got, want)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(log), "pwned")); err == nil {
		t.Fatal("the user name ran")
	}
}

func TestShellStartsPerFamily(t *testing.T) {
	ctx := context.Background()
	s, log := shellAction(t, "sets", `[Definition]
actionstart = echo start <family> <set> >> $LOG
actionban = echo ban <ip> <set> >> $LOG
actionunban = echo unban <ip> <set> >> $LOG
actionstop = echo stop <set> >> $LOG
[Init]
set = v4-<name>
[Init?family=inet6]
set = v6-<name>
`)
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for _, ip := range []string{"2001:db8::1", "192.0.2.1", "2001:db8::2", "::ffff:192.0.2.2"} {
		if err := s.Ban(ctx, Ticket{IP: ip}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	want := "start inet6 v6-sshd\nban 2001:db8::1 v6-sshd\nstart inet4 v4-sshd\nban 192.0.2.1 v4-sshd\nban 2001:db8::2 v6-sshd\nban ::ffff:192.0.2.2 v4-sshd\nstop v4-sshd\nstop v6-sshd\n"
	if got := calls(t, log); got != want {
		t.Fatalf("calls:\n%s\nwant:\n%s", got, want)
	}
}

func TestShellRepairsAFailedBan(t *testing.T) {
	ctx := context.Background()
	s, log := shellAction(t, "fragile", `[Definition]
actionban = test -f $DIR/ready && echo ban <ip> >> $LOG
actioncheck = echo check >> $LOG; test -f $DIR/ready
actionrepair = echo repair >> $LOG; touch $DIR/ready
`)
	if err := s.Ban(ctx, Ticket{IP: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	if got, want := calls(t, log), "check\nrepair\nban 192.0.2.1\n"; got != want {
		t.Fatalf("calls %q, want %q", got, want)
	}

	broken, log2 := shellAction(t, "broken", `[Definition]
actionban = echo nope >&2; exit 4
actioncheck = echo check >> $LOG; exit 1
actionstart = echo start >> $LOG
actionstop = echo stop >> $LOG
`)
	err := broken.Ban(ctx, Ticket{IP: "192.0.2.1"})
	if err == nil || !strings.Contains(err.Error(), "exit status 4: nope") {
		t.Fatalf("error %v", err)
	}
	if got, want := calls(t, log2), "check\nstop\nstart\n"; got != want {
		t.Fatalf("calls %q, want %q", got, want)
	}
	if _, err := shellAction2(t, `[Definition]
timeout = soon
`); err == nil {
		t.Fatal("bad timeout accepted")
	}
}

func shellAction2(t *testing.T, content string) (*Shell, error) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "action.d"), 0o755)
	os.WriteFile(filepath.Join(dir, "action.d", "x.conf"), []byte(content), 0o644)
	def, err := Load(dir, "sshd", config.Spec{Name: "x"})
	if err != nil {
		return nil, err
	}
	return NewShell(def)
}

// TestShellStockNftables resolves fail2ban's stock nftables action for
// both families: the inet6 commands use the inet6 set.
func TestShellStockNftables(t *testing.T) {
	spec, err := config.ParseSpec(`nftables[port="ssh", protocol="tcp"]`)
	if err != nil {
		t.Fatal(err)
	}
	def, err := Load(sharedtest.Path(t, "fail2ban/config"), "sshd", spec)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewShell(def)
	if err != nil {
		t.Fatal(err)
	}
	if !s.onDemand {
		t.Error("nftables has ?family= options: it starts per family")
	}
	for family, want := range map[string]string{
		"inet4": `nft add element inet f2b-table addr-set-sshd \{ <ip> \}`,
		"inet6": `nft add element inet f2b-table addr6-set-sshd \{ <ip> \}`,
	} {
		c, err := s.resolved(family)
		if err != nil {
			t.Fatal(err)
		}
		if c["actionban"] != want {
			t.Errorf("%s actionban %q, want %q", family, c["actionban"], want)
		}
	}
}

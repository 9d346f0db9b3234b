package jail

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// hosts is a resolver for tests that reads a fixed table: the network
// the real DNS would need is not there.
type hosts map[string][]string

func (h hosts) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, s := range h[host] {
		out = append(out, netip.MustParseAddr(s))
	}
	if len(out) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return out, nil
}

func TestIgnoreRules(t *testing.T) {
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	// The command records each run with its arguments, and ignores what
	// comes from 198.51.100.0/24; 203.0.113.9 makes it fail.
	command := `printf '%s %s\n' <ip> "<F-USER>" >> ` + runs + `; case <ip> in 198.51.100.*) exit 0;; 203.0.113.9) exit 3;; *) exit 1;; esac`
	list, err := ParseIgnoreIP("192.0.2.0/24 trusted.example")
	if err != nil {
		t.Fatal(err)
	}
	var ifaceAddr string
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && !p.Addr().IsLoopback() {
				ifaceAddr = p.Addr().String()
				break
			}
		}
	}
	tests := []struct {
		name     string
		rules    *IgnoreRules
		id, user string
		want     string // the rule that ignores it, or ""
	}{
		{"nothing", &IgnoreRules{}, "192.0.2.1", "", ""},
		{"ignoreip network", &IgnoreRules{List: list}, "192.0.2.77", "", "ignoreip"},
		{"ignoreip host name", &IgnoreRules{List: list, Resolver: hosts{"trusted.example": {"203.0.113.50"}}}, "203.0.113.50", "", "ignoreip"},
		{"ignoreself loopback", &IgnoreRules{Self: true}, "127.0.0.1", "", "ignoreself"},
		{"ignoreself ::1", &IgnoreRules{Self: true}, "::1", "", "ignoreself"},
		{"ignoreself off", &IgnoreRules{}, "127.0.0.1", "", ""},
		{"ignoreself before ignoreip", &IgnoreRules{Self: true, List: list}, "127.0.0.1", "", "ignoreself"},
		{"ignorecommand exit 0", &IgnoreRules{Command: command}, "198.51.100.4", "alice", "ignorecommand"},
		{"ignorecommand exit 1", &IgnoreRules{Command: command}, "192.0.2.5", "bob", ""},
		{"ignorecommand fails", &IgnoreRules{Command: command}, "203.0.113.9", "x", ""},
		{"ignoreip before ignorecommand", &IgnoreRules{List: list, Command: command}, "192.0.2.6", "never-run", "ignoreip"},
		{"attacker text stays text", &IgnoreRules{Command: command}, "192.0.2.7", `$(touch ` + dir + `/pwned);'"`, ""},
	}
	if ifaceAddr != "" {
		tests = append(tests, struct {
			name     string
			rules    *IgnoreRules
			id, user string
			want     string
		}{"ignoreself interface address", &IgnoreRules{Self: true}, ifaceAddr, "", "ignoreself"})
	}
	log := slog.New(slog.DiscardHandler)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ignored, rule := tt.rules.Ignored(context.Background(), log, tt.id, map[string]string{"user": tt.user})
			if ignored != (tt.want != "") || rule != tt.want {
				t.Fatalf("Ignored(%s) = %v %q, want %q", tt.id, ignored, rule, tt.want)
			}
		})
	}
	got, _ := os.ReadFile(runs)
	want := "198.51.100.4 alice\n192.0.2.5 bob\n203.0.113.9 x\n192.0.2.7 $(touch " + dir + "/pwned);'\"\n"
	if string(got) != want {
		t.Errorf("ignorecommand runs:\n%s\nwant:\n%s", got, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "pwned")); !errors.Is(err, os.ErrNotExist) {
		t.Error("the user name ran as a command")
	}
}

func TestIgnoreCache(t *testing.T) {
	runs := filepath.Join(t.TempDir(), "runs")
	cache, err := ParseIgnoreCache(`key="<F-USER>@<ip>", max-count=2, max-time=1m`)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	cache.now = func() time.Time { return now }
	r := IgnoreRules{Command: `echo <ip> >> ` + runs + `; [ <F-USER> = friend ]`, Cache: cache}
	steps := []struct {
		advance  time.Duration
		id, user string
		ignored  bool
		runs     int // command runs so far
	}{
		{0, "192.0.2.1", "friend", true, 1},
		{0, "192.0.2.1", "friend", true, 1}, // cached
		{0, "192.0.2.1", "foe", false, 2},   // another key
		{0, "192.0.2.1", "foe", false, 2},
		{30 * time.Second, "192.0.2.2", "foe", false, 3}, // a third key evicts the oldest (friend@...1)
		{0, "192.0.2.1", "friend", true, 4},
		{61 * time.Second, "192.0.2.1", "friend", true, 5}, // expired
	}
	for i, st := range steps {
		now = now.Add(st.advance)
		ignored, _ := r.Ignored(context.Background(), slog.New(slog.DiscardHandler), st.id, map[string]string{"user": st.user})
		b, _ := os.ReadFile(runs)
		if n := bytes.Count(b, []byte("\n")); ignored != st.ignored || n != st.runs {
			t.Fatalf("step %d: ignored %v after %d runs, want %v after %d", i, ignored, n, st.ignored, st.runs)
		}
	}
}

func TestParseIgnoreCache(t *testing.T) {
	tests := []struct {
		value   string
		key     string
		count   int
		maxTime time.Duration
		wantErr string
	}{
		{"", "", 0, 0, ""},
		{`key="<ip>", max-count=100, max-time=5m`, "<ip>", 100, 5 * time.Minute, ""},
		{`max-time=1h`, "<ip>", 100, time.Hour, ""},
		{`key="<F-USER>@<ip>"`, "<F-USER>@<ip>", 100, 5 * time.Minute, ""},
		{`max-count=0`, "", 0, 0, "max-count"},
		{`max-time=soon`, "", 0, 0, "max-time"},
		{`size=3`, "", 0, 0, `unknown option "size"`},
	}
	for _, tt := range tests {
		c, err := ParseIgnoreCache(tt.value)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: error %v, want %q", tt.value, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.value, err)
			continue
		}
		if tt.key == "" {
			if c != nil {
				t.Errorf("%q: a cache", tt.value)
			}
			continue
		}
		if c.key != tt.key || c.maxCount != tt.count || c.maxTime != tt.maxTime {
			t.Errorf("%q: %q %d %v", tt.value, c.key, c.maxCount, c.maxTime)
		}
	}
}

func TestResolveID(t *testing.T) {
	r := hosts{"mail.example": {"192.0.2.10", "::ffff:192.0.2.10", "2001:db8::10"}}
	tests := []struct {
		useDNS, id string
		resolver   Resolver
		want       []string
		warns      int
	}{
		{"yes", "192.0.2.1", r, []string{"192.0.2.1"}, 0},
		{"no", "192.0.2.1", r, []string{"192.0.2.1"}, 0},
		{"yes", "mail.example", r, []string{"192.0.2.10", "2001:db8::10"}, 0},
		{"warn", "mail.example", r, []string{"192.0.2.10", "2001:db8::10"}, 1},
		{"raw", "mail.example", r, []string{"mail.example"}, 0},
		{"no", "mail.example", r, nil, 0},
		{"yes", "gone.example", r, nil, 1},
		{"yes", "localhost", nil, nil, 0}, // the system's resolver, from /etc/hosts
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		got := ResolveID(context.Background(), slog.New(slog.NewTextHandler(&buf, nil)), tt.resolver, tt.useDNS, tt.id)
		if tt.id == "localhost" {
			if !slices.Contains(got, "127.0.0.1") && !slices.Contains(got, "::1") {
				t.Errorf("localhost: %v", got)
			}
			continue
		}
		if !slices.Equal(got, tt.want) || strings.Count(buf.String(), "level=WARN") != tt.warns {
			t.Errorf("%s %s: %v, want %v; log:\n%s", tt.useDNS, tt.id, got, tt.want, buf.String())
		}
	}
}

// TestProxyWarning feeds failures from a proxy's network and from
// clients: the proxy's addresses are never banned, and the warning comes
// once, when ProxyMin of them are at least half of the failures.
func TestProxyWarning(t *testing.T) {
	tests := []struct {
		name     string
		proxied  int // failures from the proxy, after...
		clients  int // ...failures from clients
		wantWarn int
	}{
		{"few", ProxyMin - 1, 0, 0},
		{"many", ProxyMin, 0, 1},
		{"many more, still once", 5 * ProxyMin, 0, 1},
		{"a minority", ProxyMin, 3 * ProxyMin, 0},
		{"half", ProxyMin, ProxyMin, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &IgnoreRules{Proxies: []netip.Prefix{netip.MustParsePrefix("173.245.48.0/20"), netip.MustParsePrefix("2400:cb00::/32")},
				ProxyWarning: "the server logs the proxy"}
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, nil))
			for i := range tt.clients {
				id := netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}).String()
				if ignored, _ := r.Ignored(context.Background(), log, id, nil); ignored {
					t.Fatalf("client %s ignored", id)
				}
			}
			for i := range tt.proxied {
				id := netip.AddrFrom4([4]byte{173, 245, 48, byte(i)}).String()
				if i%2 == 1 {
					id = "2400:cb00::" + strconv.Itoa(i)
				}
				if ignored, rule := r.Ignored(context.Background(), log, id, nil); !ignored || rule != "proxy" {
					t.Fatalf("proxy address %s: %v %q", id, ignored, rule)
				}
			}
			if n := strings.Count(buf.String(), "the server logs the proxy"); n != tt.wantWarn {
				t.Fatalf("%d warnings, want %d:\n%s", n, tt.wantWarn, buf.String())
			}
		})
	}
}

package daemon

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeban/edgeban/internal/cloudflare/cfsim"
	"github.com/edgeban/edgeban/internal/source"
	"github.com/edgeban/edgeban/internal/store"
)

func writeConf(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(strings.ReplaceAll(content, "$DIR", dir)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// runDaemon loads the configuration in dir with a database of its own and
// runs it until the test ends, failing the test if Run returns an error.
// log nil discards the daemon's log.
func runDaemon(t *testing.T, dir string, log *slog.Logger) (context.Context, *Daemon) {
	t.Helper()
	return runDaemonWith(t, dir, Options{Log: log}, "")
}

// runDaemonWith is runDaemon with options (Store is set to the daemon's
// database), failing the test unless Run's error contains wantErr ("":
// no error).
func runDaemonWith(t *testing.T, dir string, opts Options, wantErr string) (context.Context, *Daemon) {
	t.Helper()
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	db, err := store.Open(context.Background(), filepath.Join(dir, "e.db"))
	if err != nil {
		t.Fatal(err)
	}
	opts.Store = db
	d, err := Load(dir, opts)
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		err := <-done
		if wantErr == "" && err != nil || wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)) {
			t.Errorf("Run: %v, want an error containing %q", err, wantErr)
		}
		db.Close()
	})
	return ctx, d
}

// loadCase is a jail.local and what Load makes of it: the jails it
// runs, or an error.
type loadCase struct {
	name      string
	local     string
	wantJails string
	wantErr   string
}

func TestLoad(t *testing.T) {
	testLoad(t, []loadCase{
		{"a file jail", "[app]\nenabled = true\nfilter = app\nlogpath = $DIR/app.log\n", "app", ""},
		{"missing filter", "[app]\nenabled = true\nfilter = nosuch\nlogpath = $DIR/app.log\n", "", `jail "app"`},
		{"bad bantime", "[app]\nenabled = true\nfilter = app\nlogpath = $DIR/app.log\nbantime = soon\n", "", `jail.local:5: jail "app": option "bantime"`},
		{"bad ignoreip", "[app]\nenabled = true\nfilter = app\nlogpath = $DIR/app.log\nignoreip = 10.0.0.0/40\n", "", `jail.local:5: jail "app"`},
		{"bad usedns", "[app]\nenabled = true\nfilter = app\nlogpath = $DIR/app.log\nusedns = maybe\n", "", `jail.local:5: jail "app": option "usedns"`},
		{"bad ignoreself", "[app]\nenabled = true\nfilter = app\nlogpath = $DIR/app.log\nignoreself = perhaps\n", "", `jail.local:5: jail "app": option "ignoreself"`},
		{"bad ignorecache", "[app]\nenabled = true\nfilter = app\nlogpath = $DIR/app.log\nignorecache = max-count=none\n", "", `jail.local:5: jail "app": option "ignorecache"`},
		{"no log and no journal", "[app]\nenabled = true\nfilter = app\nlogpath = $DIR/none-*.log\n", "", "no log file"},
	})
}

// TestLoadJournal loads journal jails: backend = systemd, and backend =
// auto without a log file when the filter has a journalmatch (a missing
// file named without a glob too, as fail2ban 1.1 does).
func TestLoadJournal(t *testing.T) {
	if _, err := source.Journalctl(); err != nil {
		t.Skipf("needs journalctl for the journal jails: %v", err)
	}
	testLoad(t, []loadCase{
		{"journal jails", "[a]\nenabled = true\nfilter = j\nlogpath = $DIR/none-*.log\n[b]\nenabled = true\nbackend = systemd\nfilter = app\n[c]\nenabled = true\nfilter = app\nlogpath = $DIR/app.log\n" +
			"[d]\nenabled = true\nfilter = j\nlogpath = $DIR/none.log\n[e]\nenabled = true\nfilter = j\nbackend = systemd[journalpath=$DIR, journalflags=4]\n", "a,b,c,d,e", ""},
		{"bad journalflags", "[b]\nenabled = true\nfilter = j\nbackend = systemd[journalflags=every]\n", "", `jail.local:4: jail "b": option "backend": journalflags "every" is not an integer`},
		{"journalflags with journalfiles", "[b]\nenabled = true\nfilter = j\nbackend = systemd[journalfiles=/x, journalflags=4]\n", "", `jail.local:4: jail "b": option "backend": journalflags cannot be used with journalfiles`},
		{"unknown backend option", "[b]\nenabled = true\nfilter = j\nbackend = systemd[journaldir=/x]\n", "", `systemd has no option "journaldir"`},
		{"journalmatch not FIELD=VALUE", "[b]\nenabled = true\nfilter = badmatch\nbackend = systemd\n", "", `badmatch.conf:3: jail "b": journalmatch "sshd": not FIELD=VALUE`},
	})
}

func testLoad(t *testing.T, tests []loadCase) {
	base := map[string]string{
		"filter.d/app.conf":      "[Definition]\nfailregex = ^fail from <HOST>$\n",
		"filter.d/badmatch.conf": "[Definition]\nfailregex = ^fail from <HOST>$\njournalmatch = sshd\n",
		"filter.d/j.conf":        "[Definition]\nfailregex = ^fail from <HOST>$\njournalmatch = _SYSTEMD_UNIT=j.service\n",
		"action.d/note.conf":     "[Definition]\nactionban = true\n",
		"jail.conf":              "[DEFAULT]\naction = note\n",
	}

	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "e.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{"jail.local": tt.local}
			for k, v := range base {
				files[k] = v
			}
			d, err := Load(writeConf(t, files), Options{Store: db, Log: slog.New(slog.DiscardHandler)})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(d.Jails(), ","); got != tt.wantJails {
				t.Fatalf("jails %q, want %q", got, tt.wantJails)
			}
		})
	}
}

func TestHandleGrammar(t *testing.T) {
	dir := writeConf(t, map[string]string{
		"filter.d/app.conf":  "[Definition]\nfailregex = ^fail from <HOST>$\n",
		"action.d/note.conf": "[Definition]\nactionban = true\n",
		"jail.local":         "[app]\nenabled = true\nfilter = app\naction = note\nlogpath = $DIR/app.log\n",
	})
	ctx, d := runDaemon(t, dir, nil)
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"ping"}, ""},
		{[]string{"status"}, ""},
		{[]string{"status", "app"}, ""},
		{[]string{"status", "nosuch"}, `unknown jail "nosuch" (jails: app)`},
		{[]string{"set", "app", "banip", "192.0.2.1", "192.0.2.2"}, ""},
		{[]string{"set", "app", "banip", "192.0.2.1"}, "already banned"},
		{[]string{"get", "app", "banip"}, ""},
		{[]string{"set", "app", "unbanip", "192.0.2.1"}, ""},
		{[]string{"unban", "203.0.113.1"}, "not banned in any jail"},
		{[]string{"unban", "--all"}, ""},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"set", "app", "bantime"}, "unknown command"},
	}
	for _, tt := range tests {
		_, err := d.Handle(ctx, tt.args)
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%q: error %v, want %q", tt.args, err, tt.wantErr)
		}
	}
	if v, _ := d.Handle(ctx, []string{"banned"}); len(v.(map[string][]string)) != 0 {
		t.Errorf("banned after unban --all: %v", v)
	}
}

// TestReload runs a daemon through a series of configuration changes,
// each followed by a reload, and checks what each did to the jails and
// that bans survive a jail's restart.
func TestReload(t *testing.T) {
	const (
		app   = "[app]\nenabled = true\nfilter = app\naction = note\nlogpath = $DIR/app.log\n"
		other = "[other]\nenabled = true\nfilter = app\naction = note\nlogpath = $DIR/other.log\n"
	)
	dir := writeConf(t, map[string]string{
		"filter.d/app.conf":  "[Definition]\nfailregex = ^fail from <HOST>$\n",
		"action.d/note.conf": "[Definition]\nactionstart = echo start <name> >> $DIR/calls\nactionban = true\nactionstop = echo stop <name> >> $DIR/calls\n",
		"jail.local":         app,
	})
	ctx, d := runDaemon(t, dir, nil)
	if _, err := d.Handle(ctx, []string{"set", "app", "banip", "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name    string
		local   string // jail.local before the reload; "" keeps it
		args    []string
		want    ReloadResult
		jails   string
		wantErr string
	}{
		{"nothing changed", "", []string{"reload"}, ReloadResult{Kept: []string{"app"}}, "app", ""},
		{"a jail added", app + other, []string{"reload"}, ReloadResult{Started: []string{"other"}, Kept: []string{"app"}}, "app,other", ""},
		{"a jail changed", strings.Replace(app, "enabled", "bantime = 1h\nenabled", 1) + other, []string{"reload"},
			ReloadResult{Restarted: []string{"app"}, Kept: []string{"other"}}, "app,other", ""},
		{"one jail restarted by name", "", []string{"reload", "--restart", "other"}, ReloadResult{Restarted: []string{"other"}}, "app,other", ""},
		{"a syntax error changes nothing", "[app\nenabled = true\n", []string{"reload"}, ReloadResult{}, "app,other", "jail.local:1"},
		{"an unknown jail", app + other, []string{"reload", "nosuch"}, ReloadResult{}, "app,other", `unknown jail "nosuch"`},
		{"a jail disabled", strings.Replace(app, "enabled = true", "enabled = false", 1) + other, []string{"reload"},
			ReloadResult{Stopped: []string{"app"}, Kept: []string{"other"}}, "other", ""},
		{"enabled again", app + other, []string{"reload", "app"}, ReloadResult{Started: []string{"app"}}, "other,app", ""},
	}
	for _, st := range steps {
		if st.local != "" {
			if err := os.WriteFile(filepath.Join(dir, "jail.local"), []byte(strings.ReplaceAll(st.local, "$DIR", dir)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		res, err := d.Handle(ctx, st.args)
		if st.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), st.wantErr) {
				t.Fatalf("%s: error %v, want %q", st.name, err, st.wantErr)
			}
		} else if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		} else if got := res.(ReloadResult); !reflect.DeepEqual(got, st.want) {
			t.Fatalf("%s: %+v, want %+v", st.name, got, st.want)
		}
		if got := strings.Join(d.Jails(), ","); got != st.jails {
			t.Fatalf("%s: jails %s, want %s", st.name, got, st.jails)
		}
		// The ban made at the start lives through every restart of app.
		if v, _ := d.Handle(ctx, []string{"banned", "192.0.2.1"}); strings.Contains(st.jails, "app") && len(v.(map[string][]string)["app"]) != 1 {
			t.Fatalf("%s: the ban was lost: %v", st.name, v)
		}
	}
	calls, _ := os.ReadFile(filepath.Join(dir, "calls"))
	want := "start app\nstart other\nstop app\nstart app\nstop other\nstart other\nstop app\nstart app\n"
	if string(calls) != want {
		t.Fatalf("action calls:\n%s\nwant:\n%s", calls, want)
	}
}

// TestJailOptions runs a jail per case on a log of failures from one
// host, written as a name or an address, and checks what it bans: the
// wiring of usedns, ignoreself, ignoreip, ignorecommand and ignorecache
// from the jail's options to the running jail.
func TestJailOptions(t *testing.T) {
	tests := []struct {
		name    string
		options string
		host    string
		want    string // the banned id, or "" for none
	}{
		{"an address", "ignoreself = false\n", "192.0.2.9", "192.0.2.9"},
		{"usedns yes resolves", "usedns = yes\nignoreself = false\n", "localhost", "127.0.0.1"},
		{"usedns raw keeps the name", "usedns = raw\n", "localhost", "localhost"},
		{"usedns no drops names", "usedns = no\nignoreself = false\n", "localhost", ""},
		{"ignoreself by default", "", "127.0.0.1", ""},
		{"ignoreself after usedns", "usedns = yes\n", "localhost", ""},
		{"ignoreip", "ignoreip = 192.0.2.0/24\n", "192.0.2.9", ""},
		{"ignorecommand ignores", "ignorecommand = test <ip> = 192.0.2.9\n", "192.0.2.9", ""},
		{"ignorecommand does not", "ignorecommand = test <ip> = 192.0.2.10\nignorecache = max-time=1h\n", "192.0.2.9", "192.0.2.9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeConf(t, map[string]string{
				"filter.d/app.conf":  "[Definition]\nfailregex = ^\\s*fail from <HOST>$\n",
				"action.d/note.conf": "[Definition]\nactionban = echo <ip> >> $DIR/bans\n",
				"jail.local":         "[app]\nenabled = true\nfilter = app\naction = note\nmaxretry = 2\nlogpath = $DIR/app.log\n" + tt.options,
				"app.log":            "",
			})
			ctx, d := runDaemon(t, dir, nil)
			// Once the jail is ready, it follows the log.
			if _, err := d.Handle(ctx, []string{"get", "app", "banip"}); err != nil {
				t.Fatal(err)
			}
			j, _ := d.jail("app")
			<-j.Ready()
			f, err := os.OpenFile(filepath.Join(dir, "app.log"), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			// Three failures, then a line from a host that is banned at
			// once: when its ban shows, the lines before it were handled.
			now := time.Now().Format("2006-01-02 15:04:05")
			for _, h := range []string{tt.host, tt.host, tt.host, "203.0.113.1", "203.0.113.1"} {
				fmt.Fprintf(f, "%s fail from %s\n", now, h)
			}
			f.Close()
			deadline := time.Now().Add(10 * time.Second)
			var banned []string
			for {
				banned = nil
				for _, b := range j.Status().Banned {
					banned = append(banned, b.IP)
				}
				if slices.Contains(banned, "203.0.113.1") || time.Now().After(deadline) {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			want := []string{"203.0.113.1"}
			if tt.want != "" {
				want = append(want, tt.want)
				slices.Sort(want)
			}
			if !slices.Equal(banned, want) {
				t.Fatalf("banned %v, want %v", banned, want)
			}
		})
	}
}

// TestLogpathTail starts jails on a log that already holds failures:
// with "logpath = PATH tail" they are not read, with head (the default)
// they are, as in fail2ban.
func TestLogpathTail(t *testing.T) {
	for _, tt := range []struct {
		mode   string
		banned bool
	}{{"", true}, {" head", true}, {" tail", false}} {
		t.Run("logpath"+tt.mode, func(t *testing.T) {
			now := time.Now().Format("2006-01-02 15:04:05")
			dir := writeConf(t, map[string]string{
				"filter.d/app.conf":  "[Definition]\nfailregex = ^\\s*fail from <HOST>$\n",
				"action.d/note.conf": "[Definition]\nactionban = true\n",
				"jail.local":         "[app]\nenabled = true\nfilter = app\naction = note\nmaxretry = 2\nlogpath = $DIR/app.log" + tt.mode + "\n",
				"app.log":            now + " fail from 192.0.2.1\n" + now + " fail from 192.0.2.1\n",
			})
			_, d := runDaemon(t, dir, nil)
			j, _ := d.jail("app")
			<-j.Ready()
			// A new attacker after the start: once it is banned, the old
			// lines were read, or skipped. Its lines go on until then: a
			// tail that opens the file after a line was written skips it.
			deadline := time.Now().Add(10 * time.Second)
			for {
				f, _ := os.OpenFile(filepath.Join(dir, "app.log"), os.O_APPEND|os.O_WRONLY, 0)
				fmt.Fprintf(f, "%s fail from 203.0.113.1\n", now)
				f.Close()
				st := j.Status()
				var ips []string
				for _, b := range st.Banned {
					ips = append(ips, b.IP)
				}
				if slices.Contains(ips, "203.0.113.1") {
					if got := slices.Contains(ips, "192.0.2.1"); got != tt.banned {
						t.Fatalf("the address in the log before the start banned: %v, want %v", got, tt.banned)
					}
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("no ban of the new attacker: %v", ips)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// lockedBuffer is a bytes.Buffer safe for the daemon's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestRealIPWarning runs a jail that bans at Cloudflare on an nginx
// access log whose clients are mostly Cloudflare's own addresses, as a
// server that does not restore the client's address logs them: none of
// those is banned, the jail warns once with the fix, and the one real
// client is banned.
func TestRealIPWarning(t *testing.T) {
	sim := cfsim.New(cfsim.Config{Tokens: []cfsim.Token{{Value: "tok-realip-0123456789"}}, Seed: 3})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close) // after the daemon's cleanup: its worker talks to it
	dir := writeConf(t, map[string]string{
		"filter.d/wp.conf": "[Definition]\nfailregex = ^<HOST> - \\S+ \\[.*\\] \"(?:GET|POST) /wp-login\\.php\n",
		"jail.local": "[wp]\nenabled = true\nfilter = wp\nmaxretry = 2\nlogpath = $DIR/access.log\n" +
			"action = cloudflare-token[cfzone=example.com, cftoken=tok-realip-0123456789, cfapi=\"" + srv.URL + "/client/v4\"]\n",
		"access.log": "",
	})
	var logged lockedBuffer
	_, d := runDaemon(t, dir, slog.New(slog.NewTextHandler(&logged, nil)))
	j, _ := d.jail("wp")
	<-j.Ready()
	f, err := os.OpenFile(filepath.Join(dir, "access.log"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Format("02/Jan/2006:15:04:05 -0700")
	proxies := []string{"172.68.1.10", "172.70.33.2", "162.158.4.4", "104.23.9.9", "2400:cb00:2049:1::a2f"}
	for i := range 40 {
		fmt.Fprintf(f, "%s - - [%s] \"POST /wp-login.php HTTP/1.1\" 200 512 \"-\" \"Mozilla/5.0\"\n", proxies[i%len(proxies)], now)
	}
	// The real client, as one request that reached the server directly.
	for range 2 {
		fmt.Fprintf(f, "198.51.100.8 - - [%s] \"POST /wp-login.php HTTP/1.1\" 200 512 \"-\" \"curl\"\n", now)
	}
	f.Close()
	waitUntil := time.Now().Add(10 * time.Second)
	for len(j.Status().Banned) == 0 && time.Now().Before(waitUntil) {
		time.Sleep(10 * time.Millisecond)
	}
	var banned []string
	for _, b := range j.Status().Banned {
		banned = append(banned, b.IP)
	}
	if !slices.Equal(banned, []string{"198.51.100.8"}) {
		t.Fatalf("banned %v, want only the real client", banned)
	}
	out := logged.String()
	if n := strings.Count(out, "most failures of this jail come from Cloudflare"); n != 1 {
		t.Fatalf("%d warnings naming the fix, want 1:\n%s", n, out)
	}
	for _, fix := range []string{"real_ip_header CF-Connecting-IP", "set_real_ip_from", "mod_remoteip", "RemoteIPHeader CF-Connecting-IP", "jail=wp"} {
		if !strings.Contains(out, fix) {
			t.Errorf("the warning does not say %q:\n%s", fix, out)
		}
	}
}

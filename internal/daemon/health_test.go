package daemon

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edgeban/edgeban/internal/cloudflare/cfsim"
	"github.com/edgeban/edgeban/internal/jail"
)

// waitHealth waits until the daemon's health is as want says, or fails
// showing the last one.
func waitHealth(t *testing.T, d *Daemon, want func(Health) bool) Health {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		h := d.Health(context.Background())
		if want(h) {
			return h
		}
		if time.Now().After(deadline) {
			t.Fatalf("health: %+v", h)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHealth runs daemons in the states the health endpoint tells
// apart, each for real: all running; a jail whose action would not
// start; a database that no longer answers; bans that Cloudflare keeps
// refusing.
func TestHealth(t *testing.T) {
	sim := cfsim.New(cfsim.Config{Tokens: []cfsim.Token{{Value: "tok-health-0123456789"}, {Value: "tok-readonly-0123456789", ReadOnly: true}}, Seed: 5})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close) // after the daemons' cleanups: their workers talk to it
	const app = "[app]\nenabled = true\nfilter = app\naction = note\nlogpath = $DIR/app.log\n"
	cf := func(token string) string {
		return "[cf]\nenabled = true\nfilter = app\nlogpath = $DIR/app.log\n" +
			"action = cloudflare-token[cfzone=example.com, cftoken=" + token + ", cfapi=\"" + srv.URL + "/client/v4\"]\n"
	}
	tests := []struct {
		name    string
		local   string
		opts    Options
		do      func(t *testing.T, ctx context.Context, d *Daemon)
		runErr  string // what Run returns
		jails   map[string]string
		problem string // "" for healthy
	}{
		{name: "healthy", local: app + cf("tok-health-0123456789"),
			do: func(t *testing.T, ctx context.Context, d *Daemon) {
				// A ban delivered is no problem.
				if _, err := d.Handle(ctx, []string{"set", "cf", "banip", "192.0.2.1"}); err != nil {
					t.Fatal(err)
				}
				waitUntil(t, say("the rule at cfsim"), func() bool { return len(sim.AccessRules(cfsim.ZoneScope(cfsim.DefaultZoneID))) == 1 })
			},
			jails: map[string]string{"app": "running", "cf": "running"}},
		{name: "a jail whose action does not start", local: app + "[broken]\nenabled = true\nfilter = app\naction = nostart\nlogpath = $DIR/app.log\n",
			runErr:  "exit status 3",
			jails:   map[string]string{"app": "running", "broken": "stopped: jail \"broken\": start: action nostart: actionstart: exit status 3"},
			problem: `jail "broken": stopped: jail "broken": start`},
		{name: "the database closed", local: app,
			do:    func(t *testing.T, _ context.Context, d *Daemon) { d.opts.Store.Close() },
			jails: map[string]string{"app": "running"}, problem: "the database does not answer: store: "},
		{name: "Cloudflare refuses the bans", local: app + cf("tok-readonly-0123456789"),
			opts: Options{Cloudflare: CloudflareOptions{StuckAfter: time.Millisecond}},
			do: func(t *testing.T, ctx context.Context, d *Daemon) {
				if _, err := d.Handle(ctx, []string{"set", "cf", "banip", "192.0.2.1"}); err != nil {
					t.Fatal(err)
				}
			},
			jails:   map[string]string{"app": "running", "cf": "running"},
			problem: "Cloudflare: 1 bans or unbans have kept failing for over 1ms; the oldest, the ban of 192.0.2.1 (jail cf) since "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeConf(t, map[string]string{
				"filter.d/app.conf":     "[Definition]\nfailregex = ^fail from <HOST>$\n",
				"action.d/note.conf":    "[Definition]\nactionban = true\n",
				"action.d/nostart.conf": "[Definition]\nactionstart = exit 3\nactionban = true\n",
				"jail.local":            tt.local,
			})
			ctx, d := runDaemonWith(t, dir, tt.opts, tt.runErr)
			waitHealth(t, d, func(h Health) bool {
				for _, s := range h.Jails {
					if s == "starting" || s == "not started" {
						return false
					}
				}
				return len(h.Jails) > 0
			})
			if tt.do != nil {
				tt.do(t, ctx, d)
			}
			h := waitHealth(t, d, func(h Health) bool {
				if tt.problem == "" {
					return h.Healthy
				}
				return !h.Healthy && len(h.Problems) > 0 && strings.Contains(strings.Join(h.Problems, "\n"), tt.problem)
			})
			if !reflect.DeepEqual(h.Jails, tt.jails) {
				t.Fatalf("jails %q, want %q", h.Jails, tt.jails)
			}
			if tt.problem != "" && len(h.Problems) != 1 {
				t.Fatalf("problems %q, want one", h.Problems)
			}
		})
	}
}

// waitUntil waits for cond, or fails saying what it waited for.
func waitUntil(t *testing.T, what func() string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// say returns a func returning s, for waitUntil.
func say(s string) func() string { return func() string { return s } }

// TestStatsAcrossReload checks the jails' stats through reloads: a jail
// restarted keeps counting from where it was, one stopped and added
// again counts from zero; and the outbox's stats per destination.
func TestStatsAcrossReload(t *testing.T) {
	sim := cfsim.New(cfsim.Config{Tokens: []cfsim.Token{{Value: "tok-stats-0123456789"}}, Seed: 6})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	app := "[app]\nenabled = true\nfilter = app\nmaxretry = 2\nlogpath = $DIR/app.log\n" +
		"action = cloudflare-token[cfzone=example.com, cftoken=tok-stats-0123456789, cfapi=\"" + srv.URL + "/client/v4\"]\n"
	dir := writeConf(t, map[string]string{
		"filter.d/app.conf": "[Definition]\nfailregex = ^\\s*fail from <HOST>$\n",
		"jail.local":        app,
		"app.log":           "",
	})
	ctx, d := runDaemon(t, dir, nil)
	appStats := func() jail.Stats {
		st, err := d.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range st.Jails {
			if j.Jail == "app" {
				return j
			}
		}
		return jail.Stats{}
	}
	write := func(lines ...string) {
		f, err := os.OpenFile(filepath.Join(dir, "app.log"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, l := range lines {
			fmt.Fprintf(f, "%s %s\n", time.Now().Format("2006-01-02 15:04:05"), l)
		}
	}
	setLocal := func(local string) {
		if err := os.WriteFile(filepath.Join(dir, "jail.local"), []byte(strings.ReplaceAll(local, "$DIR", dir)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	j, _ := d.jail("app")
	<-j.Ready()
	steps := []struct {
		name   string
		do     func(t *testing.T)
		read   int64
		bans   int64
		active int
	}{
		{"lines and a ban", func(t *testing.T) { write("fail from 192.0.2.1", "hello", "fail from 192.0.2.1") }, 3, 1, 1},
		{"a restart keeps the counts", func(t *testing.T) {
			setLocal(strings.Replace(app, "maxretry = 2", "maxretry = 3", 1))
			if _, err := d.Reload("", false); err != nil {
				t.Fatal(err)
			}
			write("fail from 192.0.2.2")
		}, 4, 1, 1},
		{"stopped and added again: from zero", func(t *testing.T) {
			setLocal(strings.Replace(app, "enabled = true", "enabled = false", 1))
			if _, err := d.Reload("", false); err != nil {
				t.Fatal(err)
			}
			setLocal(app)
			if _, err := d.Reload("", false); err != nil {
				t.Fatal(err)
			}
			write("fail from 192.0.2.3")
		}, 1, 0, 1},
	}
	for _, st := range steps {
		st.do(t)
		waitUntil(t, func() string { return fmt.Sprintf("%s: stats %+v", st.name, appStats()) },
			func() bool {
				s := appStats()
				return s.LinesRead == st.read && s.Bans == st.bans && s.Active == st.active
			})
	}
	// The ban reached Cloudflare: one rule live, nothing pending.
	waitUntil(t, func() string {
		st, err := d.Stats(ctx)
		return fmt.Sprintf("the outbox's stats: %+v %v", st.Cloudflare, err)
	}, func() bool {
		st, err := d.Stats(ctx)
		return err == nil && reflect.DeepEqual(st.Cloudflare, []OutboxStats{{Where: "zone example.com", Live: 1}})
	})
}

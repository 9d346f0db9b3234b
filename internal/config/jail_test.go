package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeban/edgeban/internal/sharedtest"
)

// goldenJail is what the golden fail2ban-client -d stream says of a jail
// at the jail level.
type goldenJail struct {
	backend string
	opts    map[string]string // set JAIL opt value
	actions []string          // addaction names, in order
	logs    []string          // addlogpath: "path head" or "path tail"
}

func readGolden(tb testing.TB) map[string]*goldenJail {
	tb.Helper()
	jails := map[string]*goldenJail{}
	for _, cmd := range sharedtest.GoldenCommands(tb) {
		switch {
		case cmd[0] == "add":
			jails[cmd[1].(string)] = &goldenJail{backend: cmd[2].(string), opts: map[string]string{}}
		case cmd[0] == "set" && len(cmd) == 4 && cmd[2] == "addaction":
			j := jails[cmd[1].(string)]
			j.actions = append(j.actions, cmd[3].(string))
		case cmd[0] == "set" && len(cmd) == 5 && cmd[2] == "addlogpath":
			j := jails[cmd[1].(string)]
			j.logs = append(j.logs, fmt.Sprint(cmd[3], " ", cmd[4]))
		case cmd[0] == "set" && len(cmd) == 4:
			j := jails[cmd[1].(string)]
			j.opts[cmd[2].(string)] = fmt.Sprint(cmd[3])
		}
	}
	return jails
}

// actionName is the name fail2ban gives an action in a jail: its actname
// parameter, or its file name, suffixed when its name parameter differs
// from the jail's.
func actionName(jail string, s Spec) string {
	if n, ok := s.Option("actname"); ok {
		return n
	}
	n, ok := s.Option("name")
	if !ok || n == jail {
		return s.Name
	}
	if strings.HasPrefix(n, jail) {
		return s.Name + n[len(jail):]
	}
	return s.Name + "-" + n
}

// TestJailsGolden compares the jail-level settings read from fail2ban's
// stock configuration, every jail enabled, with fail2ban's own reading
// (fail2ban-client -d): backend, maxretry, maxmatches, findtime, bantime,
// ignorecommand, logencoding, usedns, the log files and the action names
// in order. The dump lists only the log files that existed where it was
// made (recidive's /var/log/fail2ban.log): each must be one a logpath
// entry of the jail names, with its head or tail. The filter's
// regexes and the actions' parameters are compared where the filter and
// action definitions are read.
func TestJailsGolden(t *testing.T) {
	golden := readGolden(t)
	dir := sharedtest.GoldenConfig(t)
	jails, err := ReadJails(dir)
	if err != nil {
		t.Fatal(err)
	}
	enabled := EnabledJails(jails)
	if len(enabled) != len(golden) {
		t.Errorf("%d jails enabled, golden has %d", len(enabled), len(golden))
	}
	agree := 0
	for _, j := range enabled {
		g, ok := golden[j.Name]
		if !ok {
			t.Errorf("jail %q is not in the golden dump", j.Name)
			continue
		}
		var diffs []string
		if g.backend != j.Backend {
			diffs = append(diffs, fmt.Sprintf("backend %q, golden %q", j.Backend, g.backend))
		}
		check := func(opt, got string) {
			if want, ok := g.opts[opt]; ok && want != got {
				diffs = append(diffs, fmt.Sprintf("%s %q, golden %q", opt, got, want))
			}
		}
		check("maxretry", fmt.Sprint(j.MaxRetry))
		check("maxmatches", fmt.Sprint(j.MaxMatches))
		for _, log := range g.logs {
			path, mode, _ := strings.Cut(log, " ")
			found := false
			for _, e := range j.LogPath {
				f := strings.Fields(e)
				m := "head"
				if len(f) > 1 {
					m = f[1]
				}
				if ok, _ := filepath.Match(f[0], path); ok && m == mode {
					found = true
				}
			}
			if !found {
				diffs = append(diffs, fmt.Sprintf("logpath %q, golden has %s", j.LogPath, log))
			}
		}
		for _, opt := range []string{"findtime", "bantime", "ignorecommand", "logencoding", "usedns"} {
			// The dump was made from a copy of the config in /tmp/f2bgold.
			check(opt, strings.ReplaceAll(j.Options[opt], dir, "/tmp/f2bgold"))
		}
		var names []string
		for _, a := range j.Actions {
			names = append(names, actionName(j.Name, a))
		}
		if fmt.Sprint(names) != fmt.Sprint(g.actions) {
			diffs = append(diffs, fmt.Sprintf("actions %v, golden %v", names, g.actions))
		}
		if len(diffs) > 0 {
			t.Errorf("jail %q: %s", j.Name, strings.Join(diffs, "; "))
			continue
		}
		agree++
	}
	t.Logf("jail settings agree with fail2ban for %d of %d jails", agree, len(golden))
}

func TestReadJailsErrors(t *testing.T) {
	tests := []struct {
		name, local, want string
	}{
		{"bad enabled", "[sshd]\nenabled = maybe\n", `jail.local:2: jail "sshd": option "enabled"`},
		{"bad maxretry", "[sshd]\nenabled = true\nmaxretry = five\n", `jail.local:3: jail "sshd": option "maxretry"`},
		{"bad filter", "[sshd]\nenabled = true\nfilter = sshd[mode=\n", `jail.local:3: jail "sshd": option "filter"`},
		{"syntax", "[sshd\nenabled = true\n", "jail.local:1"},
		{"missing reference", "[sshd]\nenabled = true\nlogpath = %(nowhere)s\n", "nowhere"},
		{"bad backend", "[sshd]\nenabled = true\nbackend = systemd[journalpath=/x\n", `jail.local:3: jail "sshd": option "backend"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "jail.conf"), []byte("[DEFAULT]\nmaxretry = 5\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "jail.local"), []byte(tt.local), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := ReadJails(dir)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestJailJournal(t *testing.T) {
	tests := []struct {
		name    string
		backend string
		want    JournalBackend
		wantErr string
	}{
		{"plain", "systemd", JournalBackend{}, ""},
		{"journalpath", "systemd[journalpath=/run/log/journal/machine-1]", JournalBackend{Path: "/run/log/journal/machine-1"}, ""},
		{"journalfiles as fail2ban's docs write it", `systemd[journalfiles="/path/to/system.journal, /path/to/user.journal"]`,
			JournalBackend{Files: []string{"/path/to/system.journal", "/path/to/user.journal"}}, ""},
		{"journalfiles split on white space", `systemd[journalfiles='/a/*.journal /b/x.journal']`,
			JournalBackend{Files: []string{"/a/*.journal", "/b/x.journal"}}, ""},
		{"journalflags and rotated", "systemd[journalflags=1, rotated=on]", JournalBackend{Flags: 1, FlagsSet: true, Rotated: true}, ""},
		{"bad journalflags", "systemd[journalflags=system]", JournalBackend{}, `jail.local:3: jail "sshd": option "backend": journalflags "system" is not an integer`},
		{"bad rotated", "systemd[rotated=sometimes]", JournalBackend{}, `option "backend": rotated: "sometimes" is not a boolean`},
		{"unknown option", "systemd[namespace=x]", JournalBackend{}, `systemd has no option "namespace" (it takes journalpath, journalfiles, journalflags, rotated)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "jail.local"), []byte("[sshd]\nenabled = true\nbackend = "+tt.backend+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			jails, err := ReadJails(dir)
			if err != nil {
				t.Fatal(err)
			}
			j := jails[0]
			if j.BackendSpec.Name != "systemd" || j.Backend != tt.backend {
				t.Fatalf("backend %q parsed as %q", j.Backend, j.BackendSpec.Name)
			}
			got, err := j.Journal()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", tt.want) {
				t.Fatalf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

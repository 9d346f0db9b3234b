package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeban/edgeban/internal/source"
)

// writeConfDir writes files (path relative to the directory -> content)
// into a new directory and returns it.
func writeConfDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strings.ReplaceAll(content, "$DIR", dir)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// checkCase is a jail.local and what check says of it.
type checkCase struct {
	name       string
	local      string
	wantErr    string // "" for success
	wantOut    string
	wantStderr string
}

func TestCheck(t *testing.T) {
	testCheck(t, []checkCase{
		{"ok", "[svc]\nenabled = true\nfilter = svc\nlogpath = $DIR/svc.log\n", "",
			"svc: backend auto, filter svc (1 failregex), actions note, maxretry 3, findtime 10m, bantime 1h", ""},
		{"disabled jails are not checked", "[svc]\nenabled = false\nfilter = broken\n", "", "OK: 0 jails enabled of 1", ""},
		{"missing log, no journalmatch", "[svc]\nenabled = true\nfilter = nojournal\nlogpath = $DIR/nothere.log\n",
			`jail.local:4: jail "svc": have not found any log file for`, "", ""},
		{"missing log, polling backend", "[svc]\nenabled = true\nbackend = polling\nfilter = svc\nlogpath = $DIR/nothere.log\n",
			`jail "svc": have not found any log file for`, "", ""},
		{"bad regex names its file", "[svc]\nenabled = true\nfilter = broken\nlogpath = $DIR/svc.log\n", "broken.conf:2", "", ""},
		{"unknown filter", "[svc]\nenabled = true\nfilter = nosuch\nlogpath = $DIR/svc.log\n", "nosuch", "", ""},
		{"unknown action", "[svc]\nenabled = true\nfilter = svc\naction = nosuch\nlogpath = $DIR/svc.log\n", `jail.local:4: jail "svc": action "nosuch"`, "", ""},
		{"native nftables", "[svc]\nenabled = true\nfilter = svc\naction = nftables[port=\"ssh,http\"]\nlogpath = $DIR/svc.log\n", "",
			"svc: backend auto, filter svc (1 failregex), actions nftables,", ""},
		{"native nftables, bad blocktype", "[svc]\nenabled = true\nfilter = svc\naction = nftables[blocktype=\"redirect to 2222\"]\nlogpath = $DIR/svc.log\n",
			`jail.local:4: jail "svc": option "action": action nftables: blocktype "redirect to 2222"`, "", ""},
		{"native mail and Cloudflare, no action.d file", "[svc]\nenabled = true\nfilter = svc\nlogpath = $DIR/svc.log\n" +
			"action = mail-whois-lines[dest=\"root@example.com\"]\n         cloudflare-token[cfzone=example.com, cftoken=t0ken]\n", "",
			"svc: backend auto, filter svc (1 failregex), actions mail-whois-lines,cloudflare-token,", ""},
		{"native mail, bad dest", "[svc]\nenabled = true\nfilter = svc\nlogpath = $DIR/svc.log\naction = mail-whois-lines[dest=\"not an address\"]\n",
			`jail.local:5: jail "svc": option "action": action mail-whois-lines: option "dest"`, "", ""},
		{"syntax error", "[svc\nenabled = true\n", "jail.local:1", "", ""},
		{"bad option", "[svc]\nenabled = true\nmaxretry = lots\n", `jail.local:3: jail "svc": option "maxretry"`, "", ""},
		{"server settings", "", "", "server: loglevel INFO, logtarget STDERR", ""},
	})
}

// TestCheckJournal checks journal jails as the daemon runs them.
func TestCheckJournal(t *testing.T) {
	if _, err := source.Journalctl(); err != nil {
		t.Skipf("needs journalctl: %v", err)
	}
	testCheck(t, []checkCase{
		{"missing log, journalmatch: journal", "[svc]\nenabled = true\nfilter = svc\nlogpath = $DIR/nothere.log\n", "",
			"svc: backend auto, filter svc (1 failregex), journal of the system flags 4 match _SYSTEMD_UNIT=svc.service, actions note",
			`warning: jail "svc": no log file found for `},
		{"systemd backend needs no file", "[svc]\nenabled = true\nbackend = systemd\nfilter = svc\n", "",
			"svc: backend systemd, filter svc (1 failregex), journal of the system flags 4 match _SYSTEMD_UNIT=svc.service, actions note", ""},
		{"journalfiles", "[svc]\nenabled = true\nbackend = systemd[journalfiles=\"/j/a.journal /j/b*.journal\", rotated=yes]\nfilter = svc\n", "",
			"journal files /j/a.journal /j/b*.journal rotated match _SYSTEMD_UNIT=svc.service", ""},
		{"bad backend option", "[svc]\nenabled = true\nbackend = systemd[journalpath=/j, journalfiles=/k]\nfilter = svc\n",
			`jail.local:3: jail "svc": option "backend": journalpath and journalfiles cannot be used together`, "", ""},
		{"bad journalmatch", "[svc]\nenabled = true\nbackend = systemd\nfilter = badmatch\n",
			`badmatch.conf:3: jail "svc": journalmatch "_comm=svc"`, "", ""},
	})
}

func testCheck(t *testing.T, tests []checkCase) {
	base := map[string]string{
		"filter.d/svc.conf":       "[Definition]\nfailregex = ^fail from <HOST>$\njournalmatch = _SYSTEMD_UNIT=svc.service\n",
		"filter.d/nojournal.conf": "[Definition]\nfailregex = ^fail from <HOST>$\n",
		"filter.d/badmatch.conf":  "[Definition]\nfailregex = ^fail from <HOST>$\njournalmatch = _comm=svc\n",
		"filter.d/broken.conf":    "[Definition]\nfailregex = ^fail (from <HOST>$\n",
		"action.d/note.conf":      "[Definition]\nactionban = echo <ip> >> $DIR/bans\n",
		"svc.log":                 "",
		"jail.conf":               "[DEFAULT]\nmaxretry = 3\nfindtime = 10m\nbantime = 1h\naction = note\n",
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{"jail.local": tt.local}
			for k, v := range base {
				files[k] = v
			}
			dir := writeConfDir(t, files)
			var out, errOut bytes.Buffer
			c := &cli{stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }}
			err := c.main(t.Context(), []string{"check", "-c", dir})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("error: %v", err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("output %q, want it to contain %q", out.String(), tt.wantOut)
			}
			if !strings.Contains(errOut.String(), tt.wantStderr) {
				t.Errorf("stderr %q, want it to contain %q", errOut.String(), tt.wantStderr)
			}
		})
	}
}

// TestCheckDebianStock runs check on the host's fail2ban configuration
// when Debian's fail2ban package is installed (.ci/run installs it).
func TestCheckDebianStock(t *testing.T) {
	if _, err := os.Stat("/etc/fail2ban/jail.conf"); err != nil {
		t.Skip("no /etc/fail2ban/jail.conf (install Debian's fail2ban package to run this test)")
	}
	var out, errOut bytes.Buffer
	c := &cli{stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }}
	if err := c.main(t.Context(), []string{"check", "-c", "/etc/fail2ban"}); err != nil {
		t.Fatalf("check /etc/fail2ban: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "sshd: ") {
		t.Fatalf("sshd not listed:\n%s", out.String())
	}
	t.Logf("%s%s", out.String(), errOut.String())
}

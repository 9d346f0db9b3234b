package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestContribService checks contrib/edgeban.service with systemd's own
// reader: any complaint about the file fails the test.
func TestContribService(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("needs systemd-analyze (Debian's systemd package)")
	}
	unit, err := os.ReadFile("../../contrib/edgeban.service")
	if err != nil {
		t.Fatal(err)
	}
	// verify wants the programs it names to exist.
	text := strings.ReplaceAll(string(unit), "/usr/local/bin/edgeban", edgebanBinary(t))
	path := filepath.Join(t.TempDir(), "edgeban.service")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", path).CombinedOutput()
	if err != nil || strings.Contains(string(out), path) {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestContribLogrotate rotates a running daemon's log with logrotate and
// contrib/logrotate, whose postrotate runs edgeban flushlogs: the ban
// after the rotation is written to the new file.
func TestContribLogrotate(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	lr, err := exec.LookPath("logrotate")
	if err != nil {
		t.Skip("needs logrotate (apt-get install logrotate)")
	}
	bin := edgebanBinary(t)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "edgeban.log")
	sock := filepath.Join(dir, "edgeban.sock")
	conf := writeConfDir(t, map[string]string{
		"filter.d/app.conf":  "[Definition]\nfailregex = ^fail from <HOST>$\n",
		"action.d/note.conf": "[Definition]\nactionban = true\n",
		"jail.local":         "[app]\nenabled = true\nfilter = app\naction = note\nlogpath = " + filepath.Join(dir, "app.log") + "\n",
		"edgeban.conf":       "[Definition]\ndbfile = " + filepath.Join(dir, "edgeban.db") + "\nlogtarget = " + logPath + "\n",
	})
	rotate, err := os.ReadFile("../../contrib/logrotate")
	if err != nil {
		t.Fatal(err)
	}
	// The test's paths; the owner is the test's, as only root can chown.
	text := strings.NewReplacer("/var/log/fail2ban.log", logPath, "/usr/local/bin/edgeban", bin,
		"create 640 root adm", "create 640").Replace(string(rotate))
	rotateConf := filepath.Join(dir, "logrotate.conf")
	if err := os.WriteFile(rotateConf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startServe(t, bin, conf, sock)
	defer stopServe(t, d)
	has := func(path, s string) func() bool {
		return func() bool { b, _ := os.ReadFile(path); return strings.Contains(string(b), s) }
	}
	run(t, bin, "", "set", "app", "banip", "192.0.2.1", "--socket", sock)
	waitFor(t, "the first ban in the log", 5*time.Second, has(logPath, "Ban 192.0.2.1"))
	cmd := exec.Command(lr, "-f", "-s", filepath.Join(dir, "logrotate.state"), rotateConf)
	cmd.Env = append(os.Environ(), "EDGEBAN_SOCKET="+sock)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("logrotate: %v\n%s", err, out)
	}
	run(t, bin, "", "set", "app", "banip", "192.0.2.2", "--socket", sock)
	waitFor(t, "the second ban in the new log", 5*time.Second, has(logPath, "Ban 192.0.2.2"))
	if has(logPath+".1", "Ban 192.0.2.2")() || !has(logPath+".1", "Ban 192.0.2.1")() {
		b, _ := os.ReadFile(logPath + ".1")
		t.Fatalf("the rotated log:\n%s", b)
	}
}

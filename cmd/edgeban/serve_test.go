package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServeEndToEnd runs edgeban serve as a real process on a temporary
// configuration, log and socket: failures appended to the log ban
// through a shell action, the ban shows in edgeban status, survives a
// restart with its end, and is lifted when bantime is up; a line
// written while the daemon is down and the log rotated is not lost.
func TestServeEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	bin := edgebanBinary(t)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "app.log")
	calls := filepath.Join(dir, "calls")
	sock := filepath.Join(dir, "edgeban.sock")
	files := map[string]string{
		"jail.conf":          "[DEFAULT]\nmaxretry = 3\nfindtime = 10m\nbantime = 8s\n",
		"jail.local":         "[app]\nenabled = true\nfilter = app\nlogpath = " + logPath + "\naction = note\n",
		"filter.d/app.conf":  "[Definition]\nfailregex = ^\\s*login failed for <F-USER>\\S+</F-USER> from <HOST>$\n",
		"action.d/note.conf": "[Definition]\nactionstart = echo start >> " + calls + "\nactionban = echo ban <ip> <F-USER> >> " + calls + "\nactionunban = echo unban <ip> >> " + calls + "\nactionstop = echo stop >> " + calls + "\n",
		"edgeban.conf":       "[Definition]\ndbfile = " + filepath.Join(dir, "edgeban.db") + "\nlogtarget = " + filepath.Join(dir, "edgeban.log") + "\n",
		"app.log":            "",
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	start := func() *exec.Cmd { return startServe(t, bin, dir, sock) }
	stop := func(cmd *exec.Cmd) { stopServe(t, cmd) }
	appendLog := func(lines ...string) {
		f, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lines {
			fmt.Fprintf(f, "%s %s\n", time.Now().Format("2006-01-02 15:04:05"), l)
		}
		f.Close()
	}
	callsHave := func(s string) func() bool {
		return func() bool { b, _ := os.ReadFile(calls); return strings.Contains(string(b), s) }
	}

	d := start()
	appendLog("login failed for root from 192.0.2.7", "login failed for admin from 192.0.2.7", "login failed for x$(id) from 192.0.2.7")
	waitFor(t, "the ban", 10*time.Second, callsHave("ban 192.0.2.7 x$(id)\n"))
	status := run(t, bin, "", "status", "app", "--socket", sock)
	if !strings.Contains(status, "Banned IP list:\t192.0.2.7") {
		t.Fatalf("status:\n%s", status)
	}
	before := run(t, bin, "", "get", "app", "banip", "--with-time", "--socket", sock)

	// Down, a rotation and a line meanwhile, up again.
	stop(d)
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	appendLog("login failed for a from 198.51.100.1")
	d = start()
	if after := run(t, bin, "", "get", "app", "banip", "--with-time", "--socket", sock); after != before {
		t.Fatalf("ban times changed across the restart:\n%s\n%s", before, after)
	}
	appendLog("login failed for b from 198.51.100.1", "login failed for c from 198.51.100.1")
	waitFor(t, "the ban that counts the line written while down", 10*time.Second, callsHave("ban 198.51.100.1 c\n"))
	waitFor(t, "the unban at bantime", 15*time.Second, callsHave("unban 192.0.2.7\n"))
	if banned := run(t, bin, "", "banned", "--socket", sock); strings.Contains(banned, "192.0.2.7") {
		t.Fatalf("still banned:\n%s", banned)
	}
	if out, err := exec.Command(bin, "status", "nosuch", "--socket", sock).CombinedOutput(); err == nil || !strings.Contains(string(out), `unknown jail "nosuch"`) {
		t.Fatalf("unknown jail: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "set", "app", "unbanip", "203.0.113.99", "--socket", sock).CombinedOutput(); err == nil || !strings.Contains(string(out), "not banned") {
		t.Fatalf("unban of an address not banned: %v\n%s", err, out)
	}
	// A jail added to jail.local starts on SIGHUP; the running one goes on.
	local := files["jail.local"] + "[other]\nenabled = true\nfilter = app\nlogpath = " + filepath.Join(dir, "other.log") + "\naction = note\n"
	if err := os.WriteFile(filepath.Join(dir, "jail.local"), []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	d.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the jail added by SIGHUP", 10*time.Second, func() bool {
		out, _ := exec.Command(bin, "status", "--socket", sock).CombinedOutput()
		return strings.Contains(string(out), "Jail list:\tapp, other")
	})
	if out := run(t, bin, "", "reload", "--socket", sock); out != "unchanged: app other\n" {
		t.Fatalf("reload:\n%s", out)
	}
	if err := os.WriteFile(filepath.Join(dir, "jail.local"), []byte("[app\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "reload", "--socket", sock).CombinedOutput(); err == nil || !strings.Contains(string(out), "jail.local:1") {
		t.Fatalf("reload of a broken configuration: %v\n%s", err, out)
	}
	run(t, bin, "", "stop", "--socket", sock)
	done := make(chan error, 1)
	go func() { done <- d.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop on edgeban stop")
	}
	b, _ := os.ReadFile(calls)
	if got := string(b); !strings.HasPrefix(got, "start\n") || !strings.HasSuffix(got, "stop\n") {
		t.Fatalf("calls:\n%s", got)
	}
	logb, _ := os.ReadFile(filepath.Join(dir, "edgeban.log"))
	if !strings.Contains(string(logb), "fail2ban.actions        [") || !strings.Contains(string(logb), "NOTICE  [app] Ban 192.0.2.7") {
		t.Fatalf("log target:\n%s", logb)
	}
}

// startServe starts edgeban serve on the configuration in dir and waits
// until its socket answers; the test's end kills it if it still runs.
func startServe(t *testing.T, bin, dir, sock string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "-c", dir, "--socket", sock}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if t.Failed() {
			t.Logf("edgeban serve's output:\n%s", out.String())
		}
	})
	waitFor(t, "the daemon's socket", 10*time.Second, func() bool {
		return exec.Command(bin, "ping", "--socket", sock).Run() == nil
	})
	return cmd
}

// stopServe stops a daemon with SIGTERM, as systemd does, and fails the
// test unless it exits cleanly within 10 s.
func stopServe(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve exited: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop on SIGTERM")
	}
}

// TestServeRefuses checks that edgeban serve does not start on what it
// cannot run safely, says why, and changes nothing: a broken
// configuration, a database that is not one, and a database another
// daemon is running on.
func TestServeRefuses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	bin := edgebanBinary(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "edgeban.db")
	good := map[string]string{
		"filter.d/app.conf":  "[Definition]\nfailregex = ^fail from <HOST>$\n",
		"action.d/note.conf": "[Definition]\nactionban = true\n",
		"jail.local":         "[app]\nenabled = true\nfilter = app\naction = note\nlogpath = " + filepath.Join(dir, "app.log") + "\n",
		"edgeban.conf":       "[Definition]\ndbfile = " + db + "\n",
	}
	running := startServe(t, bin, writeConfDir(t, good), filepath.Join(dir, "running.sock"))
	defer stopServe(t, running)
	junk := filepath.Join(dir, "junk.db")
	if err := os.WriteFile(junk, []byte(strings.Repeat("not a database ", 300)), 0o600); err != nil {
		t.Fatal(err)
	}
	// with is the good configuration with one file changed, on a
	// database of its own.
	with := func(name, content string) string {
		files := map[string]string{"edgeban.conf": "[Definition]\ndbfile = " + filepath.Join(t.TempDir(), "e.db") + "\n"}
		for k, v := range good {
			if k != "edgeban.conf" {
				files[k] = v
			}
		}
		files[name] = content
		return writeConfDir(t, files)
	}
	// A port another program listens on.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	tests := []struct {
		name string
		conf string
		args []string
		want string
	}{
		{"a syntax error", with("jail.local", "[app]\nenabled = true\nfilter = app\n  continued without a key\n[app\n"), nil, "jail.local:"},
		{"a bad option", with("jail.local", "[app]\nenabled = true\nfilter = app\naction = note\nlogpath = /x\nmaxretry = many\n"), nil, `jail.local:6`},
		{"a corrupt database", with("edgeban.conf", "[Definition]\ndbfile = "+junk+"\n"), nil, junk},
		{"a database in use", writeConfDir(t, good), nil, "another edgeban serve is running on this database"},
		{"a metrics port in use", with("jail.conf", ""), []string{"--metrics-listen", taken.Addr().String()},
			"--metrics-listen " + taken.Addr().String() + ": metrics: listen tcp " + taken.Addr().String() + ": bind: address already in use"},
		{"a bad metricslisten", with("edgeban.local", "[Definition]\nmetricslisten = localhost\n"), nil, `edgeban.local:2: option "metricslisten"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"serve", "-c", tt.conf, "--socket", filepath.Join(t.TempDir(), "s.sock")}, tt.args...)
			cmd := exec.Command(bin, args...)
			done := make(chan struct{})
			var out []byte
			var err error
			go func() { out, err = cmd.CombinedOutput(); close(done) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				<-done
				t.Fatalf("serve started:\n%s", out)
			}
			if err == nil || !strings.Contains(string(out), tt.want) {
				t.Fatalf("serve: %v, want an error naming %q:\n%s", err, tt.want, out)
			}
		})
	}
	if b, _ := os.ReadFile(junk); string(b) != strings.Repeat("not a database ", 300) {
		t.Error("the corrupt database was changed")
	}
	// The running daemon was not disturbed.
	run(t, bin, "", "ping", "--socket", filepath.Join(dir, "running.sock"))
}

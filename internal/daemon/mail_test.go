package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeban/edgeban/internal/mail/mailtest"
	"github.com/edgeban/edgeban/internal/store"
	"github.com/edgeban/edgeban/internal/whois/whoistest"
)

// TestMailAction runs a jail that mails its bans with
// mail-whois-lines, as the recidive jail of the seed article does, with
// no action.d file for it: the start mail, the mail of a ban made from
// log lines an attacker wrote (escaped, never run), the stop mail; then,
// after a restart, the start mail only, as the restored ban sends none
// (norestored).
func TestMailAction(t *testing.T) {
	srv := mailtest.NewServer(t, mailtest.Options{})
	w := whoistest.NewServer(t, func(string) string {
		return "inetnum:        198.51.100.0 - 198.51.100.255\nnetname:        TEST-NET-2\ncountry:        ZZ\n"
	})
	dir := writeConf(t, map[string]string{
		"filter.d/app.conf": "[Definition]\nfailregex = ^\\s*Invalid user .+ from <HOST> port \\d+$\n",
		"jail.local": "[app]\nenabled = true\nfilter = app\nmaxretry = 2\nlogpath = $DIR/app.log\n" +
			"action = mail-whois-lines[dest=\"admin@example.com\", smtphost=\"" + srv.Addr + "\", whois=\"" + w.Addr + "\"]\n",
		"app.log": "",
	})
	opts := Options{Hostname: "edgeban.test", MaxMatches: 10} // dbmaxmatches, as serve passes it
	d, stop := startDaemon(t, dir, opts)
	j, err := d.jail("app")
	if err != nil {
		t.Fatal(err)
	}
	<-j.Ready()
	if subject, _ := srv.Next(t, 10*time.Second).Text(t); subject != "[Fail2Ban] app: started on edgeban.test" {
		t.Fatalf("first mail %q, want the start mail", subject)
	}
	now := time.Now().Format("2006-01-02 15:04:05")
	pwned := filepath.Join(dir, "pwned")
	lines := []string{
		now + " Invalid user $(touch " + pwned + ") from 198.51.100.7 port 22",
		now + " Invalid user evil\rBcc: victim@example.com\x1b[2J from 198.51.100.7 port 22",
	}
	f, err := os.OpenFile(filepath.Join(dir, "app.log"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		fmt.Fprintln(f, l)
	}
	f.Close()
	got := srv.Next(t, 20*time.Second)
	subject, body := got.Text(t)
	if subject != "[Fail2Ban] app: banned 198.51.100.7 from edgeban.test" || got.From != "fail2ban@edgeban.test" ||
		len(got.To) != 1 || got.To[0] != "admin@example.com" {
		t.Fatalf("mail %q from %q to %q", subject, got.From, got.To)
	}
	for _, want := range []string{
		"The IP 198.51.100.7 has just been banned by Fail2Ban after\n2 attempts against app.\n",
		"Name:     TEST-NET-2\nCountry:  ZZ\n",
		"Lines containing failures of 198.51.100.7 (max 1000)\n" + lines[0] + "\n" +
			now + ` Invalid user evil\rBcc: victim@example.com\x1b[2J from 198.51.100.7 port 22` + "\n\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the mail does not say %q:\n%s", want, body)
		}
	}
	if _, err := os.Stat(pwned); err == nil {
		t.Fatal("a user name ran as a shell command")
	}
	if err := stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
	if subject, _ := srv.Next(t, 10*time.Second).Text(t); subject != "[Fail2Ban] app: stopped on edgeban.test" {
		t.Fatalf("mail %q, want the stop mail", subject)
	}

	d, stop = startDaemon(t, dir, opts)
	defer stop()
	j, _ = d.jail("app")
	<-j.Ready()
	if subject, _ := srv.Next(t, 10*time.Second).Text(t); subject != "[Fail2Ban] app: started on edgeban.test" {
		t.Fatalf("mail %q after the restart, want the start mail", subject)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		st := j.Status()
		if len(st.Banned) == 1 && st.Pending == 0 {
			break // the restored ban's actions have run
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ban was not restored: %+v", st)
		}
	}
	srv.None(t, 200*time.Millisecond)
}

// TestMailActionNativeFalse checks that native=false runs the action.d
// file as shell commands instead.
func TestMailActionNativeFalse(t *testing.T) {
	srv := mailtest.NewServer(t, mailtest.Options{})
	dir := writeConf(t, map[string]string{
		"filter.d/app.conf":              "[Definition]\nfailregex = ^fail from <HOST>$\n",
		"action.d/mail-whois-lines.conf": "[Definition]\nactionban = echo <ip> >> $DIR/shell.out\n",
		"jail.local": "[app]\nenabled = true\nfilter = app\nlogpath = $DIR/app.log\n" +
			"action = mail-whois-lines[native=false, smtphost=\"" + srv.Addr + "\"]\n",
		"app.log": "",
	})
	ctx, d := runDaemon(t, dir, nil)
	if _, err := d.Handle(ctx, []string{"set", "app", "banip", "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	if out, _ := os.ReadFile(filepath.Join(dir, "shell.out")); string(out) != "192.0.2.1\n" {
		t.Fatalf("the action file's actionban wrote %q", out)
	}
	srv.None(t, 200*time.Millisecond)
}

// TestMailActionConfigError checks that a wrong parameter of a native
// mail action stops the daemon's start, naming the file and the line.
func TestMailActionConfigError(t *testing.T) {
	dir := writeConf(t, map[string]string{
		"filter.d/app.conf": "[Definition]\nfailregex = ^fail from <HOST>$\n",
		"jail.local":        "[app]\nenabled = true\nfilter = app\nlogpath = $DIR/app.log\naction = sendmail-whois[dest=\"root, -oQ/tmp\"]\n",
	})
	db, err := store.Open(context.Background(), filepath.Join(dir, "e.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = Load(dir, Options{Store: db, Log: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), `jail.local:5: jail "app": option "action": action sendmail-whois: option "dest"`) {
		t.Fatalf("error %v", err)
	}
}

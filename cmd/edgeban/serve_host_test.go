package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeban/edgeban/internal/cloudflare/cfsim"
	"github.com/edgeban/edgeban/internal/mail/mailtest"
	"github.com/edgeban/edgeban/internal/netnstest"
	"github.com/edgeban/edgeban/internal/sharedtest"
	"github.com/edgeban/edgeban/internal/whois/whoistest"
)

// TestServeRecidiveOnHost runs the seed article's jail.local, its recidive
// jail whole, as a real daemon process on a host of its own: a network
// namespace the test creates, joined by a veth pair to a client namespace
// where the attacker and a bystander have their addresses. Everything the
// daemon talks to listens on that host's loopback: cfsim, an SMTP server
// and a whois server. No action is replaced: recidive's
// %(banaction_allports)s is the native nftables action in the host's
// kernel, cloudflare-restv4 bans at cfsim, and %(mta)s-whois-lines
// (mta = mail) mails through SMTP with a whois report.
//
// The attacker is banned twice by sshd, at Cloudflare only, then by
// recidive: its packets to any port are refused while the bystander's
// pass, one ban mail arrives, and the Cloudflare rule is shared with
// sshd. When recidive's ban ends, the kernel lets the attacker in again
// and the rule is gone; no other ban mail was sent.
func TestServeRecidiveOnHost(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	netnstest.NeedCommand(t, "nft", "nftables")
	l := netnstest.NewLink(t) // skips without root or ip
	stock := sharedtest.Path(t, "fail2ban/config")
	bin := edgebanBinary(t)
	attacker, bystander := netnstest.ClientsV4[0].String(), netnstest.ClientsV4[1]

	// The servers listen on the daemon's host, where it can reach them.
	var (
		sim  *cfsim.Server
		api  string
		smtp *mailtest.Server
		who  *whoistest.Server
	)
	netnstest.Run(t, l.Server, func() {
		sim, api = simServer(t, cfsim.Config{Email: seedEmail, Key: seedKey})
		smtp = mailtest.NewServer(t, mailtest.Options{})
		who = whoistest.NewServer(t, func(string) string {
			return "inetnum:        10.99.0.0 - 10.99.0.255\nnetname:        TEST-LINK\ncountry:        ZZ\n" +
				"abuse-mailbox:  abuse@example.net\n"
		})
	})
	l.Listen(t, 2222)

	dir := t.TempDir()
	copyTree(t, stock, dir)
	files := map[string]string{
		// Where this host's mail and whois go: a user's override of the
		// stock action file's [Init].
		"action.d/mail-whois-lines.local": fmt.Sprintf("[Init]\nsmtphost = %s\nwhois = %s\n", smtp.Addr, who.Addr),
		"edgeban.conf":                    "[Definition]\ndbfile = " + dir + "/edgeban.db\nlogtarget = " + dir + "/edgeban.log\n",
		"jail.local": seedJailLocal(api, dir, "destemail = security@example.com\nsender = edgeban@example.com\nmta = mail\n"+
			"banaction = nftables-multiport\nbanaction_allports = nftables-allports\n", 10),
		"auth.log": "",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sock := filepath.Join(dir, "edgeban.sock")
	var d *exec.Cmd
	netnstest.Run(t, l.Server, func() { d = startServe(t, bin, dir, sock) })
	defer func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "edgeban.log"))
			t.Logf("edgeban.log:\n%s", b)
		}
	}()

	fail := func(n int) {
		f, err := os.OpenFile(filepath.Join(dir, "auth.log"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for i := range n {
			fmt.Fprintf(f, "%s web1 sshd[%d]: Failed password for root from %s port %d ssh2\n",
				time.Now().Format(time.Stamp), 1000+i, attacker, 40000+i)
		}
	}
	rules := func() string {
		var s []string
		for _, r := range sim.AccessRules(cfsim.UserScope) {
			s = append(s, r.Value+" "+r.Notes)
		}
		return strings.Join(s, ";")
	}
	inKernel := func() bool {
		out := netnstest.Exec(t, l.Server, "nft", "list", "table", "inet", "f2b-table")
		return strings.Contains(out, attacker)
	}
	reaches := func(from string) bool {
		a := netnstest.ClientsV4[0]
		if from != attacker {
			a = bystander
		}
		return l.Dial(t, a, 2222) == nil
	}
	var banMails []mailtest.Message
	mails := func() {
		for {
			select {
			case m := <-smtp.Messages():
				if subject, _ := m.Text(t); strings.Contains(subject, "banned") {
					banMails = append(banMails, m)
				}
			default:
				return
			}
		}
	}

	fail(2)
	waitFor(t, "sshd's ban at cfsim", 15*time.Second, func() bool { return rules() == attacker+" Banned by Fail2Ban" })
	if inKernel() || !reaches(attacker) {
		t.Fatal("sshd's ban reached the firewall: the seed's sshd bans at Cloudflare only")
	}
	waitFor(t, "sshd's unban at cfsim", 15*time.Second, func() bool { return rules() == "" })
	fail(2) // banned again by sshd: recidive reads two bans in edgeban.log

	waitFor(t, "recidive's ban in the kernel", 20*time.Second, inKernel)
	if reaches(attacker) {
		t.Error("the attacker reaches port 2222 while recidive bans it on all ports")
	}
	if !reaches(bystander.String()) {
		t.Error("the bystander cannot reach port 2222")
	}
	chain := netnstest.Exec(t, l.Server, "nft", "list", "chain", "inet", "f2b-table", "f2b-chain")
	// All ports of jail.conf's protocol (tcp), as fail2ban's
	// nftables-allports: no port list.
	if !strings.Contains(chain, "ip saddr @addr-set-recidive meta l4proto tcp reject") || strings.Contains(chain, "dport") ||
		strings.Contains(chain, "addr-set-sshd") {
		t.Errorf("the chain is not recidive's all-ports rule alone:\n%s", chain)
	}
	waitFor(t, "the ban mail", 15*time.Second, func() bool { mails(); return len(banMails) > 0 })
	m := banMails[0]
	subject, body := m.Text(t)
	if !strings.HasPrefix(subject, "[Fail2Ban] recidive: banned "+attacker+" from ") || m.From != "edgeban@example.com" ||
		len(m.To) != 1 || m.To[0] != "security@example.com" {
		t.Errorf("ban mail %q from %q to %q", subject, m.From, m.To)
	}
	for _, want := range []string{
		"The IP " + attacker + " has just been banned by Fail2Ban after\n2 attempts against recidive.",
		"TEST-LINK", "abuse@example.net",
		"[sshd] Ban " + attacker,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the ban mail does not say %q:\n%s", want, body)
		}
	}
	if q := who.Queries(); len(q) == 0 || !strings.Contains(q[0], attacker) {
		t.Errorf("whois queries %q, want one for %s", q, attacker)
	}
	waitFor(t, "the rule at cfsim, shared by sshd and recidive", 15*time.Second,
		func() bool { return rules() == attacker+" Banned by Fail2Ban" })

	// recidive's ban ends (sshd's ended before): the kernel and
	// Cloudflare let the attacker in again.
	waitFor(t, "recidive's unban in the kernel", 20*time.Second, func() bool { return !inKernel() })
	if !reaches(attacker) {
		t.Error("the attacker is still refused after recidive's unban")
	}
	waitFor(t, "the rule's removal at cfsim", 15*time.Second, func() bool { return rules() == "" })
	time.Sleep(time.Second)
	mails()
	if len(banMails) != 1 {
		t.Errorf("%d ban mails, want 1 (recidive's)", len(banMails))
	}
	// A stop takes the jails' rules and sets out of the kernel, as
	// fail2ban's actionstop does.
	stopServe(t, d)
	if out, _ := exec.Command("ip", "netns", "exec", l.Server, "nft", "list", "tables").CombinedOutput(); strings.Contains(string(out), "f2b-table") {
		t.Errorf("after the stop, the kernel still has f2b-table:\n%s", out)
	}
}

package action

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"maps"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeban/edgeban/internal/config"
	"github.com/edgeban/edgeban/internal/mail"
	"github.com/edgeban/edgeban/internal/mail/mailtest"
	"github.com/edgeban/edgeban/internal/sharedtest"
	"github.com/edgeban/edgeban/internal/whois"
	"github.com/edgeban/edgeban/internal/whois/whoistest"
)

const testHost = "edgeban.test"

var discard = slog.New(slog.DiscardHandler)

func mustSpec(t testing.TB, s string) config.Spec {
	t.Helper()
	spec, err := config.ParseSpec(s)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// rirAnswer is a made-up registry answer in RIPE's format, in Latin-1,
// with what a network's holder could write to fool a reader: a terminal
// escape, a lone "." line (SMTP's end of data) and "..".
const rirAnswer = "% This is a registry.\r\n\r\n" +
	"% Abuse contact for '198.51.100.0 - 198.51.100.127' is 'abuse@hoster.example'\r\n\r\n" +
	"inetnum:        198.51.100.0 - 198.51.100.127\r\nnetname:        HOSTER-VPS\r\n" +
	"descr:          Soci\xe9t\xe9 \x1b[31mred\r\ncountry:        DE\r\n.\r\n..\r\n" +
	"org-name:       Hoster GmbH\r\n"

// rirAnswerInBody is rirAnswer as the mail shows it.
const rirAnswerInBody = "% This is a registry.\n\n" +
	"% Abuse contact for '198.51.100.0 - 198.51.100.127' is 'abuse@hoster.example'\n\n" +
	"inetnum:        198.51.100.0 - 198.51.100.127\nnetname:        HOSTER-VPS\n" +
	"descr:          Société \\x1b[31mred\ncountry:        DE\n.\n..\n" +
	"org-name:       Hoster GmbH\n"

// whoisChain starts an IANA-like server that refers to a registry's,
// and returns the first one's address and the registry's.
func whoisChain(t *testing.T) (first, rir string) {
	r := whoistest.NewServer(t, func(string) string { return rirAnswer })
	iana := whoistest.NewServer(t, func(string) string {
		return "% IANA WHOIS server\n\nrefer:        " + r.Addr + "\n\ninetnum:      198.0.0.0 - 198.255.255.255\norganisation: ARIN\n"
	})
	return iana.Addr, r.Addr
}

// whoisInBody is the whois report of whoisChain's servers in a mail.
func whoisInBody(first, rir string) string {
	return "Network:  198.51.100.0 - 198.51.100.127\nName:     HOSTER-VPS\nHolder:   Hoster GmbH\nCountry:  DE\n" +
		"Abuse:    abuse@hoster.example\nSource:   " + rir + "\nAsked:    " + first + ", " + rir + "\n\n" +
		"The answer of " + rir + ":\n\n" + rirAnswerInBody
}

// banBody is the body of the mail about a ban of 198.51.100.7 after
// failures attempts in jail, with the whois report whoisPart ("" for
// none) and the lines ("" for none), shown with grepmax.
func banBody(jail string, failures int, whoisPart string, grepmax int, lines string) string {
	b := "Hi,\n\nThe IP 198.51.100.7 has just been banned by Fail2Ban after\n" + strconv.Itoa(failures) + " attempts against " + jail + ".\n\n"
	if whoisPart != "" {
		b += "Here is more information about 198.51.100.7 :\n\n" + whoisPart + "\n"
	}
	if lines != "" {
		b += "Lines containing failures of 198.51.100.7 (max " + strconv.Itoa(grepmax) + ")\n" + lines + "\n"
	}
	return b + "Regards,\n\nFail2Ban\n"
}

// attackLines are failures' log lines whose user names an attacker
// chose: a header, a shell command, SMTP's end of data and commands, a
// terminal escape with a right-to-left override and a byte that is not
// UTF-8.
func attackLines(pwned string) (lines []string, inBody string) {
	lines = []string{
		"2026-03-04 05:06:07 sshd[1]: Invalid user evil\r\nBcc: victim@example.com from 198.51.100.7 port 22",
		"2026-03-04 05:06:08 sshd[1]: Invalid user $(touch " + pwned + ") from 198.51.100.7 port 22",
		"2026-03-04 05:06:09 sshd[1]: Invalid user x\r\n.\r\nMAIL FROM:<a@example.com>\r\n from 198.51.100.7 port 22",
		"2026-03-04 05:06:10 sshd[1]: Invalid user \x1b[2J\u202egnp.exe\xff from 198.51.100.7 port 22",
	}
	inBody = `2026-03-04 05:06:07 sshd[1]: Invalid user evil\r\nBcc: victim@example.com from 198.51.100.7 port 22` + "\n" +
		`2026-03-04 05:06:08 sshd[1]: Invalid user $(touch ` + pwned + `) from 198.51.100.7 port 22` + "\n" +
		`2026-03-04 05:06:09 sshd[1]: Invalid user x\r\n.\r\nMAIL FROM:<a@example.com>\r\n from 198.51.100.7 port 22` + "\n" +
		`2026-03-04 05:06:10 sshd[1]: Invalid user \x1b[2J\u202egnp.exe\xff from 198.51.100.7 port 22` + "\n"
	return lines, inBody
}

// wantMail is what a test expects of a mail.
type wantMail struct {
	from, to, subject, body string
}

// checkMail parses raw, a whole message, and checks it against want:
// exactly our headers, each once, From, To and Subject as written,
// Date within [before, now], the Message-ID at testHost, the MIME
// headers, and the whole body.
func checkMail(t *testing.T, raw []byte, before time.Time, want wantMail) {
	t.Helper()
	msg, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("the mail does not parse: %v\n%s", err, raw)
	}
	keys := slices.Sorted(maps.Keys(msg.Header))
	if want := []string{"Auto-Submitted", "Content-Transfer-Encoding", "Content-Type", "Date", "From", "Message-Id",
		"Mime-Version", "Subject", "To"}; !slices.Equal(keys, want) {
		t.Fatalf("headers %q, want %q:\n%s", keys, want, raw)
	}
	for k, v := range msg.Header {
		if len(v) != 1 {
			t.Fatalf("%d %s headers:\n%s", len(v), k, raw)
		}
	}
	for k, v := range map[string]string{"From": want.from, "To": want.to, "Subject": want.subject, "Mime-Version": "1.0",
		"Content-Type": "text/plain; charset=utf-8", "Content-Transfer-Encoding": "quoted-printable",
		"Auto-Submitted": "auto-generated"} {
		if got := msg.Header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	date, err := msg.Header.Date()
	if err != nil || date.Before(before.Truncate(time.Second)) || date.After(time.Now()) {
		t.Errorf("Date %v (%v), want between %v and now", date, err, before)
	}
	if id := msg.Header.Get("Message-Id"); !regexp.MustCompile(`^<\d+\.[0-9a-f]{32}@` + regexp.QuoteMeta(testHost) + `>$`).MatchString(id) {
		t.Errorf("Message-ID %q", id)
	}
	body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.ReplaceAll(string(body), "\r\n", "\n"); got != want.body {
		t.Errorf("body:\n%s\nwant:\n%s\n(%q)", got, want.body, got)
	}
}

func startMail(t *testing.T, m *Mail) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		m.Stop(context.Background())
	})
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestMailWhoisLinesSMTP runs mail-whois-lines against a loopback SMTP
// server and whois servers: the start mail, a ban's mail with the whois
// report along the referral and the failures' lines an attacker wrote,
// and the stop mail, each checked whole.
func TestMailWhoisLinesSMTP(t *testing.T) {
	srv := mailtest.NewServer(t, mailtest.Options{})
	first, rir := whoisChain(t)
	pwned := filepath.Join(t.TempDir(), "pwned")
	spec := mustSpec(t, `mail-whois-lines[dest="root, admin@example.com", sender="fail2ban@<fq-hostname>", smtphost="`+srv.Addr+`", whois="`+first+`", grepmax=3]`)
	m, err := NewMail("sshd", spec, nil, MailEnv{Hostname: testHost, Log: discard})
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	startMail(t, m)
	from, to := "Fail2Ban <fail2ban@edgeban.test>", "<root>, <admin@example.com>"
	got := srv.Next(t, 10*time.Second)
	if got.Hello != testHost || got.From != "fail2ban@edgeban.test" || !slices.Equal(got.To, []string{"root", "admin@example.com"}) {
		t.Fatalf("envelope: HELO %q FROM %q TO %q", got.Hello, got.From, got.To)
	}
	checkMail(t, got.Data, before, wantMail{from, to, "[Fail2Ban] sshd: started on edgeban.test",
		"Hi,\n\nThe jail sshd has been started successfully.\n\nRegards,\n\nFail2Ban\n"})

	lines, linesInBody := attackLines(pwned)
	extra := "2026-03-04 05:06:06 sshd[1]: Invalid user first from 198.51.100.7 port 22"
	if err := m.Ban(context.Background(), Ticket{IP: "198.51.100.7", Failures: 5, Matches: append([]string{extra}, lines...)}); err != nil {
		t.Fatal(err)
	}
	got = srv.Next(t, 10*time.Second)
	_, after, _ := strings.Cut(linesInBody, "\n") // grepmax=3: the last three
	checkMail(t, got.Data, before, wantMail{from, to, "[Fail2Ban] sshd: banned 198.51.100.7 from edgeban.test",
		banBody("sshd", 5, whoisInBody(first, rir), 3, after)})
	if _, err := os.Stat(pwned); err == nil {
		t.Fatal("a user name ran as a shell command")
	}

	if err := m.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	got = srv.Next(t, 10*time.Second)
	checkMail(t, got.Data, before, wantMail{from, to, "[Fail2Ban] sshd: stopped on edgeban.test",
		"Hi,\n\nThe jail sshd has been stopped.\n\nRegards,\n\nFail2Ban\n"})
	srv.None(t, 100*time.Millisecond)
	if err := m.Ban(context.Background(), Ticket{IP: "198.51.100.8"}); err == nil {
		t.Fatal("a ban after Stop was taken")
	}
}

// fakeSendmail writes a sendmail program that keeps the arguments and the
// input of each of its runs, as N.argv and N.stdin in its directory.
func fakeSendmail(t *testing.T) (path, dir string) {
	t.Helper()
	dir = t.TempDir()
	path = filepath.Join(dir, "sendmail")
	script := "#!/bin/sh\nd=$(dirname \"$0\")\nn=$(ls \"$d\" | grep -c '\\.stdin$')\n" +
		"for a in \"$@\"; do printf '%s\\n' \"$a\"; done > \"$d/$n.argv\"\ncat > \"$d/$n.stdin.tmp\"\nmv \"$d/$n.stdin.tmp\" \"$d/$n.stdin\"\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, dir
}

// sentmail waits for the n-th run (from 0) of the fake sendmail in dir
// and returns its arguments and input.
func sentmail(t *testing.T, dir string, n int) (argv []string, stdin []byte) {
	t.Helper()
	name := filepath.Join(dir, strconv.Itoa(n))
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, err := os.ReadFile(name + ".stdin"); err == nil {
			a, _ := os.ReadFile(name + ".argv")
			return strings.Split(strings.TrimSuffix(string(a), "\n"), "\n"), b
		}
		if time.Now().After(deadline) {
			t.Fatalf("sendmail did not run a %d-th time", n+1)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stockActionDir returns a configuration directory whose action.d holds
// fail2ban's stock files (linked) and the given .local files.
func stockActionDir(t *testing.T, locals map[string]string) string {
	t.Helper()
	stock := sharedtest.Path(t, "fail2ban/config/action.d")
	dir := t.TempDir()
	ad := filepath.Join(dir, "action.d")
	if err := os.Mkdir(ad, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(stock)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.Symlink(filepath.Join(stock, e.Name()), filepath.Join(ad, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	for name, text := range locals {
		if err := os.WriteFile(filepath.Join(ad, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestMailSendmailStock runs sendmail-whois-lines as jail.conf's
// action_mwl writes it, read from fail2ban's own action.d, through a
// sendmail program that records its runs: with the stock files the jail's
// start and stop are mailed; a sendmail-common.local that empties
// actionstart and actionstop, as many set ups have, turns them off.
func TestMailSendmailStock(t *testing.T) {
	for _, tt := range []struct {
		name      string
		locals    map[string]string
		startStop bool
	}{
		{"stock", nil, true},
		{"start and stop mails off", map[string]string{"sendmail-common.local": "[Definition]\nactionstart =\nactionstop =\n"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := stockActionDir(t, tt.locals)
			sendmail, out := fakeSendmail(t)
			first, rir := whoisChain(t)
			spec := mustSpec(t, `sendmail-whois-lines[sender="root@<fq-hostname>", dest="root@localhost", logpath="/var/log/auth.log", chain="INPUT", sendmail="`+sendmail+`", mailargs="-oi -X /dev/null", whois="`+first+`"]`)
			def, err := Load(dir, "recidive", spec)
			if err != nil {
				t.Fatal(err)
			}
			m, err := NewMail("recidive", spec, def, MailEnv{Hostname: testHost, Log: discard})
			if err != nil {
				t.Fatal(err)
			}
			if m.Name() != "sendmail-whois-lines" || !m.NoRestored() {
				t.Fatalf("name %q, norestored %v", m.Name(), m.NoRestored())
			}
			before := time.Now()
			startMail(t, m)
			if err := m.Ban(context.Background(), Ticket{IP: "198.51.100.7", Failures: 5, Matches: []string{"a line"}}); err != nil {
				t.Fatal(err)
			}
			if err := m.Stop(context.Background()); err != nil {
				t.Fatal(err)
			}
			wantArgv := []string{"-oi", "-X", "/dev/null", "-i", "-f", "root@edgeban.test", "--", "root@localhost"}
			from, to := "Fail2Ban <root@edgeban.test>", "<root@localhost>"
			n := 0
			if tt.startStop {
				argv, stdin := sentmail(t, out, n)
				n++
				if !slices.Equal(argv, wantArgv) {
					t.Fatalf("argv %q, want %q", argv, wantArgv)
				}
				checkMail(t, stdin, before, wantMail{from, to, "[Fail2Ban] recidive: started on edgeban.test",
					"Hi,\n\nThe jail recidive has been started successfully.\n\nRegards,\n\nFail2Ban\n"})
			}
			argv, stdin := sentmail(t, out, n)
			n++
			if !slices.Equal(argv, wantArgv) {
				t.Fatalf("argv %q, want %q", argv, wantArgv)
			}
			checkMail(t, stdin, before, wantMail{from, to, "[Fail2Ban] recidive: banned 198.51.100.7 from edgeban.test",
				banBody("recidive", 5, whoisInBody(first, rir), 1000, "a line\n")})
			if tt.startStop {
				_, stdin := sentmail(t, out, n)
				n++
				checkMail(t, stdin, before, wantMail{from, to, "[Fail2Ban] recidive: stopped on edgeban.test",
					"Hi,\n\nThe jail recidive has been stopped.\n\nRegards,\n\nFail2Ban\n"})
			}
			if runs, _ := filepath.Glob(filepath.Join(out, "*.stdin")); len(runs) != n {
				t.Fatalf("sendmail ran %d times, want %d", len(runs), n)
			}
		})
	}
}

// TestNewMail reads mail action specs as jail.local writes them, without
// an action.d file: what each sends, how, and the parameters' errors,
// which name the option.
func TestNewMail(t *testing.T) {
	tests := []struct {
		spec    string
		native  bool
		check   func(*Mail) string // "" when right
		wantErr string
	}{
		{`sendmail-whois-lines`, true, func(m *Mail) string {
			s, ok := m.transport.(*mail.Sendmail)
			switch {
			case !ok || s.Path != mail.DefaultSendmail || len(s.Args) != 0:
				return "transport"
			case m.sender != "fail2ban" || m.dest != "root" || m.sendername != "Fail2Ban" || m.jail != "sshd":
				return "addresses"
			case m.whoisServer != whois.DefaultServer || m.whoisTimeout != DefaultWhoisTimeout || m.timeout != DefaultMailTimeout:
				return "whois"
			case !m.startMail || !m.stopMail || !m.noRestored || m.grepMax != 1000 || !m.kind.lines:
				return "defaults"
			}
			return ""
		}, ""},
		{`mail-whois-lines[dest="a@example.com, b@example.com", smtphost=mx.example.com, smtptls=STARTTLS, smtpuser=u, smtppassword=p]`, true,
			func(m *Mail) string {
				if m.smtp == nil || *m.smtp != (mail.SMTP{Addr: "mx.example.com:25", TLS: mail.TLSStartTLS, Username: "u", Password: "p"}) {
					return "smtp"
				}
				if m.sender != "fail2ban@<fq-hostname>" {
					return "sender"
				}
				return ""
			}, ""},
		{`mail[smtphost="[::1]:2525", name=web, actname=mail-web, actionstart="", norestored=0, timeout=5m]`, true, func(m *Mail) string {
			if m.smtp.Addr != "[::1]:2525" || m.jail != "web" || m.Name() != "mail-web" || m.startMail || !m.stopMail || m.NoRestored() ||
				m.timeout != 5*time.Minute || m.kind.whois {
				return "params"
			}
			return ""
		}, ""},
		{`mail-whois[whois=none]`, true, func(m *Mail) string {
			if m.whoisServer != "" {
				return "whois"
			}
			return ""
		}, ""},
		{`sendmail-whois[whois=whois.ripe.net, whoistimeout=2.5]`, true, func(m *Mail) string {
			if m.whoisServer != "whois.ripe.net:43" || m.whoisTimeout != 2500*time.Millisecond {
				return "whois"
			}
			return ""
		}, ""},
		{`sendmail[dest="<name>@example.com"]`, true, func(m *Mail) string {
			if m.dest != "sshd@example.com" {
				return "<name>"
			}
			return ""
		}, ""},
		{`sendmail-whois-lines[native=false]`, false, nil, ""},
		{`sendmail-whois-lines[native=maybe]`, false, nil, "native"},
		{`sendmail-buffered`, false, nil, ""},
		{`sendmail[dest="root, -oQ/tmp/x"]`, true, nil, `option "dest"`},
		{`sendmail[dest="a@example.com>\nBcc: b@example.com"]`, true, nil, `option "dest"`},
		{`sendmail[sender="f2b <f@example.com>"]`, true, nil, `option "sender"`},
		{`sendmail-whois-lines[grepmax=-1]`, true, nil, `option "grepmax"`},
		{`sendmail[norestored=perhaps]`, true, nil, `option "norestored"`},
		{`sendmail-whois[whoistimeout=0]`, true, nil, `option "whoistimeout"`},
		{`sendmail[timeout=soon]`, true, nil, `option "timeout"`},
		{`sendmail-whois[whois="whois.example.net; rm -rf /"]`, true, nil, `option "whois"`},
		{`mail[smtptls=maybe]`, true, nil, `option "smtptls"`},
		{`mail[smtphost=":25"]`, true, nil, `option "smtphost"`},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			spec := mustSpec(t, tt.spec)
			native, err := IsMail(spec)
			if err == nil && native {
				var m *Mail
				m, err = NewMail("sshd", spec, nil, MailEnv{Log: discard})
				if err == nil && tt.check != nil {
					if what := tt.check(m); what != "" {
						t.Fatalf("%s wrong: %+v", what, m)
					}
				}
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if native != tt.native {
				t.Fatalf("native %v, want %v", native, tt.native)
			}
		})
	}
}

// TestMailWhoisFails bans with a whois that fails in each way it can, or
// is not asked: the mail goes anyway, and says why there is no report.
func TestMailWhoisFails(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := l.Addr().String()
	l.Close()
	silent := whoistest.NewServer(t, func(string) string { return whoistest.Silent })
	tests := []struct {
		name, params, ip string
		want             *regexp.Regexp
	}{
		{"refused", `whois="` + refused + `"`, "198.51.100.7",
			regexp.MustCompile(`^The whois lookup failed: whois ` + regexp.QuoteMeta(refused) + `: dial tcp .*connection refused\n$`)},
		{"no answer", `whois="` + silent.Addr + `", whoistimeout=0.2`, "198.51.100.7",
			regexp.MustCompile(`^The whois lookup failed: whois ` + regexp.QuoteMeta(silent.Addr) + `: context deadline exceeded: .*\n$`)},
		{"not an address", `whois="` + silent.Addr + `"`, "host\r\nBcc: x@example.com",
			regexp.MustCompile(`^\(no whois lookup: host\\r\\nBcc: x@example.com is not an IP address\)\n$`)},
		{"none", `whois=none`, "198.51.100.7", regexp.MustCompile(`^\(no whois lookup: whois = none\)\n$`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := mailtest.NewServer(t, mailtest.Options{})
			spec := mustSpec(t, `mail-whois[actionstart="", smtphost="`+srv.Addr+`", `+tt.params+`]`)
			m, err := NewMail("sshd", spec, nil, MailEnv{Hostname: testHost, Log: discard})
			if err != nil {
				t.Fatal(err)
			}
			startMail(t, m)
			if err := m.Ban(context.Background(), Ticket{IP: tt.ip, Failures: 2}); err != nil {
				t.Fatal(err)
			}
			got := srv.Next(t, 10*time.Second)
			msg, err := netmail.ReadMessage(bytes.NewReader(got.Data))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(quotedprintable.NewReader(msg.Body))
			text := strings.ReplaceAll(string(body), "\r\n", "\n")
			_, report, ok := strings.Cut(text, " :\n\n")
			report, _, ok2 := strings.Cut(report, "\nRegards,")
			if !ok || !ok2 || !tt.want.MatchString(report) {
				t.Fatalf("whois report %q, want %v, in:\n%s", report, tt.want, text)
			}
		})
	}
}

// TestMailQueue checks that bans do not wait for their mails: while a
// whois lookup holds the sender, bans are queued, up to the queue's
// size, beyond which a ban fails (and the jail tries it again); once the
// lookup ends, every queued mail goes.
func TestMailQueue(t *testing.T) {
	srv := mailtest.NewServer(t, mailtest.Options{})
	release := make(chan struct{})
	w := whoistest.NewServer(t, func(string) string {
		<-release
		return "inetnum: 198.51.100.0 - 198.51.100.255\n"
	})
	free := sync.OnceFunc(func() { close(release) })
	t.Cleanup(free) // before the server's Close, which waits for its answers
	spec := mustSpec(t, `mail-whois[actionstart="", actionstop="", smtphost="`+srv.Addr+`", whois="`+w.Addr+`"]`)
	m, err := NewMail("sshd", spec, nil, MailEnv{Hostname: testHost, Log: discard})
	if err != nil {
		t.Fatal(err)
	}
	m.queueSize = 2
	startMail(t, m)
	ban := func(ip string) error { return m.Ban(context.Background(), Ticket{IP: ip, Failures: 1}) }
	if err := ban("198.51.100.1"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); len(w.Queries()) == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first mail's whois lookup did not start")
		}
	}
	for _, ip := range []string{"198.51.100.2", "198.51.100.3"} {
		if err := ban(ip); err != nil {
			t.Fatalf("ban %s while a lookup holds the sender: %v", ip, err)
		}
	}
	if err := ban("198.51.100.4"); err == nil || !strings.Contains(err.Error(), "2 mails wait") {
		t.Fatalf("a ban beyond the queue: %v", err)
	}
	srv.None(t, 50*time.Millisecond)
	free()
	var subjects []string
	for range 3 {
		msg, err := netmail.ReadMessage(bytes.NewReader(srv.Next(t, 10*time.Second).Data))
		if err != nil {
			t.Fatal(err)
		}
		subjects = append(subjects, msg.Header.Get("Subject"))
	}
	want := []string{"[Fail2Ban] sshd: banned 198.51.100.1 from edgeban.test", "[Fail2Ban] sshd: banned 198.51.100.2 from edgeban.test",
		"[Fail2Ban] sshd: banned 198.51.100.3 from edgeban.test"}
	if !slices.Equal(subjects, want) {
		t.Fatalf("subjects %q, want %q", subjects, want)
	}
	if err := m.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv.None(t, 50*time.Millisecond)
}

func TestInert(t *testing.T) {
	for in, want := range map[string]string{
		"plain text, tabs\tand spaces": "plain text, tabs\tand spaces",
		"a\r\nb":                       `a\r\nb`,
		"\x1b[2J\x00\x7f":              `\x1b[2J\x00\x7f`,
		"\u202eexe.txt\u200b":          `\u202eexe.txt\u200b`,
		"bad \xff\xfe utf-8":           `bad \xff\xfe utf-8`,
		"Société 東京 \\x41":             "Société 東京 \\x41",
		"\U000e0001tag":                `\U000e0001tag`,
	} {
		if got := inert(in); got != want {
			t.Errorf("inert(%q) = %q, want %q", in, got, want)
		}
	}
}

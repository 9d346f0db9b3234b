package action

import (
	"context"
	"fmt"
	"testing"

	"github.com/edgeban/edgeban/internal/mail"
	"github.com/edgeban/edgeban/internal/mail/mailtest"
	"github.com/edgeban/edgeban/internal/whois/whoistest"
)

// benchLines are 1000 sshd failure lines, one in ten with a hostile user
// name.
func benchLines() []string {
	lines := make([]string, 1000)
	for i := range lines {
		user := fmt.Sprintf("user%d", i)
		if i%10 == 0 {
			user = "evil\r\nBcc: victim@example.com\x1b[2J"
		}
		lines[i] = fmt.Sprintf("2026-03-04 05:06:%02d host sshd[%d]: Failed password for invalid user %s from 198.51.100.7 port %d ssh2",
			i%60, 1000+i, user, 40000+i)
	}
	return lines
}

// BenchmarkMailCompose writes the mail of a ban with 1000 lines (no
// whois): the body, its escaping and the encoded message.
func BenchmarkMailCompose(b *testing.B) {
	m, err := NewMail("sshd", mustSpec(b, `sendmail-whois-lines[whois=none]`), nil, MailEnv{Hostname: testHost, Log: discard})
	if err != nil {
		b.Fatal(err)
	}
	m.from.Addr, m.hostname = "fail2ban", testHost
	m.to, _ = mail.ParseAddressList("root")
	job := mailJob{event: "ban", ticket: Ticket{IP: "198.51.100.7", Failures: 1000, Matches: benchLines()}}
	b.ReportAllocs()
	for b.Loop() {
		raw, err := m.compose(context.Background(), job).Bytes()
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(raw)))
	}
}

// BenchmarkMailBan measures what a ban waits for its mail: Ban queues
// it, while the sender sends the mails before it to a loopback SMTP
// server. The mails still queued when it ends are dropped.
func BenchmarkMailBan(b *testing.B) {
	srv := mailtest.NewServer(b, mailtest.Options{})
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-srv.Messages():
			case <-stop:
				return
			}
		}
	}()
	m, err := NewMail("sshd", mustSpec(b, `mail-whois-lines[actionstart="", actionstop="", whois=none, smtphost="`+srv.Addr+`"]`),
		nil, MailEnv{Hostname: testHost, Log: discard})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := m.Start(ctx); err != nil {
		b.Fatal(err)
	}
	t := Ticket{IP: "198.51.100.7", Failures: 5, Matches: benchLines()[:5]}
	for b.Loop() {
		if err := m.Ban(context.Background(), t); err != nil {
			b.Fatal(err)
		}
		if len(m.queue) > m.queueSize/2 {
			b.StopTimer()
			for len(m.queue) > 0 {
				<-m.queue // the mails the sender cannot keep up with
			}
			b.StartTimer()
		}
	}
	b.StopTimer()
	cancel()
	expired, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	m.Stop(expired)
}

// BenchmarkMailDeliver sends one ban's mail whole: a whois lookup along
// a referral (two loopback servers), the message, and SMTP to loopback.
func BenchmarkMailDeliver(b *testing.B) {
	srv := mailtest.NewServer(b, mailtest.Options{})
	rir := whoistest.NewServer(b, func(string) string { return rirAnswer })
	iana := whoistest.NewServer(b, func(string) string { return "refer: " + rir.Addr + "\n" })
	m, err := NewMail("sshd", mustSpec(b, `mail-whois-lines[whois="`+iana.Addr+`", smtphost="`+srv.Addr+`"]`),
		nil, MailEnv{Hostname: testHost, Log: discard})
	if err != nil {
		b.Fatal(err)
	}
	m.smtp.Hello, m.hostname = testHost, testHost
	m.from.Addr = "fail2ban@" + testHost
	m.to, _ = mail.ParseAddressList("root")
	job := mailJob{event: "ban", ticket: Ticket{IP: "198.51.100.7", Failures: 5, Matches: benchLines()[:5]}}
	for b.Loop() {
		if err := m.deliver(context.Background(), job); err != nil {
			b.Fatal(err)
		}
		srv.Next(b, 0x7fffffff)
	}
}

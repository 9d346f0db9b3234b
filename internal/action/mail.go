package action

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/edgeban/edgeban/internal/config"
	"github.com/edgeban/edgeban/internal/mail"
	"github.com/edgeban/edgeban/internal/whois"
)

// mailKind is what a mail action sends and how.
type mailKind struct {
	sendmail bool // through the sendmail program, else by SMTP
	whois    bool // a whois report on the address
	lines    bool // the failures' log lines
}

// mailActions are fail2ban's mail actions that edgeban runs natively:
// sendmail-* through the sendmail program, as their files do; mail-*,
// whose files run the mail command, by SMTP to a local MTA.
var mailActions = map[string]mailKind{
	"sendmail":             {sendmail: true},
	"sendmail-whois":       {sendmail: true, whois: true},
	"sendmail-whois-lines": {sendmail: true, whois: true, lines: true},
	"mail":                 {},
	"mail-whois":           {whois: true},
	"mail-whois-lines":     {whois: true, lines: true},
}

// stockMailcmd are the mailcmd values of fail2ban's files, which the
// native actions replace; another one is the user's own command.
var stockMailcmd = map[string]bool{
	`/usr/sbin/sendmail -f "<sender>" "<dest>"`: true,
	`mail -E 'set escape' -s`:                   true,
}

// IsMail reports whether spec names one of the mail actions that edgeban
// runs natively, and is not told to run the shell file instead
// (native=false).
func IsMail(spec config.Spec) (bool, error) {
	_, ok := mailActions[spec.Name]
	return nativeWanted(spec, ok)
}

// Defaults of the native mail actions.
const (
	DefaultSMTPHost     = "localhost:25"
	DefaultWhoisTimeout = 10 * time.Second
	DefaultMailTimeout  = 30 * time.Second
	// mailQueue is how many mails may wait to be sent.
	mailQueue = 1000
)

// MailEnv is what the native mail actions take from the daemon.
type MailEnv struct {
	// Hostname is fail2ban's <fq-hostname>; "" looks it up when the
	// action starts (mail.FQDN).
	Hostname string
	// Log receives the errors of the mails sent in the background;
	// nil is slog.Default().
	Log *slog.Logger
}

// Mail is a native mail action of one jail: the mails of fail2ban's
// sendmail-*, mail-* and %(mta)s-whois-lines actions, written and sent
// by edgeban, with no shell.
//
// A ban's mail is composed and sent in the background, one at a time:
// a whois lookup takes seconds and a mail server may be slow, and the
// jail's next ban must not wait for them. So Ban only queues the mail
// (it fails when mailQueue mails wait already, and the jail tries it
// again later), and a mail that cannot be sent is logged, not retried.
// Stop sends what is queued, and the stop mail, within one timeout.
//
// The lines of a -lines mail are the failures' matched lines the jail
// kept (Ticket.Matches: maxmatches of them, the last grepmax shown),
// not, as fail2ban's files do, a grep of the log files for the address:
// those are the lines that made the ban, they need no reading of
// rotated logs, and no line merely naming the address is mistaken for
// one of its failures.
type Mail struct {
	name         string
	kind         mailKind
	jail         string // <name>
	sendername   string
	sender, dest string // as configured, <fq-hostname> not yet replaced
	grepMax      int
	startMail    bool
	stopMail     bool
	noRestored   bool
	whoisServer  string // "" for no whois
	whoisTimeout time.Duration
	timeout      time.Duration
	transport    mailTransport // from the parameters; its EHLO is set at Start
	smtp         *mail.SMTP    // transport, when it is SMTP
	env          MailEnv
	log          *slog.Logger
	queueSize    int

	mu       sync.Mutex
	hostname string
	from     mail.Address
	to       []mail.Address
	queue    chan mailJob
	stop     chan struct{} // closed by Stop
	done     chan struct{} // closed when the sender goroutine ends
	started  bool
	stopped  bool
}

// mailTransport sends a message: mail.SMTP or mail.Sendmail.
type mailTransport interface {
	Send(ctx context.Context, from string, to []string, msg []byte) error
}

type mailJob struct {
	event  string // "start", "ban", "stop"
	ticket Ticket
}

// NewMail builds the native mail action of spec in jail. def is the
// action's definition read from action.d (its [Init] defaults and the
// user's .local overrides, with the jail's parameters), or nil when
// action.d has no such file: then fail2ban's defaults apply.
//
// Its parameters are fail2ban's: dest (comma-separated), sender,
// sendername, name, grepmax, norestored (default true: a restored ban
// sends no mail), and actionstart/actionstop, whose being empty turns
// the start and stop mails off (as a sendmail-common.local that empties
// them does). And edgeban's own: sendmail (the program, default
// /usr/sbin/sendmail) and mailargs (extra arguments, split at spaces,
// never run by a shell) for sendmail-*; smtphost (host[:port], default
// localhost:25), smtptls (no, starttls or tls), smtpuser and
// smtppassword for mail-*; whois (the first whois server, default
// whois.iana.org:43; empty or "none": no lookup), whoistimeout (default
// 10 s, at most half the mail's time) and timeout (one mail, whois
// included; default 30 s).
func NewMail(jail string, spec config.Spec, def *Definition, env MailEnv) (*Mail, error) {
	kind, ok := mailActions[spec.Name]
	if !ok {
		return nil, fmt.Errorf("action %s: not a mail action", spec.Name)
	}
	if env.Log == nil {
		env.Log = slog.Default()
	}
	sender := "fail2ban"
	if !kind.sendmail {
		sender = "fail2ban@<fq-hostname>" // SMTP wants a domain; sendmail adds its own
	}
	p := map[string]string{
		"dest": "root", "sender": sender, "sendername": "Fail2Ban", "name": jail, "actname": spec.Name,
		"grepmax": "1000", "norestored": "1", "sendmail": mail.DefaultSendmail, "smtphost": DefaultSMTPHost,
		"smtptls": mail.TLSNone, "whois": whois.DefaultServer,
	}
	startMail, stopMail := true, true
	if def != nil {
		for _, k := range []string{"dest", "sender", "sendername", "name", "actname", "grepmax", "norestored", "sendmail",
			"mailargs", "smtphost", "smtptls", "smtpuser", "smtppassword", "whois", "whoistimeout", "timeout"} {
			if v, ok := def.Tags.Get(k); ok {
				p[k] = v
			}
		}
		if v, ok := def.Commands["norestored"]; ok {
			p["norestored"] = v
		}
		p["actname"] = def.Name
		startMail = strings.TrimSpace(def.Commands["actionstart"]) != ""
		stopMail = strings.TrimSpace(def.Commands["actionstop"]) != ""
	} else {
		for _, o := range spec.Options {
			p[o.Key] = o.Value
		}
		if v, ok := spec.Option("actionstart"); ok {
			startMail = strings.TrimSpace(v) != ""
		}
		if v, ok := spec.Option("actionstop"); ok {
			stopMail = strings.TrimSpace(v) != ""
		}
		for k, v := range p {
			if k != "name" {
				p[k] = strings.ReplaceAll(v, "<name>", p["name"])
			}
		}
	}
	m := &Mail{name: p["actname"], kind: kind, jail: p["name"], sendername: p["sendername"], sender: strings.TrimSpace(p["sender"]),
		dest: strings.TrimSpace(p["dest"]), startMail: startMail, stopMail: stopMail, env: env, queueSize: mailQueue,
		timeout: DefaultMailTimeout, whoisTimeout: DefaultWhoisTimeout}
	m.log = env.Log.With("action", m.name)
	bad := func(opt string, err error) error {
		return fmt.Errorf("action %s: option %q: %w", m.name, opt, err)
	}
	// The addresses are checked now, with a stand-in for the host name
	// that Start looks up.
	if _, err := mail.ParseAddressList(hostnameTags(m.dest, "localhost")); err != nil {
		return nil, bad("dest", err)
	}
	if _, err := mail.ParseAddress(hostnameTags(m.sender, "localhost")); err != nil {
		return nil, bad("sender", err)
	}
	var err error
	if m.grepMax, err = strconv.Atoi(strings.TrimSpace(p["grepmax"])); err != nil || m.grepMax < 0 {
		return nil, bad("grepmax", fmt.Errorf("%q is not a count", p["grepmax"]))
	}
	if m.noRestored, err = config.ParseBool(strings.TrimSpace(p["norestored"])); err != nil {
		return nil, bad("norestored", err)
	}
	for opt, dst := range map[string]*time.Duration{"timeout": &m.timeout, "whoistimeout": &m.whoisTimeout} {
		v := strings.TrimSpace(p[opt])
		if v == "" {
			continue
		}
		secs, err := config.Seconds(v)
		if err != nil || secs <= 0 {
			return nil, bad(opt, fmt.Errorf("%q is not a positive time", v))
		}
		*dst = time.Duration(secs * float64(time.Second))
	}
	if kind.whois {
		switch w := strings.TrimSpace(p["whois"]); strings.ToLower(w) {
		case "", "none":
		default:
			if m.whoisServer, err = whois.ParseServer(w); err != nil {
				return nil, bad("whois", err)
			}
		}
	}
	if kind.sendmail {
		m.transport = &mail.Sendmail{Path: strings.TrimSpace(p["sendmail"]), Args: strings.Fields(p["mailargs"])}
	} else {
		host := strings.TrimSpace(p["smtphost"])
		if _, _, err := net.SplitHostPort(host); err != nil {
			host = net.JoinHostPort(host, "25")
		}
		if _, _, err := net.SplitHostPort(host); err != nil || strings.HasPrefix(host, ":") {
			return nil, bad("smtphost", fmt.Errorf("%q is not host[:port]", p["smtphost"]))
		}
		tlsMode, err := mail.ParseTLS(p["smtptls"])
		if err != nil {
			return nil, bad("smtptls", err)
		}
		m.smtp = &mail.SMTP{Addr: host, TLS: tlsMode, Username: p["smtpuser"], Password: p["smtppassword"]}
		m.transport = m.smtp
	}
	if def != nil {
		if cmd, ok := def.Params["mailcmd"]; ok && !stockMailcmd[strings.TrimSpace(cmd)] {
			m.log.Warn("the action runs natively and does not run action.d's mailcmd; native=false runs it",
				"mailcmd", cmd, "via", m.via())
		}
	}
	return m, nil
}

// via says how the action sends, for the log.
func (m *Mail) via() string {
	if m.smtp != nil {
		return "smtp " + m.smtp.Addr
	}
	return "sendmail " + m.transport.(*mail.Sendmail).Path
}

// hostnameTags replaces fail2ban's host name tags in s.
func hostnameTags(s, fqdn string) string {
	short, _, _ := strings.Cut(fqdn, ".")
	return strings.NewReplacer("<fq-hostname>", fqdn, "<sh-hostname>", short).Replace(s)
}

// Name is the action's name in its jail.
func (m *Mail) Name() string { return m.name }

// NoRestored says that a restored ban sends no mail (norestored, true
// unless the action sets it false): the mail went at the first ban.
func (m *Mail) NoRestored() bool { return m.noRestored }

// Start looks the host name up (for <fq-hostname>), starts the sender,
// and queues the start mail. It fails only on addresses that the host
// name makes invalid.
func (m *Mail) Start(ctx context.Context) error {
	host := m.env.Hostname
	if host == "" {
		hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		host = mail.FQDN(hctx, nil)
		cancel()
	}
	from, err := mail.ParseAddress(hostnameTags(m.sender, host))
	if err != nil {
		return fmt.Errorf("action %s: sender (with <fq-hostname> %q): %w", m.name, host, err)
	}
	from.Name = m.sendername
	to, err := mail.ParseAddressList(hostnameTags(m.dest, host))
	if err != nil {
		return fmt.Errorf("action %s: dest (with <fq-hostname> %q): %w", m.name, host, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started {
		return fmt.Errorf("action %s: started twice", m.name)
	}
	if m.smtp != nil {
		m.smtp.Hello = host
	}
	m.hostname, m.from, m.to = host, from, to
	m.queue = make(chan mailJob, m.queueSize)
	m.stop, m.done = make(chan struct{}), make(chan struct{})
	m.started = true
	if m.startMail {
		m.queue <- mailJob{event: "start"}
	}
	go m.run(ctx)
	return nil
}

// run sends the queued mails, one at a time, until Stop or ctx's end.
// A mail under way is finished (within the timeout) when ctx ends.
func (m *Mail) run(ctx context.Context) {
	defer close(m.done)
	for {
		select {
		case <-m.stop:
			return
		case <-ctx.Done():
			return
		case job := <-m.queue:
			m.deliver(context.WithoutCancel(ctx), job)
		}
	}
}

// Ban queues the mail about t.
func (m *Mail) Ban(_ context.Context, t Ticket) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.started || m.stopped {
		return fmt.Errorf("action %s: not running", m.name)
	}
	select {
	case m.queue <- mailJob{event: "ban", ticket: t}:
		return nil
	default:
		return fmt.Errorf("action %s: %d mails wait to be sent already, the mail about %s waits for a retry", m.name, m.queueSize, t.IP)
	}
}

// Unban sends nothing, as in fail2ban.
func (m *Mail) Unban(context.Context, Ticket) error { return nil }

// Stop stops the sender, then sends the mails still queued and the stop
// mail, all within one timeout; a mail that did not go is an error.
func (m *Mail) Stop(ctx context.Context) error {
	m.mu.Lock()
	if !m.started || m.stopped {
		m.mu.Unlock()
		return nil
	}
	m.stopped = true
	close(m.stop)
	m.mu.Unlock()
	<-m.done
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	var jobs []mailJob
	for len(m.queue) > 0 { // Ban queues no more
		jobs = append(jobs, <-m.queue)
	}
	if m.stopMail {
		jobs = append(jobs, mailJob{event: "stop"})
	}
	var errs []error
	for _, job := range jobs {
		if ctx.Err() != nil {
			errs = append(errs, fmt.Errorf("%s mail not sent: %w", job.event, ctx.Err()))
			continue
		}
		if err := m.deliver(ctx, job); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("action %s: stop: %w", m.name, errors.Join(errs...))
	}
	return nil
}

// deliver composes and sends one mail within the timeout, and logs what
// came of it.
func (m *Mail) deliver(ctx context.Context, job mailJob) error {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	msg := m.compose(ctx, job)
	err := m.send(ctx, msg)
	log := m.log.With("mail", job.event)
	if job.event == "ban" {
		log = log.With("ip", job.ticket.IP)
	}
	if err != nil {
		log.Error("mail not sent", "err", err)
		return err
	}
	log.Debug("mail sent", "to", m.dest)
	return nil
}

// send sends msg by the action's transport.
func (m *Mail) send(ctx context.Context, msg *mail.Message) error {
	raw, err := msg.Bytes()
	if err != nil {
		return fmt.Errorf("action %s: %w", m.name, err)
	}
	to := make([]string, len(msg.To))
	for i, a := range msg.To {
		to[i] = a.Addr
	}
	if err := m.transport.Send(ctx, msg.From.Addr, to, raw); err != nil {
		return fmt.Errorf("action %s: %w", m.name, err)
	}
	return nil
}

// compose writes the mail of job, as fail2ban's files word it.
func (m *Mail) compose(ctx context.Context, job mailJob) *mail.Message {
	msg := &mail.Message{From: m.from, To: m.to, Date: time.Now(), MessageID: mail.NewMessageID(m.hostname)}
	var b strings.Builder
	b.WriteString("Hi,\n\n")
	switch job.event {
	case "start":
		msg.Subject = fmt.Sprintf("[Fail2Ban] %s: started on %s", m.jail, m.hostname)
		fmt.Fprintf(&b, "The jail %s has been started successfully.\n\n", m.jail)
	case "stop":
		msg.Subject = fmt.Sprintf("[Fail2Ban] %s: stopped on %s", m.jail, m.hostname)
		fmt.Fprintf(&b, "The jail %s has been stopped.\n\n", m.jail)
	case "ban":
		t := job.ticket
		ip := inert(t.IP)
		msg.Subject = fmt.Sprintf("[Fail2Ban] %s: banned %s from %s", m.jail, ip, m.hostname)
		if t.Failures > 0 {
			fmt.Fprintf(&b, "The IP %s has just been banned by %s after\n%d attempts against %s.\n\n", ip, m.sendername, t.Failures, m.jail)
		} else {
			fmt.Fprintf(&b, "The IP %s has just been banned by %s in the jail %s.\n\n", ip, m.sendername, m.jail)
		}
		if m.kind.whois {
			fmt.Fprintf(&b, "Here is more information about %s :\n\n", ip)
			m.whoisReport(ctx, &b, t.IP)
			b.WriteString("\n")
		}
		if m.kind.lines {
			fmt.Fprintf(&b, "Lines containing failures of %s (max %d)\n", ip, m.grepMax)
			lines := t.Matches
			if len(lines) > m.grepMax {
				lines = lines[len(lines)-m.grepMax:]
			}
			for _, l := range lines {
				b.WriteString(inert(l) + "\n")
			}
			if len(t.Matches) == 0 {
				b.WriteString("(none: this ban was not made from log lines the jail kept)\n")
			}
			b.WriteString("\n")
		}
	}
	fmt.Fprintf(&b, "Regards,\n\n%s\n", m.sendername)
	msg.Body = b.String()
	return msg
}

// whoisReport writes the whois summary of ip, then the answer of the
// last server asked, or why there is none. A failed lookup says so: the
// mail goes anyway.
func (m *Mail) whoisReport(ctx context.Context, b *strings.Builder, ip string) {
	if m.whoisServer == "" {
		b.WriteString("(no whois lookup: whois = none)\n")
		return
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		fmt.Fprintf(b, "(no whois lookup: %s is not an IP address)\n", inert(ip))
		return
	}
	// The lookup gets whoistimeout, at most half the time the mail has
	// left, so that the mail goes even when the lookup does not end.
	wait := m.whoisTimeout
	if dl, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(dl)/2)
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	c := whois.Client{Server: m.whoisServer}
	res, err := c.Lookup(ctx, addr)
	if len(res.Answers) > 0 {
		s := res.Summary()
		for _, f := range []struct{ label, value string }{
			{"Network", s.Range}, {"CIDR", s.CIDR}, {"Name", s.NetName}, {"Holder", s.Org},
			{"Country", s.Country}, {"Abuse", s.Abuse}, {"Source", s.Server},
		} {
			if f.value != "" {
				fmt.Fprintf(b, "%-9s %s\n", f.label+":", inert(f.value))
			}
		}
		var asked []string
		for _, a := range res.Answers {
			asked = append(asked, a.Server)
		}
		fmt.Fprintf(b, "%-9s %s\n", "Asked:", strings.Join(asked, ", "))
	}
	if err != nil {
		fmt.Fprintf(b, "The whois lookup failed: %s\n", inert(err.Error()))
	}
	if last, ok := res.Last(); ok {
		fmt.Fprintf(b, "\nThe answer of %s:\n\n", last.Server)
		for line := range strings.Lines(strings.TrimRight(last.Text, "\r\n")) {
			b.WriteString(inert(strings.TrimRight(line, "\r\n")) + "\n")
		}
		if last.Truncated {
			b.WriteString("[...] (cut: the answer was too long)\n")
		}
	}
}

// inert returns s with what would act on a reader's terminal or the
// mail's layout written as Go escapes: line breaks (\r, \n), other
// control characters (\x1b...), invisible format characters such as
// right-to-left overrides (\u202e), and bytes that are not UTF-8 (\xff).
// Printable text, tabs and spaces stay as they are.
func inert(s string) string {
	plain := true
	for _, c := range []byte(s) {
		if c < ' ' && c != '\t' || c >= 0x7f {
			plain = false
			break
		}
	}
	if plain {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\t' || r == ' ' || unicode.IsPrint(r):
			b.WriteString(s[i : i+size])
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\n':
			b.WriteString(`\n`)
		case r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
		i += size
	}
	return b.String()
}

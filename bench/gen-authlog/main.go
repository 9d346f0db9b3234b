// Command gen-authlog writes a synthetic Debian-style /var/log/auth.log for
// benchmarking filters against fail2ban-regex (bench/regex-vs-fail2ban.sh).
//
// The log is mostly noise (CRON and sudo PAM sessions, systemd-logind,
// accepted publickey logins, kernel firewall lines, postfix, polkit), plus
// the common OpenSSH failure forms coming from a few thousand attacker
// addresses, about 7% of the lines by default. Addresses come from the
// documentation and benchmarking ranges only: 192.0.2.0/24, 198.51.100.0/24
// and 203.0.113.0/24 (RFC 5737), 198.18.0.0/15 (RFC 2544) and 2001:db8::/32
// (RFC 3849). Timestamps are in the traditional syslog form ("Nov  5
// 10:00:01"), never decrease, and span about 20 days whatever -n is.
//
// The output depends on -n and -seed only: the generator uses its own
// splitmix64 source, so it does not change across Go releases.
//
// Usage:
//
//	go run ./bench/gen-authlog -n 1000000 -o bench/out/auth.log
//	go run ./bench/gen-authlog -n 1000 -seed 7 | less
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"math/bits"
	"os"
	"strconv"
	"time"
)

// rng is splitmix64: tiny, fast and stable forever.
type rng struct{ s uint64 }

func (r *rng) u64() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// intn returns a number in [0, n) (multiply-shift; the bias is negligible).
func (r *rng) intn(n int) int {
	hi, _ := bits.Mul64(r.u64(), uint64(n))
	return int(hi)
}

func (r *rng) float() float64 { return float64(r.u64()>>11) / (1 << 53) }

func (r *rng) pick(s []string) string { return s[r.intn(len(s))] }

const (
	host      = "host"
	nAttacker = 3000         // distinct attacker addresses
	v6Every   = 8            // every 8th attacker address is IPv6
	span      = 20 * 86400e3 // ms the whole log spans
)

var (
	// attacked account names, common ones first (picked with a skew)
	badUsers = []string{"root", "admin", "test", "user", "ubuntu", "oracle", "postgres", "git",
		"ftpuser", "pi", "guest", "deploy", "support", "ubnt", "mysql", "debian", "centos",
		"hadoop", "jenkins", "ansible", "steam", "minecraft", "dev", "www", "www-data", "nagios",
		"tomcat", "elastic", "es", "kafka", "redis", "user1", "test1", "administrator", "service",
		"backup", "sysadmin", "operator", "vagrant", "docker", "123", "1234", "adm", "server",
		"sol", "solana", "validator", "node", "ethereum", "odoo", "zabbix", "teamspeak", "ts3",
		"sftp", "ftp", "web", "ec2-user", "azureuser", "daemon", "nobody", "gitlab", "svn"}
	validBad = map[string]bool{"root": true, "git": true, "backup": true, "daemon": true, "nobody": true}
	// legitimate users and where they log in from
	goodUsers = []string{"alice", "bob", "carol", "deploy", "backup"}
	uids      = map[string]int{"alice": 1000, "bob": 1001, "carol": 1002, "deploy": 1003, "backup": 34}
	keyTypes  = []string{"ED25519", "RSA", "ECDSA"}
	cronCmds  = []string{
		"(root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)",
		"(root) CMD (   cd / && run-parts --report /etc/cron.hourly)",
		"(root) CMD (test -x /etc/cron.daily/popularity-contest && /etc/cron.daily/popularity-contest --crond)",
		"(www-data) CMD (php /var/www/nextcloud/cron.php)",
		"(root) CMD ([ -x /usr/lib/php/sessionclean ] && if [ ! -d /run/systemd/system ]; then /usr/lib/php/sessionclean; fi)",
		"(backup) CMD (/usr/local/bin/backup.sh >/dev/null 2>&1)",
	}
	sudoCmds = []string{"/usr/bin/apt update", "/usr/bin/systemctl restart nginx", "/usr/bin/journalctl -u edgeban -n 50",
		"/usr/bin/tail -f /var/log/auth.log", "/usr/sbin/nft list ruleset", "/usr/bin/docker ps"}
	kexOffers = []string{
		"diffie-hellman-group1-sha1,diffie-hellman-group14-sha1",
		"diffie-hellman-group-exchange-sha1,diffie-hellman-group1-sha1",
		"ssh-rsa,ssh-dss",
	}
	kexWhat = []string{"key exchange method", "key exchange method", "host key type", "cipher"}
)

type gen struct {
	r    rng
	w    *bufio.Writer
	buf  []byte
	left int // lines still to write

	ms     float64 // time since start, ms
	stepMs float64 // mean step between events
	start  time.Time
	lastS  int64
	stamp  []byte // "Nov  5 10:00:01 host " for lastS

	attackers []string
	goodIPs   []string
	pid       int
	session   int
	failLines int // lines in the failure forms (for -stats)
}

func newGen(w io.Writer, n int, seed uint64) *gen {
	g := &gen{r: rng{s: seed}, w: bufio.NewWriterSize(w, 1<<20), left: n, pid: 2000, session: 100,
		start: time.Date(2025, time.November, 1, 0, 0, 0, 0, time.UTC), lastS: -1}
	// About 2.2 lines per event on average.
	g.stepMs = span / (float64(n)/2.2 + 1)
	for i := 0; i < nAttacker; i++ {
		var ip string
		switch {
		case i%v6Every == v6Every-1:
			ip = fmt.Sprintf("2001:db8:%x:%x::%x", 0x100+g.r.intn(0xff00), g.r.intn(0x10000), 1+g.r.intn(0xfffe))
		case i < 250:
			ip = fmt.Sprintf("192.0.2.%d", 1+i)
		case i < 500:
			ip = fmt.Sprintf("203.0.113.%d", i-249)
		default:
			ip = fmt.Sprintf("198.%d.%d.%d", 18+g.r.intn(2), g.r.intn(256), 1+g.r.intn(254))
		}
		g.attackers = append(g.attackers, ip)
	}
	for i := 0; i < 12; i++ {
		g.goodIPs = append(g.goodIPs, "198.51.100."+strconv.Itoa(10+i*7))
	}
	return g
}

// tick advances the clock by a random step around stepMs.
func (g *gen) tick() { g.ms += g.r.float() * 2 * g.stepMs }

// line starts a line for daemon (with pid if pid > 0); finish it with end.
func (g *gen) line(daemon string, pid int) {
	s := int64(g.ms / 1000)
	if s != g.lastS {
		g.lastS = s
		g.stamp = g.start.Add(time.Duration(s)*time.Second).AppendFormat(g.stamp[:0], time.Stamp)
		g.stamp = append(g.stamp, ' ')
		g.stamp = append(g.stamp, host...)
		g.stamp = append(g.stamp, ' ')
	}
	g.buf = append(g.buf[:0], g.stamp...)
	g.buf = append(g.buf, daemon...)
	if pid > 0 {
		g.buf = append(g.buf, '[')
		g.buf = strconv.AppendInt(g.buf, int64(pid), 10)
		g.buf = append(g.buf, ']')
	}
	g.buf = append(g.buf, ':', ' ')
}

func (g *gen) s(parts ...string) {
	for _, p := range parts {
		g.buf = append(g.buf, p...)
	}
}

func (g *gen) i(n int) { g.buf = strconv.AppendInt(g.buf, int64(n), 10) }

// end writes the line; fail marks an sshd failure-form line.
func (g *gen) end(fail bool) {
	if g.left <= 0 {
		return
	}
	g.buf = append(g.buf, '\n')
	g.w.Write(g.buf)
	g.left--
	if fail {
		g.failLines++
	}
}

func (g *gen) newPid() int {
	g.pid += 1 + g.r.intn(40)
	if g.pid > 4190000 {
		g.pid = 1000
	}
	return g.pid
}

func (g *gen) port() int { return 1024 + g.r.intn(64512) }

// attacker picks an address with a skew: a few addresses do most attacks.
func (g *gen) attacker() string {
	u := g.r.float()
	return g.attackers[int(u*u*u*nAttacker)]
}

func (g *gen) badUser() string {
	u := g.r.float()
	return badUsers[int(u*u*float64(len(badUsers)))]
}

// sshd writes one sshd line for pid made of parts.
func (g *gen) sshd(pid int, fail bool, parts ...string) {
	g.line("sshd", pid)
	g.s(parts...)
	g.end(fail)
}

func (g *gen) sshdPort(pid int, fail bool, pre, ip string, port int, post string) {
	g.line("sshd", pid)
	g.s(pre, ip, " port ")
	g.i(port)
	g.s(post)
	g.end(fail)
}

// ---------------------------------------------------------------- noise

func (g *gen) cron() {
	pid := g.newPid()
	g.line("CRON", pid)
	g.s("pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)")
	g.end(false)
	g.line("CRON", pid)
	g.s(g.r.pick(cronCmds))
	g.end(false)
	g.line("CRON", pid)
	g.s("pam_unix(cron:session): session closed for user root")
	g.end(false)
}

func (g *gen) sudo() {
	u := g.r.pick(goodUsers[:3])
	g.line("sudo", 0)
	g.s("   ", u, " : TTY=pts/", strconv.Itoa(g.r.intn(4)), " ; PWD=/home/", u, " ; USER=root ; COMMAND=", g.r.pick(sudoCmds))
	g.end(false)
	g.line("sudo", 0)
	g.s("pam_unix(sudo:session): session opened for user root(uid=0) by ", u, "(uid=")
	g.i(uids[u])
	g.s(")")
	g.end(false)
	g.tick()
	g.line("sudo", 0)
	g.s("pam_unix(sudo:session): session closed for user root")
	g.end(false)
}

// login is a legitimate publickey login and its logout.
func (g *gen) login() {
	pid, u, ip, port := g.newPid(), g.r.pick(goodUsers), g.r.pick(g.goodIPs), g.port()
	g.session++
	sess := strconv.Itoa(g.session)
	g.line("sshd", pid)
	g.s("Accepted publickey for ", u, " from ", ip, " port ")
	g.i(port)
	g.s(" ssh2: ", g.r.pick(keyTypes), " SHA256:", fingerprint(uint64(len(u))*7919+uint64(port)%3))
	g.end(false)
	g.line("sshd", pid)
	g.s("pam_unix(sshd:session): session opened for user ", u, "(uid=")
	g.i(uids[u])
	g.s(") by (uid=0)")
	g.end(false)
	g.line("systemd-logind", 612)
	g.s("New session ", sess, " of user ", u, ".")
	g.end(false)
	g.line("systemd", 1)
	g.s("Started session-", sess, ".scope - Session ", sess, " of User ", u, ".")
	g.end(false)
	g.tick()
	g.sshdPort(pid, false, "Received disconnect from ", ip, port, ":11: disconnected by user")
	g.sshdPort(pid, false, "Disconnected from user "+u+" ", ip, port, "")
	g.sshd(pid, false, "pam_unix(sshd:session): session closed for user ", u)
	g.line("systemd", 1)
	g.s("session-", sess, ".scope: Deactivated successfully.")
	g.end(false)
	g.line("systemd-logind", 612)
	g.s("Session ", sess, " logged out. Waiting for processes to exit.")
	g.end(false)
	g.line("systemd-logind", 612)
	g.s("Removed session ", sess, ".")
	g.end(false)
}

func fingerprint(x uint64) string {
	const a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	r := rng{s: x}
	b := make([]byte, 43)
	for i := range b {
		b[i] = a[r.intn(64)]
	}
	return string(b)
}

func (g *gen) kernel() {
	g.line("kernel", 0)
	g.s("[")
	g.i(100000 + int(g.ms/1000))
	g.s(".")
	g.i(100000 + g.r.intn(900000))
	g.s("] [UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:ab:cd:ef:08:00 SRC=", g.attacker(),
		" DST=192.0.2.10 LEN=40 TOS=0x00 PREC=0x00 TTL=243 ID=54321 PROTO=TCP SPT=")
	g.i(g.port())
	g.s(" DPT=")
	g.i([]int{23, 3389, 8080, 5900, 445, 2222}[g.r.intn(6)])
	g.s(" WINDOW=1024 RES=0x00 SYN URGP=0")
	g.end(false)
}

func (g *gen) postfix() {
	pid, ip := g.newPid(), g.attacker()
	g.line("postfix/smtpd", pid)
	g.s("connect from unknown[", ip, "]")
	g.end(false)
	if g.r.intn(2) == 0 {
		g.line("postfix/smtpd", pid)
		g.s("warning: unknown[", ip, "]: SASL LOGIN authentication failed: UGFzc3dvcmQ6")
		g.end(false)
	}
	g.line("postfix/smtpd", pid)
	g.s("disconnect from unknown[", ip, "] ehlo=1 auth=0/1 rset=1 quit=1 commands=3/5")
	g.end(false)
}

func (g *gen) misc() {
	switch g.r.intn(6) {
	case 0:
		g.line("polkitd", 701)
		g.s("Registered Authentication Agent for unix-process:", strconv.Itoa(g.newPid()), ":", strconv.Itoa(g.r.intn(1e6)),
			" (system bus name :1.", strconv.Itoa(g.r.intn(900)), " [/usr/bin/pkttyagent --notify-fd 5 --fallback], object path /org/freedesktop/PolicyKit1/AuthenticationAgent, locale C.UTF-8)")
	case 1:
		g.line("systemd-logind", 612)
		g.s("Watching system buttons on /dev/input/event0 (Power Button)")
	case 2:
		g.line("dbus-daemon", 640)
		g.s("[system] Successfully activated service 'org.freedesktop.timedate1'")
	case 3:
		if g.r.intn(50) == 0 { // sshd restarted
			g.line("sshd", g.newPid())
			g.s("Server listening on 0.0.0.0 port 22.")
		} else {
			g.line("systemd", 1)
			g.s("Started sysstat-collect.service - system activity accounting tool.")
		}
	case 4:
		g.line("systemd", 1)
		g.s("Starting logrotate.service - Rotate log files...")
	default:
		g.line("su", g.newPid())
		g.s("pam_unix(su:session): session opened for user postgres(uid=114) by alice(uid=0)")
	}
	g.end(false)
}

// ---------------------------------------------------------------- attacks

// invalidUser: a password guess for an account that does not exist.
func (g *gen) invalidUser() {
	pid, ip, port, u := g.newPid(), g.attacker(), g.port(), g.badUser()
	if validBad[u] {
		u = "admin"
	}
	g.sshdPort(pid, true, "Invalid user "+u+" from ", ip, port, "")
	if g.r.intn(4) == 0 { // gave up before a password
		g.sshdPort(pid, true, "Connection closed by invalid user "+u+" ", ip, port, " [preauth]")
		return
	}
	g.sshd(pid, false, "pam_unix(sshd:auth): check pass; user unknown")
	g.sshd(pid, true, "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=", ip)
	g.tick()
	g.sshdPort(pid, true, "Failed password for invalid user "+u+" from ", ip, port, " ssh2")
	g.sshdPort(pid, true, "Received disconnect from ", ip, port, ":11: Bye Bye [preauth]")
	g.sshdPort(pid, true, "Disconnected from invalid user "+u+" ", ip, port, " [preauth]")
}

// knownUser: guesses at an account that exists (root mostly).
func (g *gen) knownUser() {
	pid, ip, port := g.newPid(), g.attacker(), g.port()
	u := "root"
	if g.r.intn(5) == 0 {
		u = g.r.pick([]string{"git", "backup", "daemon"})
	}
	g.line("sshd", pid)
	g.s("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=", ip, "  user=", u)
	g.end(true)
	tries := 1 + g.r.intn(6)
	for t := 0; t < tries; t++ {
		g.sshdPort(pid, true, "Failed password for "+u+" from ", ip, port, " ssh2")
		g.tick()
	}
	switch {
	case tries == 6:
		g.sshdPort(pid, true, "error: maximum authentication attempts exceeded for "+u+" from ", ip, port, " ssh2 [preauth]")
		g.sshdPort(pid, true, "Disconnecting authenticating user "+u+" ", ip, port, ": Too many authentication failures [preauth]")
		g.line("sshd", pid)
		g.s("PAM 5 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=", ip, "  user=", u)
		g.end(true)
	case g.r.intn(2) == 0:
		g.sshdPort(pid, true, "Connection closed by authenticating user "+u+" ", ip, port, " [preauth]")
	default:
		g.sshdPort(pid, true, "Received disconnect from ", ip, port, ":11: Bye Bye [preauth]")
		g.sshdPort(pid, true, "Disconnected from authenticating user "+u+" ", ip, port, " [preauth]")
	}
}

// scanner: protocol-level probes that never get to authentication.
func (g *gen) scanner() {
	pid, ip, port := g.newPid(), g.attacker(), g.port()
	switch g.r.intn(6) {
	case 0, 1:
		g.sshdPort(pid, true, "Connection closed by ", ip, port, " [preauth]")
	case 2:
		g.sshdPort(pid, true, "Unable to negotiate with ", ip, port,
			": no matching "+g.r.pick(kexWhat)+" found. Their offer: "+g.r.pick(kexOffers)+" [preauth]")
	case 3:
		g.sshdPort(pid, true, "banner exchange: Connection from ", ip, port, ": invalid format")
	case 4:
		g.sshd(pid, true, "error: kex_exchange_identification: Connection closed by remote host")
		g.sshdPort(pid, true, "Connection closed by ", ip, port, "")
	default:
		g.sshdPort(pid, true, "Did not receive identification string from ", ip, port, "")
	}
}

// notAllowed: AllowUsers refuses the account, the client tries anyway.
func (g *gen) notAllowed() {
	pid, ip, port := g.newPid(), g.attacker(), g.port()
	u := g.r.pick([]string{"root", "root", "git", "backup"})
	g.sshd(pid, true, "User ", u, " from ", ip, " not allowed because not listed in AllowUsers")
	g.tick()
	g.sshdPort(pid, true, "Failed password for invalid user "+u+" from ", ip, port, " ssh2")
	g.sshdPort(pid, true, "Connection closed by invalid user "+u+" ", ip, port, " [preauth]")
}

// rare: less common forms.
func (g *gen) rare() {
	pid, ip, port := g.newPid(), g.attacker(), g.port()
	u := g.badUser()
	switch g.r.intn(5) {
	case 0:
		g.sshdPort(pid, true, "Failed publickey for invalid user "+u+" from ", ip, port, " ssh2: RSA SHA256:"+fingerprint(uint64(port)))
	case 1:
		g.sshdPort(pid, true, "Failed none for invalid user "+u+" from ", ip, port, " ssh2")
	case 2:
		g.sshd(pid, true, "error: PAM: Authentication failure for illegal user ", u, " from ", ip)
	case 3:
		g.sshdPort(pid, true, "Received disconnect from ", ip, port, ":14: No supported authentication methods available [preauth]")
	default:
		g.sshdPort(pid, true, "Failed publickey for root from ", ip, port, " ssh2: ED25519 SHA256:"+fingerprint(uint64(port)))
	}
}

// event writes one event (one or more lines).
func (g *gen) event() {
	g.tick()
	switch x := g.r.intn(1000); {
	case x < 330:
		g.cron()
	case x < 380:
		g.sudo()
	case x < 420:
		g.login()
	case x < 650:
		g.kernel()
	case x < 700:
		g.postfix()
	case x < 940:
		g.misc()
	case x < 960:
		g.invalidUser()
	case x < 975:
		g.knownUser()
	case x < 990:
		g.scanner()
	case x < 996:
		g.notAllowed()
	default:
		g.rare()
	}
}

func main() {
	n := flag.Int("n", 1000000, "number of lines")
	seed := flag.Uint64("seed", 20251125, "random seed: the same seed and -n give the same log")
	out := flag.String("o", "-", "output file (- for stdout)")
	stats := flag.Bool("stats", false, "print line counts and the time taken to stderr")
	flag.Parse()
	if *n < 0 {
		fmt.Fprintln(os.Stderr, "gen-authlog: -n must be >= 0")
		os.Exit(2)
	}
	t0 := time.Now()
	var w io.Writer = os.Stdout
	var f *os.File
	if *out != "-" {
		var err error
		if f, err = os.Create(*out); err != nil {
			fmt.Fprintln(os.Stderr, "gen-authlog:", err)
			os.Exit(1)
		}
		w = f
	}
	g := newGen(w, *n, *seed)
	for g.left > 0 {
		g.event()
	}
	err := g.w.Flush()
	if f != nil {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen-authlog:", err)
		os.Exit(1)
	}
	if *stats {
		fmt.Fprintf(os.Stderr, "gen-authlog: %d lines, %d in sshd failure forms (%.1f%%), %d attacker addresses, %s\n",
			*n, g.failLines, 100*float64(g.failLines)/float64(max(*n, 1)), nAttacker, time.Since(t0).Round(time.Millisecond))
	}
}

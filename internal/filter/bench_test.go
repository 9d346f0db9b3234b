package filter

import "testing"

var sshdLines = []string{
	" host sshd[2716]: Failed password for invalid user admin from 192.0.2.1 port 22 ssh2",
	" host sshd[2716]: Failed password for root from 2001:db8::1 port 50916 ssh2",
	" host sshd[2716]: Invalid user oracle from 198.51.100.7 port 41234",
	" host sshd[2716]: Connection closed by authenticating user root 192.0.2.1 port 50916 [preauth]",
	" host sshd[2716]: Accepted publickey for deploy from 192.0.2.9 port 50000 ssh2: RSA SHA256:abc",
	" host sshd[2716]: pam_unix(sshd:session): session opened for user deploy by (uid=0)",
}

// BenchmarkMatchSSHD matches typical sshd lines (date already cut out) as
// fail2ban does: sshd's prefregex, then its failregexes in order until one
// matches. One op is one line.
func BenchmarkMatchSSHD(b *testing.B) {
	es := loadCompat(b)
	for _, mode := range []map[string]string{{}, {"mode": "aggressive"}} {
		name := "normal"
		if len(mode) > 0 {
			name = mode["mode"]
		}
		b.Run(name, func(b *testing.B) {
			cf := compileFilter(b, es, "sshd", mode)
			re2 := 0
			for _, r := range cf.fails {
				if r.Engine() == "re2" {
					re2++
				}
			}
			b.Logf("sshd %s: %d failregexes, %d on re2", name, len(cf.fails), re2)
			i := 0
			for b.Loop() {
				line := sshdLines[i%len(sshdLines)]
				i++
				m, ok := cf.pref.Match(line)
				if !ok {
					b.Fatalf("prefregex: no match on %q", line)
				}
				content, _ := m.Group("content")
				for _, r := range cf.fails {
					if _, ok := r.Match(content); ok {
						break
					}
				}
			}
		})
	}
}

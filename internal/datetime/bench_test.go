package datetime

import (
	"testing"
	"time"
)

var benchLines = []string{
	"Jan 23 21:59:59 host sshd[2716]: Failed password for invalid user admin from 192.0.2.1 port 22 ssh2",
	"Jan 23 21:59:59 host sshd[2716]: Connection closed by 192.0.2.1 port 50916 [preauth]",
	`192.0.2.1 - - [23/Jan/2005:21:59:59 +0100] "GET /wp-login.php HTTP/1.1" 404 162 "-" "Mozilla/5.0"`,
	`2005/01/23 21:59:59 [error] 1234#0: *5 user "admin": password mismatch, client: 192.0.2.1, server: example.com`,
}

// BenchmarkFindDefault measures the default detector on typical syslog and
// nginx lines (one op is one line).
func BenchmarkFindDefault(b *testing.B) {
	for _, bc := range []struct {
		name  string
		lines []string
	}{
		{"syslog", benchLines[:2]},
		{"nginx-access", benchLines[2:3]},
		{"nginx-error", benchLines[3:4]},
		{"mixed", benchLines},
	} {
		b.Run(bc.name, func(b *testing.B) {
			d := NewDefault(Options{Location: time.UTC, Now: func() time.Time { return time.Unix(1124013600, 0) }})
			i := 0
			for b.Loop() {
				if _, _, _, ok := d.Find(bc.lines[i%len(bc.lines)]); !ok {
					b.Fatal("no date")
				}
				i++
			}
		})
	}
}

package filter

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// authLog builds a synthetic auth.log of n lines: mostly noise (cron,
// sudo, systemd, accepted logins) with the common sshd failure forms
// mixed in, deterministic for a given n.
func authLog(n int) []byte {
	noise := []string{
		"CRON[%d]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)",
		"CRON[%d]: pam_unix(cron:session): session closed for user root",
		"systemd[1]: Started Session %d of User deploy.",
		"sudo[%d]:   deploy : TTY=pts/0 ; PWD=/home/deploy ; USER=root ; COMMAND=/usr/bin/apt update",
		"sshd[%d]: Accepted publickey for deploy from 198.51.100.20 port 50022 ssh2: ED25519 SHA256:abcdef",
		"sshd[%d]: pam_unix(sshd:session): session opened for user deploy(uid=1000) by (uid=0)",
		"kernel: [%d.123456] audit: type=1400 audit(1700000000.000:1): apparmor=\"STATUS\"",
		"postfix/smtpd[%d]: connect from unknown[203.0.113.77]",
	}
	fails := []string{
		"sshd[%d]: Failed password for invalid user admin from 192.0.2.%d port 22 ssh2",
		"sshd[%d]: Failed password for root from 192.0.2.%d port 50916 ssh2",
		"sshd[%d]: Invalid user oracle from 203.0.113.%d port 41234",
		"sshd[%d]: Connection closed by authenticating user root 192.0.2.%d port 50916 [preauth]",
		"sshd[%d]: error: maximum authentication attempts exceeded for root from 192.0.2.%d port 22 ssh2 [preauth]",
		"sshd[%d]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.%d  user=root",
	}
	var b bytes.Buffer
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	x := uint32(2463534242)
	for i := 0; i < n; i++ {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		ts := start.Add(time.Duration(i) * 1700 * time.Millisecond).Format(time.Stamp)
		if x%100 < 8 {
			fmt.Fprintf(&b, "%s web1 "+fails[x%uint32(len(fails))]+"\n", ts, 1000+x%30000, 1+x%250)
		} else {
			fmt.Fprintf(&b, "%s web1 "+noise[x%uint32(len(noise))]+"\n", ts, 1000+x%30000)
		}
	}
	return b.Bytes()
}

// BenchmarkScan runs whole filters over a synthetic auth.log as `edgeban
// regex` does (date detection, prefregex, failregexes, counts), with one
// worker and with one per CPU. The lines/s metric is the figure to read.
func BenchmarkScan(b *testing.B) {
	const n = 200000
	log := authLog(n)
	filters := map[string]func(b *testing.B) *Definition{
		"fail2ban-sshd": func(b *testing.B) *Definition {
			d, err := Load(sharedDir(b, "fail2ban/config"), "sshd", LoadOptions{Backend: "auto"})
			if err != nil {
				b.Fatal(err)
			}
			return d
		},
		"edgeban-sshd": func(b *testing.B) *Definition {
			d, err := Load(filepath.Join(ownConfig), "sshd", LoadOptions{Backend: "auto"})
			if err != nil {
				b.Fatal(err)
			}
			return d
		},
	}
	for _, name := range []string{"fail2ban-sshd", "edgeban-sshd"} {
		for _, workers := range []int{1, 0} {
			b.Run(fmt.Sprintf("%s/workers=%d", name, workers), func(b *testing.B) {
				def := filters[name](b)
				now := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
				var st Stats
				for b.Loop() {
					f, err := New(def, Config{CheckAll: true, Location: time.UTC, Now: func() time.Time { return now }, Workers: workers})
					if err != nil {
						b.Fatal(err)
					}
					st, err = f.Scan(context.Background(), bytes.NewReader(log), nil, nil)
					if err != nil {
						b.Fatal(err)
					}
				}
				if st.Matched == 0 || st.Lines != n {
					b.Fatalf("scan: %+v", st)
				}
				b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
				b.SetBytes(int64(len(log)))
			})
		}
	}
}

// scanBothWays runs def over log line by line with Process, and with
// Scan for each number of workers, and returns what each found: the
// failures, one formatted string each, and the counts.
func scanBothWays(t *testing.T, def *Definition, log []byte, now time.Time, workers ...int) (want []string, wantSt Stats, got [][]string, gotSt []Stats) {
	t.Helper()
	newFilter := func(workers int) *Filter {
		f, err := New(def, Config{CheckAll: true, Location: time.UTC, Now: func() time.Time { return now }, Workers: workers})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	format := func(n int, fl Failure) string {
		return fmt.Sprintf("%d %d %s %s %v %v %v", n, fl.Regex, fl.ID, fl.Time, fl.NoFail, fl.Users, fl.Matches)
	}
	ref := newFilter(1)
	wantSt = Stats{FailHits: make([]int, len(ref.fail)), IgnoreHits: make([]int, len(ref.ignore))}
	for i, line := range strings.Split(strings.TrimSuffix(string(log), "\n"), "\n") {
		wantSt.Physical++
		line = strings.TrimSuffix(line, "\r")
		if line == "" || line[0] == '#' {
			continue
		}
		res := ref.Process(line)
		wantSt.add(res)
		for _, fl := range res.Failures {
			want = append(want, format(i+1, fl))
		}
	}
	for _, w := range workers {
		f := newFilter(w)
		var out []string
		st, err := f.Scan(context.Background(), bytes.NewReader(log), func(lr *LineResult) error {
			for _, fl := range lr.Failures {
				out = append(out, format(lr.Number, fl))
			}
			return nil
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, gotSt = append(got, out), append(gotSt, st)
	}
	return want, wantSt, got, gotSt
}

// TestScanMatchesProcess checks that Scan, with its workers and the lines
// it does not date, finds exactly what Process finds line by line.
func TestScanMatchesProcess(t *testing.T) {
	// Every 37th line loses its date: it takes the previous line's.
	lines := strings.Split(strings.TrimSuffix(string(authLog(30000)), "\n"), "\n")
	for i := 36; i < len(lines); i += 37 {
		lines[i] = lines[i][len(time.Stamp):]
	}
	log := []byte(strings.Join(lines, "\n") + "\n")
	now := time.Date(2026, 11, 1, 0, 0, 30, 0, time.UTC) // dateless lines may take a recent date
	for _, dir := range []string{sharedDirOr(t, "fail2ban/config"), ownConfig} {
		if dir == "" {
			continue
		}
		def, err := Load(dir, "sshd", LoadOptions{Backend: "auto"})
		if err != nil {
			t.Fatal(err)
		}
		workers := []int{1, 4}
		want, wantSt, got, gotSt := scanBothWays(t, def, log, now, workers...)
		for i, w := range workers {
			if fmt.Sprint(gotSt[i]) != fmt.Sprint(wantSt) {
				t.Errorf("%s, %d workers: stats differ:\n Process %+v\n Scan    %+v", dir, w, wantSt, gotSt[i])
			}
			if len(want) == 0 || fmt.Sprint(got[i]) != fmt.Sprint(want) {
				t.Errorf("%s, %d workers: failures differ (%d vs %d)", dir, w, len(got[i]), len(want))
			}
		}
	}
}

// TestScanMatchesProcessCorpus runs every single-line fail2ban filter
// over its own sample log both ways, Scan (workers, undated lines) and
// Process line by line, and compares the failures found.
func TestScanMatchesProcessCorpus(t *testing.T) {
	root := sharedDir(t, "fail2ban")
	logs := filepath.Join(root, "fail2ban/tests/files/logs")
	compared := 0
	for _, c := range corpusFilters(t, root) {
		data, err := os.ReadFile(filepath.Join(logs, c.name))
		if err != nil {
			continue
		}
		def, err := Load(c.confDir, c.name, LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if def.MaxLines > 1 {
			continue
		}
		want, _, got, _ := scanBothWays(t, def, data, time.Unix(sampleNow, 0), 2)
		if strings.Join(got[0], "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: Scan and Process differ: scan %d failures, process %d", c.name, len(got[0]), len(want))
		}
		compared++
	}
	if compared < 80 {
		t.Fatalf("only %d filters compared", compared)
	}
}

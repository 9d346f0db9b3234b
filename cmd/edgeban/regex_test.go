package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runMain runs the CLI in-process and returns stdout and the error.
func runMain(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	c := &cli{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	err := c.main(context.Background(), args)
	return out.String(), err
}

// TestRegexCommand runs `edgeban regex` on a small log with edgeban's own
// sshd filter: the summary counts, the JSON stream (line numbers with
// comments counted, ids, fractional times, fields) and the closing
// summary object.
func TestRegexCommand(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "auth.log")
	content := "# a comment line\n" +
		"2025-11-25T10:00:01.250000+00:00 web1 sshd[11]: Invalid user admin from 192.0.2.7 port 41234\n" +
		"2025-11-25T10:00:02+00:00 web1 CRON[12]: pam_unix(cron:session): session opened for user root\n" +
		"2025-11-25T10:00:03+00:00 web1 sshd[13]: Failed password for invalid user x from 6.6.6.6 port 22 ssh2 from 198.51.100.9 port 5555 ssh2\n" +
		"2025-11-25T10:00:04+00:00 web1 sshd[14]: Invalid user bob from 192.030.0.6 port 22" // no final newline
	if err := os.WriteFile(log, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join("..", "..", "config")

	out, err := runMain(t, "regex", "-c", conf, "--json", "--now", "1764064800", log, "sshd")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	type failure struct {
		Line    int            `json:"line"`
		ID      string         `json:"id"`
		Time    float64        `json:"time"`
		Matches []string       `json:"matches"`
		Fields  map[string]any `json:"fields"`
		Summary map[string]int `json:"summary"`
	}
	var got []failure
	for _, l := range lines {
		var f failure
		if err := json.Unmarshal([]byte(l), &f); err != nil {
			t.Fatalf("bad JSON line %q: %v", l, err)
		}
		got = append(got, f)
	}
	want := []struct {
		line int
		id   string
		time float64
		user string
	}{
		{2, "192.0.2.7", 1764064801.25, "admin"},
		{4, "198.51.100.9", 1764064803, ""},
		{5, "192.030.0.6", 1764064804, "bob"},
	}
	if len(got) != len(want)+1 {
		t.Fatalf("got %d JSON lines, want %d:\n%s", len(got), len(want)+1, out)
	}
	for i, w := range want {
		g := got[i]
		if g.Line != w.line || g.ID != w.id || g.Time != w.time || len(g.Matches) != 1 {
			t.Errorf("failure %d = line %d id %q time %v matches %d; want line %d id %q time %v", i, g.Line, g.ID, g.Time, len(g.Matches), w.line, w.id, w.time)
		}
		if w.user != "" && g.Fields["user"] != w.user {
			t.Errorf("failure %d: fields %v, want user %q", i, g.Fields, w.user)
		}
	}
	sum := got[len(got)-1].Summary
	if sum["lines"] != 4 || sum["matched"] != 3 || sum["missed"] != 1 || sum["ignored"] != 0 {
		t.Errorf("summary %v", sum)
	}

	// The human summary, with a literal regex and an ignoreregex.
	out, err = runMain(t, "regex", log, `sshd\[\d+\]: Invalid user \S+ from <HOST>`, `user bob`)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"Failregex: 1 total", "Ignoreregex: 1 total", "Lines: 4 lines, 1 ignored, 1 matched, 2 missed"} {
		if !strings.Contains(out, s) {
			t.Errorf("summary lacks %q:\n%s", s, out)
		}
	}

	// A single line instead of a file, and {NONE} taking --now.
	out, err = runMain(t, "regex", "--json", "--datepattern", "{NONE}", "--now", "1700000000",
		"web1 sshd[1]: Invalid user y from 203.0.113.5 port 1", `Invalid user \S+ from <HOST>`)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `"id":"203.0.113.5","time":1700000000`) {
		t.Errorf("single line: %s", out)
	}

	// Errors name what is wrong.
	if _, err := runMain(t, "regex", log, "sshd[mode=aggressive"); err == nil {
		t.Error("a broken filter spec is accepted")
	}
	if _, err := runMain(t, "regex", log, `(unclosed <HOST>`); err == nil || !strings.Contains(err.Error(), "failregex") {
		t.Errorf("a broken regex: %v", err)
	}
}

func TestUnixSeconds(t *testing.T) {
	for _, tc := range []struct {
		t    time.Time
		want string
	}{
		{time.Unix(1124013600, 0), "1124013600"},
		{time.Unix(1124013600, 250_000_000), "1124013600.25"},
		{time.Unix(1124013600, 1), "1124013600.000000001"},
		{time.Unix(-2, 500_000_000), "-1.5"},
		{time.Unix(-1, 500_000_000), "-0.5"},
	} {
		if got := unixSeconds(tc.t); got != tc.want {
			t.Errorf("unixSeconds(%v) = %s, want %s", tc.t, got, tc.want)
		}
	}
}

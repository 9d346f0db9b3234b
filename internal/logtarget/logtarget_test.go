package logtarget

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeban/edgeban/internal/filter"
	"github.com/edgeban/edgeban/internal/sharedtest"
)

func TestFormat(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(NewHandler(&buf, 4242, slog.LevelInfo))
	Ban(context.Background(), l, "sshd", "192.0.2.1", false)
	l.Debug("hidden")
	l.Warn("odd line", "path", "/var/log/auth.log", "text", "a\nNOTICE [x] Ban 6.6.6.6")
	l.With(LoggerKey, "fail2ban.filter").Info("[sshd] Found 192.0.2.1")
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	want := []*regexp.Regexp{
		regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} fail2ban\.actions        \[4242\]: NOTICE  \[sshd\] Ban 192\.0\.2\.1$`),
		regexp.MustCompile(`^\S+ \S+ fail2ban                \[4242\]: WARNING odd line path=/var/log/auth\.log text=a\\nNOTICE \[x\] Ban 6\.6\.6\.6$`),
		regexp.MustCompile(`^\S+ \S+ fail2ban\.filter         \[4242\]: INFO    \[sshd\] Found 192\.0\.2\.1$`),
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines:\n%s", len(lines), buf.String())
	}
	for i, re := range want {
		if !re.MatchString(lines[i]) {
			t.Errorf("line %d: %q", i, lines[i])
		}
	}
}

// TestRecidiveReadsOurLog writes a log of bans and unbans in several
// jails and runs both fail2ban's stock recidive filter and ours over it:
// each finds exactly the bans of the other jails.
func TestRecidiveReadsOurLog(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(NewHandler(&buf, 1234, slog.LevelDebug))
	ctx := context.Background()
	Ban(ctx, l, "sshd", "192.0.2.1", false)
	Ban(ctx, l, "nginx-http-auth", "2001:db8::5", false)
	Unban(ctx, l, "sshd", "192.0.2.1")
	Ban(ctx, l, "recidive", "192.0.2.1", false) // its own bans do not count
	Ban(ctx, l, "sshd", "192.0.2.9", true)      // a restored ban is no new ban
	l.Info("[sshd] Found 198.51.100.1")
	Ban(ctx, l, "postfix-sasl", "198.51.100.7", false)
	want := []string{"192.0.2.1", "2001:db8::5", "198.51.100.7"}

	own := filepath.Join("..", "..", "config") // edgeban's own filters
	for name, dir := range map[string]string{"fail2ban's": sharedtest.Path(t, "fail2ban/config"), "ours": own} {
		def, err := filter.Load(dir, "recidive", filter.LoadOptions{Backend: "auto"})
		if err != nil {
			t.Fatal(err)
		}
		f, err := filter.New(def, filter.Config{Location: time.Local})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, line := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
			for _, fl := range f.Process(line).Failures {
				got = append(got, fl.ID)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s recidive filter found %v, want %v\nlog:\n%s", name, got, want, buf.String())
		}
	}
}

// TestFileReopen rotates the log file as logrotate does (rename, then
// flushlogs) and checks that no line is lost and that the lines after
// the reopen go to the new file.
func TestFileReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "edgeban.log")
	f, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	l := slog.New(NewHandler(f, 1, slog.LevelInfo))
	Ban(context.Background(), l, "sshd", "192.0.2.1", false)
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	Ban(context.Background(), l, "sshd", "192.0.2.2", false) // still into the moved file
	if err := f.Reopen(); err != nil {
		t.Fatal(err)
	}
	Ban(context.Background(), l, "sshd", "192.0.2.3", false)
	for _, tt := range []struct {
		path string
		want []string
	}{
		{path + ".1", []string{"192.0.2.1", "192.0.2.2"}},
		{path, []string{"192.0.2.3"}},
	} {
		b, err := os.ReadFile(tt.path)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			got = append(got, line[strings.LastIndex(line, " ")+1:])
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: bans %v, want %v", tt.path, got, tt.want)
		}
	}
	// A path that cannot be opened: an error, and the old file stays.
	if err := os.Rename(path, path+".2"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := f.Reopen(); err == nil {
		t.Error("Reopen of a directory: no error")
	}
	Ban(context.Background(), l, "sshd", "192.0.2.4", false)
	if b, _ := os.ReadFile(path + ".2"); !strings.Contains(string(b), "192.0.2.4") {
		t.Errorf("after a failed reopen the line went elsewhere:\n%s", b)
	}
}

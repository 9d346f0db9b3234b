package source

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// timeout bounds every wait; it is a failure bound, not a speed target.
const timeout = 10 * time.Second

// modes are the two ways of noticing changes.
var modes = []struct {
	name string
	opts Options
}{
	{"fsnotify", Options{}},
	{"poll", Options{Poll: true, PollInterval: 5 * time.Millisecond}},
}

type follower struct {
	t      *testing.T
	lines  chan Line
	cancel context.CancelFunc
	done   chan struct{}
	err    error
	once   sync.Once
}

// startFollow runs Follow in a goroutine until the test ends.
func startFollow(t *testing.T, path string, opts Options) *follower {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	f := &follower{t: t, lines: make(chan Line, 10000), cancel: cancel, done: make(chan struct{})}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	}
	go func() {
		defer close(f.done)
		f.err = Follow(ctx, path, opts, func(l Line) error {
			f.lines <- l
			return nil
		})
	}()
	t.Cleanup(func() { f.stop() })
	return f
}

// stop cancels Follow and waits for it to return.
func (f *follower) stop() error {
	f.once.Do(func() {
		f.cancel()
		select {
		case <-f.done:
		case <-time.After(timeout):
			f.t.Error("Follow did not return after cancel")
		}
		if !errors.Is(f.err, context.Canceled) {
			f.t.Errorf("Follow returned %v, want context.Canceled", f.err)
		}
	})
	return f.err
}

// expect waits for the next lines and checks their text.
func (f *follower) expect(texts ...string) []Line {
	f.t.Helper()
	var got []Line
	for _, want := range texts {
		select {
		case l := <-f.lines:
			if l.Text != want {
				f.t.Fatalf("line %d = %q, want %q", len(got), trunc(l.Text), trunc(want))
			}
			got = append(got, l)
		case <-f.done:
			f.t.Fatalf("Follow returned early: %v", f.err)
		case <-time.After(timeout):
			f.t.Fatalf("timeout waiting for line %q (got %d of %d)", trunc(want), len(got), len(texts))
		}
	}
	return got
}

func trunc(s string) string {
	if len(s) > 40 {
		return fmt.Sprintf("%s...(%d bytes)", s[:40], len(s))
	}
	return s
}

func appendFile(t testing.TB, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestFollow runs the main scenarios with fsnotify and with polling.
func TestFollow(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, path string, opts Options)
	}{
		{"appends", func(t *testing.T, path string, opts Options) {
			appendFile(t, path, "a1\na2\n")
			f := startFollow(t, path, opts)
			ls := f.expect("a1", "a2")
			if want := (Position{md5hex("a1\n"), 6}); ls[1].Pos != want {
				t.Errorf("pos = %+v, want %+v", ls[1].Pos, want)
			}
			appendFile(t, path, "a3\n")
			f.expect("a3")
			appendFile(t, path, "a4\r\na5\n\n")
			f.expect("a4", "a5", "")
		}},
		{"partial line", func(t *testing.T, path string, opts Options) {
			appendFile(t, path, "a1\nab")
			f := startFollow(t, path, opts)
			f.expect("a1")
			time.Sleep(20 * time.Millisecond) // let Follow see the partial line
			appendFile(t, path, "c")
			time.Sleep(20 * time.Millisecond)
			appendFile(t, path, "d\na2\n")
			ls := f.expect("abcd", "a2")
			if ls[0].Pos.Offset != int64(len("a1\nabcd\n")) {
				t.Errorf("offset = %d", ls[0].Pos.Offset)
			}
		}},
		{"rename rotation", func(t *testing.T, path string, opts Options) {
			appendFile(t, path, "a1\n")
			f := startFollow(t, path, opts)
			f.expect("a1")
			appendFile(t, path, "a2\na3 no newline")
			must(t, os.Rename(path, path+".1"))
			appendFile(t, path, "b1\n")
			ls := f.expect("a2", "a3 no newline", "b1")
			if want := (Position{md5hex("b1\n"), 3}); ls[2].Pos != want {
				t.Errorf("pos = %+v, want %+v", ls[2].Pos, want)
			}
			appendFile(t, path, "b2\n")
			f.expect("b2")
		}},
		{"copytruncate", func(t *testing.T, path string, opts Options) {
			appendFile(t, path, "a1\na2\na3\n")
			f := startFollow(t, path, opts)
			f.expect("a1", "a2", "a3")
			data, err := os.ReadFile(path)
			must(t, err)
			must(t, os.WriteFile(path+".1", data, 0o644))
			must(t, os.Truncate(path, 0))
			appendFile(t, path, "b1\n")
			f.expect("b1")
			appendFile(t, path, "b2\n")
			f.expect("b2")
		}},
		{"first line replaced in place", func(t *testing.T, path string, opts Options) {
			appendFile(t, path, "a1\n")
			f := startFollow(t, path, opts)
			f.expect("a1")
			// Same inode, grown past the offset: only the first line tells.
			w, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
			must(t, err)
			_, err = w.WriteString("b1\nb2\n")
			must(t, err)
			must(t, w.Close())
			f.expect("b1", "b2")
		}},
		{"deleted and recreated", func(t *testing.T, path string, opts Options) {
			appendFile(t, path, "a1\n")
			f := startFollow(t, path, opts)
			f.expect("a1")
			must(t, os.Remove(path))
			time.Sleep(20 * time.Millisecond) // let Follow see the removal
			appendFile(t, path, "b1\n")
			f.expect("b1")
			appendFile(t, path, "b2\n")
			f.expect("b2")
		}},
		{"file appears late", func(t *testing.T, path string, opts Options) {
			f := startFollow(t, path, opts)
			time.Sleep(20 * time.Millisecond)
			appendFile(t, path, "a1\n")
			f.expect("a1")
			appendFile(t, path, "a2\n")
			f.expect("a2")
		}},
		{"from end", func(t *testing.T, path string, opts Options) {
			appendFile(t, path, "old1\nold2\npart")
			opts.FromEnd = true
			f := startFollow(t, path, opts)
			time.Sleep(20 * time.Millisecond)
			appendFile(t, path, "ial\nnew1\n")
			f.expect("partial", "new1")
		}},
		{"long line", func(t *testing.T, path string, opts Options) {
			long := strings.Repeat("x", 100<<10)
			appendFile(t, path, "a1\n"+long+"\nafter1\n")
			f := startFollow(t, path, opts)
			ls := f.expect("a1", long[:DefaultMaxLine], "after1")
			if !ls[1].Truncated || ls[0].Truncated || ls[2].Truncated {
				t.Errorf("Truncated = %v %v %v, want false true false", ls[0].Truncated, ls[1].Truncated, ls[2].Truncated)
			}
			if want := int64(3 + len(long) + 1); ls[1].Pos.Offset != want {
				t.Errorf("offset = %d, want %d", ls[1].Pos.Offset, want)
			}
			// A long line written in pieces.
			appendFile(t, path, long[:70<<10])
			time.Sleep(20 * time.Millisecond)
			appendFile(t, path, long[70<<10:]+"\nafter2\n")
			ls = f.expect(long[:DefaultMaxLine], "after2")
			if !ls[0].Truncated {
				t.Error("second long line not marked Truncated")
			}
		}},
		{"invalid utf-8", func(t *testing.T, path string, opts Options) {
			bad := "\xff\xfe bad \xc3\x28"
			appendFile(t, path, bad+"\nok\x00nul\ngood\n")
			f := startFollow(t, path, opts)
			f.expect(bad, "ok\x00nul", "good")
		}},
	}
	for _, m := range modes {
		for _, tt := range tests {
			t.Run(m.name+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				tt.run(t, filepath.Join(t.TempDir(), "test.log"), m.opts)
			})
		}
	}
}

func TestResume(t *testing.T) {
	const content = "a1\na2\na3\n"
	tests := []struct {
		name  string
		start Position
		want  []string
	}{
		{"matching md5", Position{md5hex("a1\n"), 3}, []string{"a2", "a3"}},
		{"matching md5 at end", Position{md5hex("a1\n"), 9}, nil},
		{"other md5", Position{md5hex("z1\n"), 3}, []string{"a1", "a2", "a3"}},
		{"offset past end", Position{md5hex("a1\n"), 100}, []string{"a1", "a2", "a3"}},
		{"empty md5", Position{"", 0}, []string{"a1", "a2", "a3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "test.log")
			appendFile(t, path, content)
			f := startFollow(t, path, Options{Start: &tt.start})
			f.expect(tt.want...)
			appendFile(t, path, "sentinel\n") // proves nothing else came first
			f.expect("sentinel")
		})
	}
}

var errStop = errors.New("stop")

// followUntil runs Follow until it has handed out n lines, then stops it
// through fn's error, as a crash after handling line n would. It returns
// the lines and the position to resume at.
func followUntil(t *testing.T, path string, start *Position, n int) ([]string, *Position) {
	t.Helper()
	var got []string
	pos := start
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	err := Follow(ctx, path, Options{Start: start, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))}, func(l Line) error {
		got = append(got, l.Text)
		p := l.Pos
		pos = &p
		if len(got) == n {
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("Follow = %v, want errStop after %d lines (got %q)", err, n, got)
	}
	return got, pos
}

func TestRestart(t *testing.T) {
	lines := func(prefix string, n int) (s string, l []string) {
		for i := 1; i <= n; i++ {
			l = append(l, fmt.Sprintf("%s%d", prefix, i))
			s += l[len(l)-1] + "\n"
		}
		return s, l
	}
	aText, aLines := lines("a", 5)
	bText, bLines := lines("b", 3)
	tests := []struct {
		name   string
		first  int                             // lines handled before the stop
		change func(t *testing.T, path string) // done while stopped
		want   []string                        // all lines, in order
	}{
		{"no change, stop after 1", 1, nil, aLines},
		{"no change, stop after 4", 4, nil, aLines},
		{"no change, stop at end", 5, nil, aLines},
		{"rename rotation, stop after 2", 2, func(t *testing.T, path string) {
			must(t, os.Rename(path, path+".1"))
			appendFile(t, path, bText)
		}, append(append([]string{}, aLines...), bLines...)},
		{"rename rotation, stop at end", 5, func(t *testing.T, path string) {
			must(t, os.Rename(path, path+".1"))
			appendFile(t, path, bText)
		}, append(append([]string{}, aLines...), bLines...)},
		{"dateext rotation, new file empty", 3, func(t *testing.T, path string) {
			must(t, os.Rename(path, path+"-20261125"))
			appendFile(t, path, "")
		}, aLines},
		{"copytruncate, stop after 2", 2, func(t *testing.T, path string) {
			data, err := os.ReadFile(path)
			must(t, err)
			must(t, os.WriteFile(path+".1", data, 0o644))
			must(t, os.Truncate(path, 0))
			appendFile(t, path, bText)
		}, append(append([]string{}, aLines...), bLines...)},
		{"compressed rotation is not read", 2, func(t *testing.T, path string) {
			must(t, os.Rename(path, path+".1.gz"))
			appendFile(t, path, bText)
		}, append(append([]string{}, aLines[:2]...), bLines...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "test.log")
			appendFile(t, path, aText)
			got, pos := followUntil(t, path, nil, tt.first)
			if tt.change != nil {
				tt.change(t, path)
			}
			f := startFollow(t, path, Options{Start: pos})
			for _, l := range f.expect(tt.want[len(got):]...) {
				got = append(got, l.Text)
			}
			appendFile(t, path, "sentinel\n")
			f.expect("sentinel")
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("lines = %q, want %q", got, tt.want)
			}
		})
	}
}

// rotate shifts path.1, path.2, ... up by one, as logrotate does, and
// then moves the current file to path.1 by rename or by copy and truncate.
func rotate(t *testing.T, path string, copyTruncate bool) {
	t.Helper()
	for i := 8; i >= 1; i-- {
		err := os.Rename(fmt.Sprintf("%s.%d", path, i), fmt.Sprintf("%s.%d", path, i+1))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	if !copyTruncate {
		must(t, os.Rename(path, path+".1"))
		return
	}
	data, err := os.ReadFile(path)
	must(t, err)
	must(t, os.WriteFile(path+".1", data, 0o644))
	must(t, os.Truncate(path, 0))
}

// TestRestartDuringRotation stops Follow in the middle of a file, rotates
// the file while it is stopped, and checks that the lines handed out over
// all runs are exactly the lines written.
func TestRestartDuringRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "test.log")
	var want []string
	write := func(prefix string, n int) {
		var b bytes.Buffer
		for i := range n {
			want = append(want, fmt.Sprintf("%s%d", prefix, i))
			fmt.Fprintf(&b, "%s%d\n", prefix, i)
		}
		appendFile(t, path, b.String())
	}
	write("a", 3)
	var got []string
	var pos *Position
	for round := range 6 {
		// Stop before the last line written, then write more and rotate:
		// the next run starts in the middle of the rotated file.
		ls, p := followUntil(t, path, pos, len(want)-len(got)-1)
		got, pos = append(got, ls...), p
		write(fmt.Sprintf("r%d-", round), 2)
		switch round % 3 {
		case 0:
			rotate(t, path, false)
		case 1:
			rotate(t, path, true)
		case 2: // no rotation
		}
		write(fmt.Sprintf("n%d-", round), 3)
	}
	f := startFollow(t, path, Options{Start: pos})
	for _, l := range f.expect(want[len(got):]...) {
		got = append(got, l.Text)
	}
	appendFile(t, path, "sentinel\n")
	f.expect("sentinel")
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("lines =\n%q\nwant\n%q", got, want)
	}
}

// TestPollingFallback checks that Follow polls when the directory cannot
// be watched: it does not exist yet, or it is removed while watched.
func TestPollingFallback(t *testing.T) {
	opts := Options{PollInterval: 5 * time.Millisecond}
	t.Run("directory appears late", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(t.TempDir(), "sub")
		path := filepath.Join(dir, "test.log")
		f := startFollow(t, path, opts)
		time.Sleep(20 * time.Millisecond)
		must(t, os.Mkdir(dir, 0o755))
		appendFile(t, path, "a1\n")
		f.expect("a1")
	})
	t.Run("directory removed", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(t.TempDir(), "sub")
		path := filepath.Join(dir, "test.log")
		must(t, os.Mkdir(dir, 0o755))
		appendFile(t, path, "a1\n")
		f := startFollow(t, path, opts)
		f.expect("a1")
		must(t, os.RemoveAll(dir))
		time.Sleep(20 * time.Millisecond)
		must(t, os.Mkdir(dir, 0o755))
		appendFile(t, path, "b1\n")
		f.expect("b1")
		appendFile(t, path, "b2\n")
		f.expect("b2")
	})
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	err := Follow(t.Context(), dir, Options{}, func(Line) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "source "+dir) {
		t.Errorf("Follow(dir) = %v, want a wrapped error", err)
	}
	path := filepath.Join(dir, "test.log")
	appendFile(t, path, "a1\n")
	errFn := errors.New("fn failed")
	err = Follow(t.Context(), path, Options{}, func(Line) error { return errFn })
	if !errors.Is(err, errFn) {
		t.Errorf("Follow = %v, want fn's error", err)
	}
}

func BenchmarkLatency(b *testing.B) {
	for _, m := range modes {
		if m.opts.Poll {
			continue // its latency is the polling interval
		}
		b.Run(m.name, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "test.log")
			appendFile(b, path, "")
			w, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			must(b, err)
			defer w.Close()
			got := make(chan struct{})
			ctx, cancel := context.WithCancel(b.Context())
			done := make(chan error)
			opts := m.opts
			opts.Logger = slog.New(slog.DiscardHandler)
			go func() {
				done <- Follow(ctx, path, opts, func(Line) error {
					got <- struct{}{}
					return nil
				})
			}()
			line := []byte("Nov 25 12:00:00 host sshd[1234]: Failed password for root from 192.0.2.1 port 22 ssh2\n")
			// Warm up: wait until Follow is watching.
			_, err = w.Write(line)
			must(b, err)
			<-got
			for b.Loop() {
				if _, err := w.Write(line); err != nil {
					b.Fatal(err)
				}
				<-got
			}
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				b.Fatal(err)
			}
		})
	}
}

// TestUnreadableFile follows a file the process may not read, then makes
// it readable: its lines arrive without a restart. Root reads any file,
// so as root the test runs itself again as nobody.
func TestUnreadableFile(t *testing.T) {
	if os.Geteuid() == 0 {
		runAsNobody(t, "TestUnreadableFile")
		return
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "test.log")
			appendFile(t, path, "a1\n")
			must(t, os.Chmod(path, 0))
			if f, err := os.Open(path); err == nil {
				f.Close()
				t.Skip("needs a user that file modes apply to")
			}
			var logged bytes.Buffer
			opts := m.opts
			opts.Logger = slog.New(slog.NewTextHandler(&syncWriter{w: &logged}, nil))
			f := startFollow(t, path, opts)
			time.Sleep(50 * time.Millisecond)
			must(t, os.Chmod(path, 0o644))
			f.expect("a1")
			appendFile(t, path, "a2\n")
			f.expect("a2")
			f.stop()
			if n := strings.Count(logged.String(), "cannot open"); n != 1 {
				t.Errorf("%d warnings, want 1:\n%s", n, logged.String())
			}
		})
	}
}

// syncWriter serialises writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// runAsNobody runs test again in a copy of the test binary as the user
// nobody, and fails if it fails there.
func runAsNobody(t *testing.T, test string) {
	t.Helper()
	exe, err := os.Executable()
	must(t, err)
	dir, err := os.MkdirTemp("", "source-nobody-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	must(t, os.Chmod(dir, 0o755))
	bin := filepath.Join(dir, "source.test")
	b, err := os.ReadFile(exe)
	must(t, err)
	must(t, os.WriteFile(bin, b, 0o755))
	tmp := filepath.Join(dir, "tmp")
	must(t, os.Mkdir(tmp, 0o777))
	must(t, os.Chmod(tmp, 0o777))
	cmd := exec.Command(bin, "-test.run=^"+test+"$", "-test.v")
	cmd.Env = []string{"TMPDIR=" + tmp, "PATH=/usr/bin:/bin", "HOME=" + tmp}
	cmd.Dir = tmp
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	t.Logf("as nobody:\n%s", out)
	if err != nil {
		t.Fatalf("as nobody: %v", err)
	}
	if !strings.Contains(string(out), "--- PASS: "+test) {
		t.Fatal("as nobody: the test did not pass")
	}
}

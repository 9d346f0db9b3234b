package action

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var shellLine = regexp.MustCompile(`sh: \d+:`)

// readySpare returns a Runner whose spare has started.
func readySpare(t *testing.T) *Runner {
	t.Helper()
	r := &Runner{}
	t.Cleanup(r.Close)
	r.Warm()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.mu.Lock()
		ok := r.spare != nil
		r.mu.Unlock()
		if ok {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatal("no spare shell after 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRunnerRunsAsRun runs each script with Run and with a Runner's
// spare, and wants the same output and error from both.
func TestRunnerRunsAsRun(t *testing.T) {
	nasty := []string{"$(touch /tmp/pwned)", "`id`", `a'b"c`, "'", `\`, "line1\nline2", "", "-n", "ünï", "* ?", "$1 ${2}"}
	tests := []struct {
		name    string
		script  Script
		timeout time.Duration
	}{
		{"plain", Script{Text: "printf '%s\\n' 192.0.2.1"}, 0},
		{"positional parameters", Script{Text: `printf '<%s>' "$0" "$#" "$@"`, Args: nasty}, 0},
		{"Prepare's variables", Prepare(`echo <F-USER> <matches>`, map[string]string{"matches": "a;b\nc"}, map[string]string{"user": "x$(id)'"}), 0},
		{"exit status and stderr", Script{Text: "echo out; echo oops >&2; exit 3"}, 0},
		{"stdin is empty", Script{Text: "cat; echo end"}, 0},
		{"syntax error", Script{Text: "echo a; if"}, 0},
		{"exit in the middle", Script{Text: "echo a; exit 0; echo b"}, 0},
		{"descriptor 3 is closed", Script{Text: "if : <&3; then echo open; else echo closed; fi 2>/dev/null"}, 0},
		{"timeout kills the group", Script{Text: "sleep 30 & sleep 30; wait"}, 200 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantOut, wantErr := Run(context.Background(), tt.script, tt.timeout)
			r := readySpare(t)
			start := time.Now()
			out, err := r.Run(context.Background(), tt.script, tt.timeout)
			if time.Since(start) > 10*time.Second {
				t.Fatalf("Run returned after %v", time.Since(start))
			}
			// The shell's own messages name the line, which the spare
			// counts from its preamble, and the spare's script.
			msg := func(err error) string {
				return shellLine.ReplaceAllString(strings.ReplaceAll(fmt.Sprint(err), " /dev/fd/3:", ""), "sh: N:")
			}
			if out != wantOut || msg(err) != msg(wantErr) {
				t.Fatalf("Runner: %q, %v\nRun:    %q, %v", out, err, wantOut, wantErr)
			}
		})
	}
}

func TestRunnerUsesTheSpare(t *testing.T) {
	r := readySpare(t)
	r.mu.Lock()
	pid := r.spare.cmd.Process.Pid
	r.mu.Unlock()
	out, err := r.Run(context.Background(), Script{Text: "echo $$"}, 0)
	if err != nil || strings.TrimSpace(out) != strconv.Itoa(pid) {
		t.Fatalf("ran in %q (%v), the spare is %d", out, err, pid)
	}
	// The next one has a spare again.
	r = readySpare(t)
	r.Close()
	r.mu.Lock()
	gone := r.spare == nil
	r.mu.Unlock()
	if !gone {
		t.Fatal("a spare after Close")
	}
	if out, err := r.Run(context.Background(), Script{Text: "echo after close"}, 0); err != nil || out != "after close\n" {
		t.Fatalf("after Close: %q, %v", out, err)
	}
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.spare != nil || r.spawning {
		t.Fatal("a spare started after Close, before Warm")
	}
}

func TestRunnerSpareKilledWhileIdle(t *testing.T) {
	r := readySpare(t)
	r.mu.Lock()
	sp := r.spare
	r.mu.Unlock()
	syscall.Kill(sp.cmd.Process.Pid, syscall.SIGKILL)
	time.Sleep(50 * time.Millisecond) // let it die
	out, err := r.Run(context.Background(), Script{Text: "echo ran"}, 0)
	if err != nil || out != "ran\n" {
		t.Fatalf("%q, %v", out, err)
	}
}

func TestRunnerRefusesNUL(t *testing.T) {
	r := readySpare(t)
	if _, err := r.Run(context.Background(), Script{Text: "echo $1", Args: []string{"a\x00b"}}, 0); err == nil {
		t.Fatal("an argument with a NUL byte ran")
	}
	if _, err := Run(context.Background(), Script{Text: "echo $1", Args: []string{"a\x00b"}}, 0); err == nil {
		t.Fatal("Run: an argument with a NUL byte ran")
	}
}

func TestRunnerConcurrent(t *testing.T) {
	r := readySpare(t)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			out, err := r.Run(context.Background(), Script{Text: `echo "$1"`, Args: []string{fmt.Sprint(i)}}, 0)
			if err != nil || out != fmt.Sprintf("%d\n", i) {
				errs <- fmt.Errorf("script %d: %q, %v", i, out, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var ee *ExitError
	if _, err := r.Run(context.Background(), Script{Text: "exit 7"}, 0); !errors.As(err, &ee) || ee.Code != 7 {
		t.Fatalf("exit 7: %v", err)
	}
}

package action

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Runner runs scripts as Run does, but without the cost of starting a
// shell on the way: it keeps one shell started ahead, the spare, idle
// on a pipe, and hands it the next script. Starting /bin/sh costs a
// millisecond or more (on a 2-core VM, 0.7 ms when warm and 1.3 to 1.5
// ms after an idle spell), most of a ban's latency; handing the spare a
// script costs a few tenths of that. A new spare is started in the
// background after each script, off the ban's path.
//
// The spare is `/bin/sh -c '. /dev/fd/3' sh`, its stdin /dev/null, in a
// process group of its own, like the shell Run starts. It reads the
// script from the pipe on its descriptor 3, which it closes first,
// with the values as its positional parameters: Run's argv becomes a
// `set --` line of single-quoted words, inside which the shell reads
// nothing as code. So a script runs the same either way, with the same
// parameters, status, output and timeout; only the shell's own error
// messages differ, naming /dev/fd/3 and counting the preamble's lines. A
// spare whose pipe closes (Close, or the daemon's death) reads an empty
// script and exits.
//
// Scripts that run at the same time beyond the one spare start their
// shell as Run does. A Runner is safe for concurrent use; its zero
// value is ready, and keeps a spare from its first script or Warm on.
type Runner struct {
	mu       sync.Mutex
	spare    *spare // nil: none ready
	spawning bool   // a spare is being started
	closed   bool   // Close was called: start no spare until Warm
	wg       sync.WaitGroup
}

// spare is a shell started ahead, waiting for its script.
type spare struct {
	cmd            *exec.Cmd
	script         *os.File // the write end of its descriptor 3
	stdout, stderr bytes.Buffer
}

// spareArgv is the spare shell's command line.
var spareArgv = []string{"/bin/sh", "-c", ". /dev/fd/3", "sh"}

func startSpare() (*spare, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	sp := &spare{script: w}
	sp.cmd = exec.Command(spareArgv[0], spareArgv[1:]...)
	sp.cmd.ExtraFiles = []*os.File{r}
	sp.cmd.Stdout, sp.cmd.Stderr = &sp.stdout, &sp.stderr
	sp.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	sp.cmd.WaitDelay = time.Second
	if err := sp.cmd.Start(); err != nil {
		w.Close()
		return nil, err
	}
	return sp, nil
}

// discard makes sp exit, and reaps it.
func (sp *spare) discard() {
	sp.script.Close()
	sp.cmd.Wait()
}

// Warm starts a spare now, if there is none, so that the first script
// finds it.
func (r *Runner) Warm() {
	r.mu.Lock()
	r.closed = false
	r.mu.Unlock()
	r.refill()
}

// refill starts a spare in the background unless one is ready or
// coming.
func (r *Runner) refill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.spare != nil || r.spawning || r.closed {
		return
	}
	r.spawning = true
	r.wg.Go(func() {
		sp, err := startSpare()
		r.mu.Lock()
		r.spawning = false
		keep := err == nil && r.spare == nil && !r.closed
		if keep {
			r.spare = sp
		}
		r.mu.Unlock()
		if err == nil && !keep {
			sp.discard()
		}
	})
}

// take returns the spare, if one is ready.
func (r *Runner) take() *spare {
	r.mu.Lock()
	defer r.mu.Unlock()
	sp := r.spare
	r.spare = nil
	return sp
}

// Close ends the spare and waits for the spares being started. The
// Runner can still run scripts, each with a shell of its own, and keeps
// no spare until Warm is called again.
func (r *Runner) Close() {
	r.mu.Lock()
	sp := r.spare
	r.spare, r.closed = nil, true
	r.mu.Unlock()
	if sp != nil {
		sp.discard()
	}
	r.wg.Wait()
}

// Run runs s as the package's Run does, with the spare when there is
// one, and then has a new spare started.
func (r *Runner) Run(ctx context.Context, s Script, timeout time.Duration) (string, error) {
	sp := r.take()
	defer r.refill()
	if sp == nil {
		return Run(ctx, s, timeout)
	}
	text, err := s.sourced()
	if err != nil {
		sp.discard()
		return "", err
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	pid := sp.cmd.Process.Pid
	stop := context.AfterFunc(ctx, func() { syscall.Kill(-pid, syscall.SIGKILL) })
	_, werr := sp.script.WriteString(text)
	sp.script.Close()
	err = sp.cmd.Wait()
	stop()
	if werr != nil && ctx.Err() == nil && sp.cmd.ProcessState != nil && !sp.cmd.ProcessState.Exited() {
		// The spare was gone before it had the script (killed while
		// idle): nothing ran, so run it as Run does.
		return Run(ctx, s, timeout)
	}
	return result(ctx, timeout, err, &sp.stdout, &sp.stderr)
}

// sourced returns the text the spare reads: its descriptor 3 closed, the
// positional parameters set, then the script.
func (s Script) sourced() (string, error) {
	var b strings.Builder
	b.WriteString("exec 3<&-\n")
	if len(s.Args) > 0 {
		b.WriteString("set --")
		for _, a := range s.Args {
			if strings.IndexByte(a, 0) >= 0 {
				return "", errors.New("an argument holds a NUL byte") // as exec refuses it
			}
			b.WriteString(" ")
			b.WriteString(shellQuote(a))
		}
		b.WriteString("\n")
	}
	b.WriteString(s.Text)
	b.WriteString("\n")
	return b.String(), nil
}

// shellQuote quotes v as one word that the shell reads as v and nothing
// else: inside single quotes no character is special, and each single
// quote of v closes the quotes, is written escaped (\'), and opens them
// again.
func shellQuote(v string) string {
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

// result is what Run returns for a command that ended with err.
func result(ctx context.Context, timeout time.Duration, err error, stdout, stderr *bytes.Buffer) (string, error) {
	if ctx.Err() != nil {
		return stdout.String(), fmt.Errorf("command stopped (timeout %v): %w", timeout, ctx.Err())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return stdout.String(), &ExitError{Code: ee.ExitCode(), Stderr: strings.TrimSpace(stderr.String())}
	}
	if err != nil {
		return stdout.String(), err
	}
	return stdout.String(), nil
}

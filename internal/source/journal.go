package source

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The flags of sd_journal_open(3), numbered as fail2ban's journalflags
// numbers them.
const (
	JournalLocalOnly   = 1 // this machine's journal only, not others' (containers, remote)
	JournalRuntimeOnly = 2 // the volatile journal (/run/log/journal) only
	JournalSystem      = 4 // system services and the kernel, no user sessions
	JournalCurrentUser = 8 // the current user's session
)

// RuntimeJournal is the volatile journal's directory.
const RuntimeJournal = "/run/log/journal"

// Defaults applied when the corresponding [JournalOptions] field is zero.
const (
	DefaultJournalctl      = "journalctl"
	DefaultRestartDelay    = time.Second
	DefaultMaxRestartDelay = time.Minute
	DefaultRecheck         = 10 * time.Second
)

// healthyRun is how long journalctl must have run for its exit to be
// taken as a new failure rather than the same one again: the wait before
// the next start then starts over from RestartDelay.
const healthyRun = 30 * time.Second

// JournalOptions control [FollowJournal]. The zero value reads every
// journal of the machine (journalctl --merge) from its start.
type JournalOptions struct {
	// Match holds fail2ban's journalmatch groups: an entry is read when
	// it matches every term of one group; a field named twice in a group
	// matches either value, as in journalctl. A term is FIELD=VALUE.
	Match [][]string
	// Path is a directory of journal files to read (fail2ban's
	// journalpath) instead of the system's journal.
	Path string
	// Files are journal files to read (fail2ban's journalfiles), each a
	// path or a glob, instead of the system's journal. The globs are
	// expanded again every Recheck, and journalctl is started again,
	// resuming at the last entry read, when they name other files (after
	// journald rotated them).
	Files []string
	// Rotated makes Files' globs name the archived journal files too
	// (NAME@....journal, NAME@....journal~); without it they name the
	// active ones only, as fail2ban's rotated = false does (a file named
	// without a glob is read in any case). It does not change what Path
	// or the system's journal read: there journalctl reads every file.
	Rotated bool
	// Flags are the journal's open flags (JournalSystem...), for the
	// system's journal or Path. For the system's journal, without
	// JournalLocalOnly the journals of other machines are read too
	// (--merge), and JournalRuntimeOnly reads RuntimeJournal only; with
	// Path, only JournalSystem and JournalCurrentUser apply; with Files,
	// none do.
	Flags int
	// Cursor resumes reading after the entry with this cursor. If
	// journalctl does not accept it, reading starts at Since.
	Cursor string
	// Since is where reading starts when Cursor is "" or not accepted;
	// zero: at the start of the journal.
	Since time.Time
	// Journalctl is the journalctl program. Default DefaultJournalctl,
	// looked up in PATH.
	Journalctl string
	// MaxLine is the longest field value kept, in bytes; a longer one is
	// cut and its entry marked Truncated. Default DefaultMaxLine.
	MaxLine int
	// RestartDelay is the wait before journalctl is started again after
	// it stopped; it doubles at each stop that follows a short run, up to
	// MaxRestartDelay. Defaults DefaultRestartDelay, DefaultMaxRestartDelay.
	RestartDelay, MaxRestartDelay time.Duration
	// Recheck is how often Files' globs are expanded again. Default
	// DefaultRecheck.
	Recheck time.Duration
	// Logger receives journalctl's complaints and restarts.
	// Default slog.Default().
	Logger *slog.Logger
}

// Validate reports options that cannot be used together or terms that
// are not FIELD=VALUE.
func (o *JournalOptions) Validate() error {
	if o.Path != "" && len(o.Files) > 0 {
		return errors.New("journalpath and journalfiles cannot be used together")
	}
	if o.Flags&^(JournalLocalOnly|JournalRuntimeOnly|JournalSystem|JournalCurrentUser) != 0 || o.Flags < 0 {
		return fmt.Errorf("journalflags %d: not a sum of 1 (local only), 2 (runtime only), 4 (system), 8 (current user)", o.Flags)
	}
	switch {
	case len(o.Files) > 0 && o.Flags != 0:
		return errors.New("journalflags cannot be used with journalfiles")
	case o.Path != "" && o.Flags&(JournalLocalOnly|JournalRuntimeOnly) != 0:
		return errors.New("journalflags 1 (local only) and 2 (runtime only) cannot be used with journalpath")
	}
	for _, g := range o.Match {
		for _, term := range g {
			if err := checkMatch(term); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkMatch checks one journalmatch term: FIELD=VALUE, the field made
// of upper-case letters, digits and "_" and not starting with a digit, as
// sd_journal_add_match(3) wants. A term journalctl would take otherwise
// (a path to an executable, an option) is refused.
func checkMatch(term string) error {
	field, _, ok := strings.Cut(term, "=")
	if !ok || field == "" || len(field) > 64 || (field[0] >= '0' && field[0] <= '9') {
		return fmt.Errorf("journalmatch %q: not FIELD=VALUE", term)
	}
	for _, c := range []byte(field) {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return fmt.Errorf("journalmatch %q: the field name has %q; it takes upper-case letters, digits and _", term, c)
		}
	}
	return nil
}

// Journalctl returns the path of the journalctl program, or an error
// saying it is missing.
func Journalctl() (string, error) {
	p, err := exec.LookPath(DefaultJournalctl)
	if err != nil {
		return "", fmt.Errorf("the systemd journal is read with journalctl, which is not installed (Debian: package systemd): %w", err)
	}
	return p, nil
}

// journalctlArgs returns journalctl's arguments: the entries as an
// export stream, followed, from after cursor or else from since, of the
// given journal files or else of opts' directory or the system's journal,
// matching opts.Match.
func journalctlArgs(opts *JournalOptions, files []string, cursor string, since time.Time) []string {
	args := []string{"--output=export", "--output-fields=" + strings.Join(exportFields, ","),
		"--follow", "--no-tail", "--no-pager", "--quiet"}
	switch {
	case len(opts.Files) > 0:
		for _, f := range files {
			args = append(args, "--file="+globEscape(f))
		}
	case opts.Path != "":
		args = append(args, "--directory="+opts.Path)
	case opts.Flags&JournalRuntimeOnly != 0:
		args = append(args, "--directory="+RuntimeJournal)
	case opts.Flags&JournalLocalOnly == 0:
		args = append(args, "--merge")
	}
	if len(opts.Files) == 0 {
		if opts.Flags&JournalSystem != 0 {
			args = append(args, "--system")
		}
		if opts.Flags&JournalCurrentUser != 0 {
			args = append(args, "--user")
		}
	}
	switch {
	case cursor != "":
		args = append(args, "--after-cursor="+cursor)
	case !since.IsZero():
		us := since.UnixMicro()
		args = append(args, fmt.Sprintf("--since=@%d.%06d", us/1e6, us%1e6))
	}
	args = append(args, "--")
	for i, g := range opts.Match {
		if i > 0 {
			args = append(args, "+")
		}
		args = append(args, g...)
	}
	return args
}

// archived reports whether name is an archived journal file: one that
// journald rotated away (NAME@SEQNUM.journal) or found damaged (~).
func archived(name string) bool {
	base := filepath.Base(name)
	return strings.Contains(base, "@") || strings.HasSuffix(base, "~")
}

// journalFile is one file Files named, with its identity.
type journalFile struct {
	path string
	info os.FileInfo
}

// expandFiles expands opts.Files: the journal files it names now, in
// order, without the archived ones its globs match unless opts.Rotated.
func expandFiles(opts *JournalOptions) ([]journalFile, error) {
	var out []journalFile
	seen := map[string]bool{}
	for _, pattern := range opts.Files {
		m, err := filepath.Glob(pattern)
		if err != nil {
			return nil, fmt.Errorf("journalfiles %q: %w", pattern, err)
		}
		literal := !strings.ContainsAny(pattern, "*?[")
		for _, p := range m {
			if seen[p] || (!opts.Rotated && !literal && archived(p)) {
				continue
			}
			info, err := os.Stat(p)
			if err != nil || !info.Mode().IsRegular() {
				continue
			}
			seen[p] = true
			out = append(out, journalFile{path: p, info: info})
		}
	}
	return out, nil
}

// sameFiles reports whether a and b are the same files at the same paths.
func sameFiles(a, b []journalFile) bool {
	return slices.EqualFunc(a, b, func(x, y journalFile) bool { return x.path == y.path && os.SameFile(x.info, y.info) })
}

// FollowJournal reads the journal with journalctl, from the start opts
// give, and calls fn, from the calling goroutine, for every entry that
// matches opts.Match, until ctx ends or fn returns an error; it then
// returns ctx.Err() or fn's error, once journalctl has exited. Other
// errors are logged and not returned: when journalctl exits, or its
// output breaks off, it is started again after a wait (see
// JournalOptions.RestartDelay), resuming after the last entry handed
// to fn, so that no entry is lost or handed out twice. The options are
// checked first (see Validate), and journalctl must be installed.
func FollowJournal(ctx context.Context, opts JournalOptions, fn func(JournalEntry) error) error {
	if err := opts.Validate(); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if opts.Journalctl == "" {
		opts.Journalctl = DefaultJournalctl
	}
	prog, err := exec.LookPath(opts.Journalctl)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if opts.MaxLine <= 0 {
		opts.MaxLine = DefaultMaxLine
	}
	if opts.RestartDelay <= 0 {
		opts.RestartDelay = DefaultRestartDelay
	}
	if opts.MaxRestartDelay < opts.RestartDelay {
		opts.MaxRestartDelay = max(DefaultMaxRestartDelay, opts.RestartDelay)
	}
	if opts.Recheck <= 0 {
		opts.Recheck = DefaultRecheck
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	r := &journalReader{opts: &opts, prog: prog, fn: fn, log: opts.Logger, cursor: opts.Cursor}
	delay := opts.RestartDelay
	for {
		started := time.Now()
		n, err := r.run(ctx)
		var fe fnError
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.As(err, &fe):
			return fe.err
		case errors.Is(err, errFilesChanged):
			r.log.Info("journal files changed; reading them", "files", opts.Files)
			delay = opts.RestartDelay
			continue
		case errors.Is(err, errCursor) && r.cursor != "":
			r.log.Warn("journalctl did not take the stored cursor; reading from the start time instead",
				"cursor", r.cursor, "since", opts.Since, "err", err)
			r.cursor = ""
			continue
		}
		if n > 0 || time.Since(started) >= healthyRun {
			delay = opts.RestartDelay
		}
		r.log.Warn("journalctl stopped; starting it again", "err", err, "in", delay, "after", r.cursor)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, opts.MaxRestartDelay)
	}
}

var (
	errFilesChanged = errors.New("journal files changed")
	errCursor       = errors.New("cursor not accepted")
)

// fnError carries the callback's error out of run.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }

// journalReader is the state of one FollowJournal call.
type journalReader struct {
	opts   *JournalOptions
	prog   string
	fn     func(JournalEntry) error
	log    *slog.Logger
	cursor string // of the last entry handed to fn, or the start's
}

// run runs journalctl once, until it exits, ctx ends, fn fails or the
// files Files names change, and returns how many entries it handed to fn
// and why it stopped.
func (r *journalReader) run(ctx context.Context) (delivered int, err error) {
	var files []journalFile
	var paths []string
	if len(r.opts.Files) > 0 {
		if files, err = expandFiles(r.opts); err != nil {
			return 0, err
		}
		if len(files) == 0 {
			return 0, fmt.Errorf("no journal file matches %s", strings.Join(r.opts.Files, ", "))
		}
		for _, f := range files {
			paths = append(paths, f.path)
		}
	}
	args := journalctlArgs(r.opts, paths, r.cursor, r.opts.Since)
	cmd := exec.Command(r.prog, args...)
	cmd.SysProcAttr = journalctlAttr()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	r.log.Debug("journalctl started", "args", args, "pid", cmd.Process.Pid)

	// complaints logs journalctl's stderr and keeps its last line, which
	// the warning on its exit repeats.
	var (
		mu   sync.Mutex
		last string
	)
	complaints := make(chan struct{})
	go func() {
		defer close(complaints)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 4096), 64<<10)
		for sc.Scan() {
			line := strings.TrimSpace(decode(sc.Bytes()))
			if line == "" {
				continue
			}
			line = line[:min(len(line), 1024)]
			r.log.Info("journalctl: " + line)
			mu.Lock()
			last = line
			mu.Unlock()
		}
		io.Copy(io.Discard, stderr)
	}()

	// stop ends journalctl; the watcher ends it when ctx ends or the
	// files change.
	var (
		stopOnce sync.Once
		why      error
	)
	stop := func(reason error) {
		stopOnce.Do(func() {
			why = reason
			cmd.Process.Signal(syscall.SIGTERM)
		})
	}
	watchDone := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(watchDone)
		var tick <-chan time.Time
		if len(files) > 0 {
			t := time.NewTicker(r.opts.Recheck)
			defer t.Stop()
			tick = t.C
		}
		for {
			select {
			case <-finished:
				return
			case <-ctx.Done():
				stop(ctx.Err())
				return
			case <-tick:
				now, err := expandFiles(r.opts)
				if err == nil && len(now) > 0 && !sameFiles(files, now) {
					stop(errFilesChanged)
					return
				}
			}
		}
	}()

	x := newExportReader(stdout, r.opts.MaxLine)
	var raw rawEntry
	var readErr error
	for {
		if err := x.next(&raw); err != nil {
			if err != io.EOF {
				readErr = err
				stop(err)
			}
			break
		}
		e := formatEntry(&raw)
		if err := r.fn(e); err != nil {
			readErr = fnError{err}
			stop(readErr)
			break
		}
		delivered++
		if e.Cursor != "" {
			r.cursor = e.Cursor
		}
	}
	// Whatever stopped the reading, journalctl is to exit: its output is
	// drained so that it is not blocked writing.
	stop(nil)
	io.Copy(io.Discard, stdout)
	close(finished)
	<-watchDone
	<-complaints
	waitErr := cmd.Wait()

	var fe fnError
	switch {
	case errors.As(readErr, &fe):
		return delivered, readErr
	case why != nil && (errors.Is(why, errFilesChanged) || ctx.Err() != nil):
		return delivered, why
	case readErr != nil:
		return delivered, readErr
	}
	mu.Lock()
	msg := last
	mu.Unlock()
	if waitErr == nil {
		waitErr = errors.New("exited")
	}
	if msg != "" {
		waitErr = fmt.Errorf("%w: %s", waitErr, msg)
	}
	if delivered == 0 && strings.Contains(strings.ToLower(msg), "cursor") {
		waitErr = fmt.Errorf("%w: %w", errCursor, waitErr)
	}
	return delivered, waitErr
}

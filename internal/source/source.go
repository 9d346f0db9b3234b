package source

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Defaults applied when the corresponding [Options] field is zero.
const (
	DefaultMaxLine      = 64 << 10
	DefaultPollInterval = time.Second
)

// Position is where reading a file stopped, as fail2ban stores it in its
// database.
type Position struct {
	// FirstLineMD5 is the hex MD5 of the file's first line, including
	// its "\n". It identifies the file across restarts and rotations.
	FirstLineMD5 string
	// Offset is the byte offset just after the last line handed out.
	Offset int64
}

// Line is one line of a followed file.
type Line struct {
	// Text is the line without its "\n" and without a trailing "\r".
	// It holds the file's bytes as they are and so may be invalid UTF-8.
	Text string
	// Pos is the position just after this line: the one to store once
	// the line has been handled, and to pass back in [Options.Start].
	Pos Position
	// Truncated reports that the line was longer than [Options.MaxLine]
	// and Text holds only its first MaxLine bytes.
	Truncated bool
}

// Options control [Follow]. The zero value follows a file from its start
// with fsnotify.
type Options struct {
	// Start resumes reading at Start.Offset if the file's first line
	// still has the MD5 Start.FirstLineMD5. Otherwise the file is read
	// from its start, after the rest of a rotated copy of the old file
	// (path.* or path-*, uncompressed) whose first line matches.
	Start *Position
	// FromEnd makes reading begin at the end of the file when Start is
	// nil (fail2ban's "logpath = ... tail"). It applies only to the file
	// found at start; files that replace it are read from offset 0.
	FromEnd bool
	// Poll checks the file every PollInterval instead of waiting for
	// fsnotify events (fail2ban's "backend = polling").
	Poll bool
	// PollInterval is the polling interval, used when Poll is set or
	// when fsnotify cannot be set up. Default DefaultPollInterval.
	PollInterval time.Duration
	// MaxLine is the longest line handed out, in bytes. Longer lines are
	// cut to MaxLine bytes and marked Truncated; the rest up to the
	// newline is skipped. Default DefaultMaxLine.
	MaxLine int
	// Logger receives rotation notices and non-fatal errors.
	// Default slog.Default().
	Logger *slog.Logger
}

// Follow reads the file at path from the start position given by opts
// and calls fn, from the calling goroutine, for every complete line,
// until ctx ends or fn returns an error. It then returns ctx.Err(), fn's
// error or a fatal error, after every goroutine it started has stopped.
//
// A file that does not exist yet is waited for. A partial last line is
// held back until its newline is written, except in a file that has been
// rotated away, whose last line is handed out as it is.
func Follow(ctx context.Context, path string, opts Options, fn func(Line) error) error {
	if opts.MaxLine <= 0 {
		opts.MaxLine = DefaultMaxLine
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	t := &tailer{
		ctx:     ctx,
		path:    filepath.Clean(path),
		opts:    opts,
		fn:      fn,
		log:     opts.Logger.With("path", path),
		buf:     make([]byte, 32<<10),
		initial: true,
	}
	defer t.closeFile()

	err := t.run()
	if err != nil && !(ctx.Err() != nil && errors.Is(err, ctx.Err())) {
		return fmt.Errorf("source %s: %w", path, err)
	}
	return err
}

// tailer is the state of one Follow call.
type tailer struct {
	ctx     context.Context
	path    string
	opts    Options
	fn      func(Line) error
	log     *slog.Logger
	buf     []byte
	cur     *file // nil while the path has no file
	initial bool  // the first open is still to come
	polling bool  // fsnotify could not be set up
	warned  bool  // an open failed and was logged; cleared by a success
}

// file is an open file and how far it has been read.
type file struct {
	f        *os.File
	info     os.FileInfo
	md5      string // MD5 of the first line; "" until it is complete
	firstLen int64  // length of the first line, "\n" included
	off      int64  // offset after the last complete line
	readOff  int64  // offset up to which bytes went into pending
	pending  []byte // start of the incomplete line, at most MaxLine bytes
	cut      bool   // pending lost bytes beyond MaxLine
}

// run follows the file with fsnotify when it can, and polls otherwise.
// While polling for lack of fsnotify it tries to set up a watch again at
// every tick.
func (t *tailer) run() error {
	var w *fsnotify.Watcher
	if !t.opts.Poll {
		w = t.newWatcher()
	}
	for {
		var err error
		if w != nil {
			err = t.watch(w)
			w = nil
		} else {
			w, err = t.poll()
		}
		if err != nil {
			return err
		}
	}
}

// newWatcher watches the directory of the path, or returns nil if it
// cannot.
func (t *tailer) newWatcher() *fsnotify.Watcher {
	w, err := fsnotify.NewWatcher()
	if err == nil {
		if err = w.Add(filepath.Dir(t.path)); err != nil {
			w.Close()
		}
	}
	if err != nil {
		if !t.polling {
			t.log.Warn("fsnotify unavailable, polling", "interval", t.opts.PollInterval, "err", err)
		}
		t.polling = true
		return nil
	}
	if t.polling {
		t.log.Info("fsnotify available again")
	}
	t.polling = false
	return w
}

// watch checks the file each time fsnotify reports a change to it, until
// ctx ends, an error occurs, or the watched directory goes away, when it
// returns nil. It closes w before returning.
func (t *tailer) watch(w *fsnotify.Watcher) error {
	defer w.Close()
	dir := filepath.Dir(t.path)
	// relevant reports whether ev concerns the followed path, and whether
	// the watched directory itself went away.
	relevant := func(ev fsnotify.Event) (hit, gone bool) {
		if ev.Name == dir && ev.Has(fsnotify.Remove|fsnotify.Rename) {
			return false, true
		}
		return ev.Name == t.path, false
	}
	if err := t.check(); err != nil {
		return err
	}
	for {
		select {
		case <-t.ctx.Done():
			return t.ctx.Err()
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("fsnotify watcher closed")
			}
			hit, gone := relevant(ev)
		coalesce: // One check reads everything written so far.
			for !gone {
				select {
				case ev, ok = <-w.Events:
					if !ok {
						break coalesce
					}
					h, g := relevant(ev)
					hit, gone = hit || h, g
				default:
					break coalesce
				}
			}
			if hit || gone {
				if err := t.check(); err != nil {
					return err
				}
			}
			if gone {
				t.log.Warn("watched directory removed, polling", "interval", t.opts.PollInterval)
				t.polling = true
				return nil
			}
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("fsnotify watcher closed")
			}
			t.log.Warn("fsnotify", "err", err)
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				if err := t.check(); err != nil {
					return err
				}
			}
		}
	}
}

// poll checks the file every PollInterval. Unless polling was asked for,
// it returns a watcher as soon as one can be set up.
func (t *tailer) poll() (*fsnotify.Watcher, error) {
	tick := time.NewTicker(t.opts.PollInterval)
	defer tick.Stop()
	for {
		if err := t.check(); err != nil {
			return nil, err
		}
		select {
		case <-t.ctx.Done():
			return nil, t.ctx.Err()
		case <-tick.C:
		}
		if !t.opts.Poll {
			if w := t.newWatcher(); w != nil {
				return w, nil
			}
		}
	}
}

// check reads whatever was added to the file since the last check,
// following a rotation if there was one.
func (t *tailer) check() error {
	for {
		if t.cur == nil {
			if err := t.open(); err != nil || t.cur == nil {
				return err
			}
		}
		// Stat the path before reading the open file to its end, so that
		// the old file is read completely when the path has moved on.
		pathInfo, statErr := os.Stat(t.path)
		if err := t.verify(); err != nil {
			return err
		}
		if err := t.drain(t.cur); err != nil {
			return err
		}
		if statErr == nil && os.SameFile(pathInfo, t.cur.info) {
			return nil
		}
		if statErr != nil {
			// Renamed away: keep reading it until a new file shows up.
			// Deleted: close it, so that its directory can go away too.
			info, err := t.cur.f.Stat()
			if err != nil || !deleted(info) {
				return nil
			}
			t.log.Info("file deleted")
		} else {
			t.log.Info("log rotation detected: new file at path")
		}
		if err := t.flush(t.cur); err != nil {
			return err
		}
		t.closeFile()
	}
}

// open opens the file at path, if there is one, and sets the offset to
// start reading at.
func (t *tailer) open() error {
	initial := t.initial
	t.initial = false
	f, err := os.Open(t.path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if initial && t.opts.Start != nil {
				return t.resumeRotated(*t.opts.Start, nil)
			}
			return nil
		}
		// A file the daemon may not read yet (its mode, its owner) is
		// waited for as a missing one is: fixing it needs no restart.
		if initial && !errors.Is(err, fs.ErrPermission) {
			return err
		}
		if !t.warned {
			t.log.Warn("cannot open, will retry when it changes", "err", err)
			t.warned = true
		}
		return nil
	}
	t.warned = false
	info, err := f.Stat()
	if err == nil && info.IsDir() {
		err = errors.New("is a directory")
	}
	if err != nil {
		f.Close()
		return err
	}
	c := &file{f: f, info: info}
	t.cur = c
	if !initial {
		return nil
	}
	switch {
	case t.opts.Start != nil:
		start := *t.opts.Start
		sum, n, err := firstLine(f)
		if err != nil {
			return err
		}
		if sum != "" && sum == start.FirstLineMD5 && start.Offset <= info.Size() {
			c.md5, c.firstLen = sum, n
			c.off, c.readOff = start.Offset, start.Offset
			return nil
		}
		return t.resumeRotated(start, info)
	case t.opts.FromEnd:
		end, err := lastLineEnd(f, info.Size())
		if err != nil {
			return err
		}
		c.off, c.readOff = end, end
	}
	return nil
}

// resumeRotated looks for the file start refers to among rotated copies
// of the path and reads it from start.Offset to its end. cur is the
// current file at path, if any, which is skipped.
func (t *tailer) resumeRotated(start Position, cur os.FileInfo) error {
	if start.FirstLineMD5 == "" {
		return nil
	}
	var names []string
	for _, pat := range []string{".*", "-*"} {
		m, err := filepath.Glob(globEscape(t.path) + pat)
		if err != nil {
			return err
		}
		names = append(names, m...)
	}
	var best *file
	defer func() {
		if best != nil {
			best.f.Close()
		}
	}()
	for _, name := range names {
		if compressed(name) {
			continue
		}
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		info, err := f.Stat()
		if err != nil || !info.Mode().IsRegular() || (cur != nil && os.SameFile(info, cur)) || info.Size() < start.Offset {
			f.Close()
			continue
		}
		sum, n, err := firstLine(f)
		if err != nil || sum != start.FirstLineMD5 || (best != nil && !info.ModTime().After(best.info.ModTime())) {
			f.Close()
			continue
		}
		if best != nil {
			best.f.Close()
		}
		best = &file{f: f, info: info, md5: sum, firstLen: n, off: start.Offset, readOff: start.Offset}
	}
	if best == nil {
		t.log.Info("file changed since the stored position; reading from start")
		return nil
	}
	t.log.Info("resuming in rotated file", "rotated", best.f.Name(), "offset", start.Offset)
	if err := t.drain(best); err != nil {
		return err
	}
	return t.flush(best)
}

// verify starts the current file over when it was truncated or its
// first line changed.
func (t *tailer) verify() error {
	c := t.cur
	info, err := c.f.Stat()
	if err != nil {
		return err
	}
	reason := ""
	switch {
	case info.Size() < c.readOff:
		reason = "file truncated"
	case c.md5 != "":
		h := md5.New()
		n, err := io.CopyBuffer(h, io.NewSectionReader(c.f, 0, c.firstLen), t.buf)
		if err != nil {
			return err
		}
		if n != c.firstLen || hex.EncodeToString(h.Sum(nil)) != c.md5 {
			reason = "first line changed"
		}
	}
	if reason != "" {
		t.log.Info("log rotation detected: "+reason, "offset", c.readOff, "size", info.Size())
		*c = file{f: c.f, info: c.info, pending: c.pending[:0]}
	}
	return nil
}

// drain reads c to its end and hands out the complete lines.
func (t *tailer) drain(c *file) error {
	limit := t.opts.MaxLine
	for {
		n, err := c.f.ReadAt(t.buf, c.readOff)
		b := t.buf[:n]
		for len(b) > 0 {
			i := bytes.IndexByte(b, '\n')
			seg := b
			if i >= 0 {
				seg = b[:i]
			}
			if room := limit - len(c.pending); len(seg) > room {
				seg, c.cut = seg[:room], true
			}
			c.pending = append(c.pending, seg...)
			if i < 0 {
				c.readOff += int64(len(b))
				break
			}
			c.readOff += int64(i + 1)
			b = b[i+1:]
			if err := t.emit(c); err != nil {
				return err
			}
		}
		if err == io.EOF || n == 0 {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// flush hands out the incomplete last line of a file that will not grow
// any more.
func (t *tailer) flush(c *file) error {
	if len(c.pending) == 0 && !c.cut {
		return nil
	}
	return t.emit(c)
}

// emit hands out the pending line, which ends at c.readOff.
func (t *tailer) emit(c *file) error {
	if err := t.ctx.Err(); err != nil {
		return err
	}
	if c.md5 == "" {
		sum, n, err := firstLine(c.f)
		if err != nil {
			return err
		}
		c.md5, c.firstLen = sum, n
	}
	text := c.pending
	if len(text) > 0 && text[len(text)-1] == '\r' {
		text = text[:len(text)-1]
	}
	c.off = c.readOff
	l := Line{Text: string(text), Pos: Position{FirstLineMD5: c.md5, Offset: c.off}, Truncated: c.cut}
	c.pending, c.cut = c.pending[:0], false
	return t.fn(l)
}

func (t *tailer) closeFile() {
	if t.cur != nil {
		t.cur.f.Close()
		t.cur = nil
	}
}

// firstLine returns the hex MD5 of f's first line, "\n" included, and
// its length; "" and 0 if the first line is not complete yet.
func firstLine(f *os.File) (string, int64, error) {
	h := md5.New()
	buf := make([]byte, 4096)
	var off int64
	for {
		n, err := f.ReadAt(buf, off)
		if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
			h.Write(buf[:i+1])
			return hex.EncodeToString(h.Sum(nil)), off + int64(i+1), nil
		}
		h.Write(buf[:n])
		off += int64(n)
		if err == io.EOF || n == 0 {
			return "", 0, nil
		}
		if err != nil {
			return "", 0, err
		}
	}
}

// lastLineEnd returns the offset after the last "\n" before size.
func lastLineEnd(f *os.File, size int64) (int64, error) {
	buf := make([]byte, 4096)
	for end := size; end > 0; {
		start := max(end-int64(len(buf)), 0)
		b := buf[:end-start]
		if _, err := f.ReadAt(b, start); err != nil && err != io.EOF {
			return 0, err
		}
		if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
			return start + int64(i) + 1, nil
		}
		end = start
	}
	return 0, nil
}

// compressed reports whether name looks like a compressed rotated file,
// which is not read.
func compressed(name string) bool {
	switch filepath.Ext(name) {
	case ".gz", ".bz2", ".xz", ".zst", ".lz4", ".lzma", ".Z", ".zip":
		return true
	}
	return false
}

// globEscape quotes the characters filepath.Match treats specially.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

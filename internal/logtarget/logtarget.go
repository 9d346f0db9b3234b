// Package logtarget writes the daemon's log in fail2ban's line format,
//
//	2026-11-25 10:00:00,123 fail2ban.actions        [1234]: NOTICE  [sshd] Ban 192.0.2.1
//
// so that what reads fail2ban's log keeps working: above all the stock
// recidive filter, which bans again the addresses other jails keep
// banning.
package logtarget

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// LevelNotice is fail2ban's NOTICE, between INFO and WARNING: bans and
// unbans are logged at it.
const LevelNotice = slog.Level(2)

// LoggerKey is the attribute that names a record's logger
// ("fail2ban.actions"); records without it are "fail2ban".
const LoggerKey = "logger"

// Handler is a slog.Handler writing fail2ban's format. Attributes other
// than the logger's name follow the message as key=value.
type Handler struct {
	mu    *sync.Mutex
	w     io.Writer
	pid   int
	level slog.Leveler
	attrs []slog.Attr
	group string
}

// NewHandler returns a handler writing records at level or above to w,
// with pid as the process id.
func NewHandler(w io.Writer, pid int, level slog.Leveler) *Handler {
	return &Handler{mu: new(sync.Mutex), w: w, pid: pid, level: level}
}

// Enabled reports whether level is logged.
func (h *Handler) Enabled(_ context.Context, level slog.Level) bool {
	return level >= h.level.Level()
}

// LevelName is fail2ban's name of a level.
func LevelName(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "ERROR"
	case l >= slog.LevelWarn:
		return "WARNING"
	case l >= LevelNotice:
		return "NOTICE"
	case l >= slog.LevelInfo:
		return "INFO"
	}
	return "DEBUG"
}

// Handle writes one record as one line; newlines in the message or the
// attributes are escaped, so that a value from a log line cannot forge a
// line of ours.
func (h *Handler) Handle(_ context.Context, r slog.Record) error {
	logger := "fail2ban"
	var extra []string
	add := func(a slog.Attr) bool {
		if a.Key == LoggerKey {
			logger = a.Value.String()
			return true
		}
		key := a.Key
		if h.group != "" {
			key = h.group + "." + key
		}
		extra = append(extra, key+"="+a.Value.String())
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	msg := r.Message
	if len(extra) > 0 {
		msg += " " + strings.Join(extra, " ")
	}
	line := fmt.Sprintf("%s,%03d %-24s[%d]: %-7s %s\n", t.Format("2006-01-02 15:04:05"), t.Nanosecond()/1e6,
		logger, h.pid, LevelName(r.Level), escape(msg))
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, line)
	return err
}

func escape(s string) string {
	if !strings.ContainsAny(s, "\n\r") {
		return s
	}
	return strings.NewReplacer("\n", `\n`, "\r", `\r`).Replace(s)
}

// WithAttrs returns a handler that adds attrs to every record.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return &c
}

// WithGroup returns a handler that prefixes the keys of later attributes.
func (h *Handler) WithGroup(name string) slog.Handler {
	c := *h
	if c.group != "" {
		name = c.group + "." + name
	}
	c.group = name
	return &c
}

// Ban logs a ban as fail2ban's actions logger does.
func Ban(ctx context.Context, l *slog.Logger, jail, ip string, restored bool) {
	msg := fmt.Sprintf("[%s] Ban %s", jail, ip)
	if restored {
		msg = fmt.Sprintf("[%s] Restore Ban %s", jail, ip)
	}
	l.Log(ctx, LevelNotice, msg, LoggerKey, "fail2ban.actions")
}

// Unban logs an unban as fail2ban's actions logger does.
func Unban(ctx context.Context, l *slog.Logger, jail, ip string) {
	l.Log(ctx, LevelNotice, fmt.Sprintf("[%s] Unban %s", jail, ip), LoggerKey, "fail2ban.actions")
}

// File is a log file that can be opened again after logrotate moved it
// away (fail2ban-client flushlogs), so that the daemon writes to the new
// file rather than on into the rotated one.
type File struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

// OpenFile opens path for appending, creating it and its directory.
func OpenFile(path string) (*File, error) {
	lf := &File{path: path}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("logtarget: %w", err)
	}
	f, err := lf.open()
	if err != nil {
		return nil, err
	}
	lf.f = f
	return lf, nil
}

func (lf *File) open() (*os.File, error) {
	f, err := os.OpenFile(lf.path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, fmt.Errorf("logtarget: %w", err)
	}
	return f, nil
}

// Write appends p to the file.
func (lf *File) Write(p []byte) (int, error) {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	return lf.f.Write(p)
}

// Reopen opens the file's path again and writes there from now on; on
// an error the old file stays in use.
func (lf *File) Reopen() error {
	f, err := lf.open()
	if err != nil {
		return err
	}
	lf.mu.Lock()
	old := lf.f
	lf.f = f
	lf.mu.Unlock()
	return old.Close()
}

// Close closes the file.
func (lf *File) Close() error {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	return lf.f.Close()
}

package source

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The journal's export format (systemd's JOURNAL_EXPORT_FORMATS), which
// journalctl -o export writes: an entry is a run of fields ended by an
// empty line. A field is NAME=VALUE on one line, or, when its value is
// binary or holds a newline, NAME on a line of its own, the value's size
// as a 64-bit little-endian integer, the value, and a newline.

// exportFields are the fields an entry's line is made of; journalctl is
// asked for these only (it adds __CURSOR, __REALTIME_TIMESTAMP,
// __MONOTONIC_TIMESTAMP and _BOOT_ID to every entry).
var exportFields = []string{
	"MESSAGE", "_HOSTNAME", "SYSLOG_IDENTIFIER", "SYSLOG_PID", "_PID", "_COMM",
	"_SOURCE_REALTIME_TIMESTAMP", "_SOURCE_MONOTONIC_TIMESTAMP",
}

// rawEntry holds the fields of one journal entry that its line is made
// of, as bytes; the repeated MESSAGE fields are all kept.
type rawEntry struct {
	message                    [][]byte
	hostname, ident, comm      []byte
	syslogPID, pid             []byte
	cursor                     []byte
	realtime, sourceRealtime   []byte
	monotonic, sourceMonotonic []byte
	// cut reports that a field was longer than the reader's limit and
	// kept only its first bytes.
	cut bool
}

// reset empties e for the next entry, keeping nothing of the last.
func (e *rawEntry) reset() { *e = rawEntry{} }

// set stores one field's value; a field that repeats keeps its first
// value, except MESSAGE, whose values are all kept.
func (e *rawEntry) set(name string, v []byte) {
	var dst *[]byte
	switch name {
	case "MESSAGE":
		e.message = append(e.message, bytes.Clone(v))
		return
	case "_HOSTNAME":
		dst = &e.hostname
	case "SYSLOG_IDENTIFIER":
		dst = &e.ident
	case "_COMM":
		dst = &e.comm
	case "SYSLOG_PID":
		dst = &e.syslogPID
	case "_PID":
		dst = &e.pid
	case "__CURSOR":
		dst = &e.cursor
	case "__REALTIME_TIMESTAMP":
		dst = &e.realtime
	case "_SOURCE_REALTIME_TIMESTAMP":
		dst = &e.sourceRealtime
	case "__MONOTONIC_TIMESTAMP":
		dst = &e.monotonic
	case "_SOURCE_MONOTONIC_TIMESTAMP":
		dst = &e.sourceMonotonic
	default:
		return
	}
	if *dst == nil {
		*dst = append([]byte{}, v...)
	}
}

// errExport is wrapped by the errors of a malformed export stream.
var errExport = errors.New("malformed journal export stream")

// exportReader reads entries from an export stream.
type exportReader struct {
	r *bufio.Reader
	// max is the longest field value kept, in bytes; the rest of a
	// longer one is read and dropped.
	max  int
	line []byte // scratch for the current line
}

func newExportReader(r io.Reader, max int) *exportReader {
	return &exportReader{r: bufio.NewReaderSize(r, 64<<10), max: max}
}

// next reads the next entry into e. It returns io.EOF at the end of the
// stream between entries and an error wrapping io.ErrUnexpectedEOF when
// the stream ends inside one: a cut entry is never handed out.
func (x *exportReader) next(e *rawEntry) error {
	e.reset()
	fields := 0
	for {
		line, cut, err := x.readLine(x.max + 256) // room for the name and "="
		if err != nil {
			if err == io.EOF {
				if fields == 0 && len(line) == 0 {
					return io.EOF
				}
				return fmt.Errorf("%w: %w inside an entry", errExport, io.ErrUnexpectedEOF)
			}
			return err
		}
		if len(line) == 0 && !cut {
			if fields == 0 {
				continue // blank lines between entries
			}
			return nil
		}
		fields++
		if i := bytes.IndexByte(line, '='); i >= 0 {
			v := line[i+1:]
			if len(v) > x.max {
				v, cut = v[:x.max], true
			}
			e.cut = e.cut || cut
			e.set(string(line[:i]), v)
			continue
		}
		if cut {
			return fmt.Errorf("%w: a field name of over %d bytes", errExport, x.max+256)
		}
		name := string(line)
		v, cut, err := x.readBinary()
		if err != nil {
			return err
		}
		e.cut = e.cut || cut
		e.set(name, v)
	}
}

// readLine reads up to the next "\n" and returns the line without it,
// at most limit bytes of it; cut reports that more were dropped. At the
// end of the stream it returns what it read with io.EOF.
func (x *exportReader) readLine(limit int) (line []byte, cut bool, err error) {
	x.line = x.line[:0]
	for {
		chunk, err := x.r.ReadSlice('\n')
		full := err == nil
		if full {
			chunk = chunk[:len(chunk)-1]
		}
		if room := limit - len(x.line); len(chunk) > room {
			chunk, cut = chunk[:max(room, 0)], true
		}
		x.line = append(x.line, chunk...)
		switch {
		case full:
			return x.line, cut, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF:
			return x.line, cut, io.EOF
		default:
			return nil, false, err
		}
	}
}

// readBinary reads a binary field's size, value and final "\n", keeping
// at most x.max bytes of the value.
func (x *exportReader) readBinary() (v []byte, cut bool, err error) {
	var size [8]byte
	if _, err := io.ReadFull(x.r, size[:]); err != nil {
		return nil, false, unexpected(err)
	}
	n := binary.LittleEndian.Uint64(size[:])
	keep := n
	if keep > uint64(x.max) {
		keep, cut = uint64(x.max), true
	}
	v = make([]byte, keep)
	if _, err := io.ReadFull(x.r, v); err != nil {
		return nil, false, unexpected(err)
	}
	if rest := n - keep; rest > 0 {
		// A size beyond int64 is not a real one: the stream is broken.
		if rest > 1<<62 {
			return nil, false, fmt.Errorf("%w: a binary field of %d bytes", errExport, n)
		}
		if _, err := io.CopyN(io.Discard, x.r, int64(rest)); err != nil {
			return nil, false, unexpected(err) // io.EOF when the value is cut short
		}
	}
	nl, err := x.r.ReadByte()
	if err != nil {
		return nil, false, unexpected(err)
	}
	if nl != '\n' {
		return nil, false, fmt.Errorf("%w: a binary field not followed by a newline", errExport)
	}
	return v, cut, nil
}

// unexpected turns an end of stream inside an entry into an error that
// says so.
func unexpected(err error) error {
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %w inside an entry", errExport, io.ErrUnexpectedEOF)
	}
	return err
}

// JournalEntry is one entry of the journal, made into a line as fail2ban
// makes one.
type JournalEntry struct {
	// Text is the entry as a syslog-style line, "HOST IDENT[PID]: MESSAGE"
	// (see formatEntry). It is valid UTF-8 and holds no newline.
	Text string
	// Time is when the entry was logged: its _SOURCE_REALTIME_TIMESTAMP
	// if it has one, else its __REALTIME_TIMESTAMP. The filter takes the
	// failure's time from here, not from the text.
	Time time.Time
	// Cursor is the journal's cursor of the entry: reading resumes after
	// it (JournalOptions.Cursor).
	Cursor string
	// Truncated reports that a field was longer than JournalOptions.MaxLine
	// bytes and only its first MaxLine bytes were kept.
	Truncated bool
}

// formatEntry makes the line fail2ban's systemd backend makes of an
// entry: the host name, then the identifier (SYSLOG_IDENTIFIER, else
// _COMM) with the PID in brackets (SYSLOG_PID, else _PID) and a colon,
// then for the kernel its monotonic time in seconds as dmesg prints it,
// then the message (its values joined with spaces when the field
// repeats); the parts that are there are joined with spaces. Bytes that
// are not UTF-8 become U+FFFD, and a newline becomes the two characters
// "\n", so that the line stays one line. An entry without a timestamp
// has the zero Time.
func formatEntry(e *rawEntry) JournalEntry {
	var parts []string
	if h := decode(e.hostname); h != "" {
		parts = append(parts, h)
	}
	ident := e.ident
	if len(ident) == 0 {
		ident = e.comm
	}
	if len(ident) > 0 {
		s := decode(ident)
		pid := e.syslogPID
		if len(pid) == 0 {
			pid = e.pid
		}
		if len(pid) > 0 {
			s += "[" + decode(pid) + "]"
		}
		s += ":"
		parts = append(parts, s)
		if s == "kernel:" {
			for _, mono := range [][]byte{e.sourceMonotonic, e.monotonic} {
				if us, err := strconv.ParseUint(string(mono), 10, 64); err == nil {
					parts = append(parts, fmt.Sprintf("[%12s]", fmt.Sprintf("%d.%06d", us/1e6, us%1e6)))
					break
				}
			}
		}
	}
	msgs := make([]string, len(e.message))
	for i, m := range e.message {
		msgs[i] = decode(m)
	}
	parts = append(parts, strings.Join(msgs, " "))
	text := strings.ReplaceAll(strings.Join(parts, " "), "\n", `\n`)
	ent := JournalEntry{Text: text, Cursor: string(e.cursor), Truncated: e.cut}
	for _, rt := range [][]byte{e.sourceRealtime, e.realtime} {
		if us, err := strconv.ParseInt(string(rt), 10, 64); err == nil && us > 0 {
			ent.Time = time.UnixMicro(us)
			break
		}
	}
	return ent
}

// decode returns b as UTF-8, each byte that is not part of a valid
// sequence replaced by U+FFFD.
func decode(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var s strings.Builder
	s.Grow(len(b) + 8)
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n <= 1 {
			s.WriteRune(utf8.RuneError)
			n = 1
		} else {
			s.Write(b[:n])
		}
		b = b[n:]
	}
	return s.String()
}

// Package config reads fail2ban's configuration as fail2ban itself does.
//
// This first layer implements fail2ban's INI dialect: parsing one file
// ([Parse]), reading a named configuration with its .conf/.local/.d
// overrides and [INCLUDES] ([Read], [ReadFiles]), and fail2ban's
// %(name)s interpolation with its known/, default/ and section/ extensions
// and %(__name__)s ([Config.Get], [Config.Section]), and the
// name[key=value, ...] specifications of a jail's filter and action
// options ([SplitSpecs], [ParseSpec]). Tags such as <HOST> or
// <known/failregex> are a later layer and are left untouched here.
//
// Every value remembers where it was set, and every error names the
// file, the line and, when there is one, the option.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// DefaultSection is the name of the section whose options are visible in
// every other section.
const DefaultSection = "DEFAULT"

// MaxFileSize is the largest configuration file Parse accepts.
const MaxFileSize = 16 << 20

// Pos is where a section or an option was set: a file name and a 1-based
// line number.
type Pos struct {
	File string
	Line int
}

// String returns "file:line".
func (p Pos) String() string { return fmt.Sprintf("%s:%d", p.File, p.Line) }

// Option is one key of a section, with its value and where it was set.
// In a parsed [File] the value is raw (not interpolated); in a section
// returned by [Config.Section] it is resolved.
type Option struct {
	Name  string // lower-cased as fail2ban does (in a Config, a "?cond" suffix keeps its spelling)
	Value string // continuation lines are joined with "\n"
	Pos   Pos    // the line of the key
}

// Section is a named, ordered set of options.
type Section struct {
	Name    string // case-sensitive, e.g. "Definition", "Init?family=inet6"
	Pos     Pos    // the line of the first [Name] header
	Options []Option
}

// Option returns the option named name (case-insensitive) and whether the
// section has it.
func (s *Section) Option(name string) (Option, bool) {
	name = strings.ToLower(name)
	for _, o := range s.Options {
		if o.Name == name {
			return o, true
		}
	}
	return Option{}, false
}

// File is one parsed configuration file.
type File struct {
	Name string // as given to Parse; used in positions and errors
	// Sections in the order of their first header. All [DEFAULT] headers
	// of the file are merged into one section named DefaultSection.
	Sections []*Section
}

// Section returns the section named name (case-sensitive), or nil.
func (f *File) Section(name string) *Section {
	for _, s := range f.Sections {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Error is an error in a configuration file, at a position and, when
// there is one, about an option.
type Error struct {
	Pos     Pos
	Section string // may be empty
	Option  string // may be empty
	Err     error
}

// Error returns `file:line: option "name": message`, leaving out the
// option part when there is no option.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Pos.File != "" {
		b.WriteString(e.Pos.File)
		if e.Pos.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Pos.Line)
		}
		b.WriteString(": ")
	}
	if e.Option != "" {
		fmt.Fprintf(&b, "option %q: ", e.Option)
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Errors Parse reports (wrapped in an *Error), for errors.Is.
var (
	ErrMissingHeader    = errors.New("option before any section header")
	ErrSyntax           = errors.New("line is neither a section header nor key = value")
	ErrDuplicateSection = errors.New("duplicate section")
	ErrDuplicateOption  = errors.New("duplicate option")
	ErrEncoding         = errors.New("invalid UTF-8")
	ErrTooLarge         = errors.New("file too large")
)

// Parse reads one configuration file in fail2ban's INI dialect (Python's
// ConfigParser with inline_comment_prefixes=";" and strict=True):
//
//   - "[Name]" starts a section; names are case-sensitive, anything after
//     the last "]" on the line is ignored. [DEFAULT] may appear several
//     times; any other section appearing twice in one file is an error.
//   - "key = value" or "key: value" (the first "=" or ":" splits); keys are
//     lower-cased; a key repeated in one section of one file is an error.
//   - lines starting (after whitespace) with "#" or ";" are comments; ";"
//     preceded by whitespace starts an inline comment; "#" never does.
//   - a line indented deeper than its key continues the value; parts are
//     joined with "\n". Empty lines inside a value are kept, trailing ones
//     dropped; comment lines inside a value are skipped.
//   - lines end at "\n", "\r\n" or "\r". A leading UTF-8 byte order mark
//     is skipped (fail2ban itself rejects such a file). Invalid UTF-8 is
//     an error (fail2ban logs it and ignores the file).
func Parse(r io.Reader, name string) (*File, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return nil, &Error{Pos: Pos{File: name}, Err: fmt.Errorf("reading: %w", err)}
	}
	if len(data) > MaxFileSize {
		return nil, &Error{Pos: Pos{File: name}, Err: fmt.Errorf("%w (over %d bytes)", ErrTooLarge, MaxFileSize)}
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	p := parser{file: &File{Name: name}, seen: map[string]bool{}}
	lineno := 0
	for len(data) > 0 {
		lineno++
		i := bytes.IndexAny(data, "\r\n")
		var line []byte
		if i < 0 {
			line, data = data, nil
		} else {
			line = data[:i]
			if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
				i++
			}
			data = data[i+1:]
		}
		if !utf8.Valid(line) {
			return nil, &Error{Pos: Pos{name, lineno}, Err: ErrEncoding}
		}
		if err := p.line(string(line), lineno); err != nil {
			return nil, err
		}
	}
	p.endOption()
	return p.file, nil
}

// parser holds the state of Parse between lines.
type parser struct {
	file   *File
	cur    *Section        // current section, nil before the first header
	opt    int             // index of the current option in cur, -1 if none
	parts  []string        // the current option's value lines
	indent int             // indentation of the last key or header line
	seen   map[string]bool // "section" and "section\x00key" already in this file
}

func (p *parser) line(line string, lineno int) error {
	commentAt := -1
	for i := 0; i < len(line); {
		j := strings.IndexByte(line[i:], ';')
		if j < 0 {
			break
		}
		j += i
		if j == 0 {
			commentAt = 0
			break
		}
		if r, _ := utf8.DecodeLastRuneInString(line[:j]); isSpace(r) {
			commentAt = j
			break
		}
		i = j + 1
	}
	trimmed := strings.TrimFunc(line, isSpace)
	if strings.HasPrefix(trimmed, "#") || strings.HasPrefix(trimmed, ";") {
		commentAt = 0
	}
	value := line
	if commentAt >= 0 {
		value = line[:commentAt]
	}
	value = strings.TrimFunc(value, isSpace)
	if value == "" {
		// An empty line belongs to the value being read (trailing ones
		// are dropped at the end); a comment line does not.
		if commentAt < 0 && p.cur != nil && p.opt >= 0 {
			p.parts = append(p.parts, "")
		}
		return nil
	}
	indent := 0
	for _, r := range line {
		if !isSpace(r) {
			break
		}
		indent++
	}
	if p.cur != nil && p.opt >= 0 && indent > p.indent {
		p.parts = append(p.parts, value)
		return nil
	}
	p.indent = indent
	pos := Pos{p.file.Name, lineno}
	if name, ok := sectionHeader(value); ok {
		p.endOption()
		if name != DefaultSection && p.seen[name] {
			return &Error{Pos: pos, Section: name, Err: fmt.Errorf("%w [%s]", ErrDuplicateSection, name)}
		}
		p.seen[name] = true
		if s := p.file.Section(name); s != nil {
			p.cur = s // a repeated [DEFAULT]
		} else {
			p.cur = &Section{Name: name, Pos: pos}
			p.file.Sections = append(p.file.Sections, p.cur)
		}
		return nil
	}
	if p.cur == nil {
		return &Error{Pos: pos, Err: ErrMissingHeader}
	}
	i := strings.IndexAny(value, "=:")
	if i < 0 {
		p.endOption()
		return &Error{Pos: pos, Section: p.cur.Name, Err: fmt.Errorf("%w: %q", ErrSyntax, truncate(value))}
	}
	key := strings.ToLower(strings.TrimFunc(value[:i], isSpace))
	if key == "" {
		p.endOption()
		return &Error{Pos: pos, Section: p.cur.Name, Err: fmt.Errorf("%w: empty key", ErrSyntax)}
	}
	k := p.cur.Name + "\x00" + key
	if p.seen[k] {
		return &Error{Pos: pos, Section: p.cur.Name, Option: key,
			Err: fmt.Errorf("%w in section [%s]", ErrDuplicateOption, p.cur.Name)}
	}
	p.seen[k] = true
	p.endOption()
	p.cur.Options = append(p.cur.Options, Option{Name: key, Pos: pos})
	p.opt = len(p.cur.Options) - 1
	p.parts = append(p.parts[:0], strings.TrimFunc(value[i+1:], isSpace))
	return nil
}

// endOption stores the value being read into its option.
func (p *parser) endOption() {
	if p.cur != nil && p.opt >= 0 {
		p.cur.Options[p.opt].Value = strings.TrimRight(strings.Join(p.parts, "\n"), "\n")
	}
	p.opt = -1
	p.parts = p.parts[:0]
}

// sectionHeader reports whether a trimmed line is "[name]..." and returns
// name, which runs to the last "]" of the line (as Python's greedy
// \[(.+)\] does).
func sectionHeader(s string) (string, bool) {
	if !strings.HasPrefix(s, "[") {
		return "", false
	}
	j := strings.LastIndexByte(s, ']')
	if j < 2 {
		return "", false
	}
	return s[1:j], true
}

// isSpace reports whether Python's str.isspace holds for r.
func isSpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

func truncate(s string) string {
	const limit = 60
	if len(s) <= limit {
		return s
	}
	for i := range s {
		if i >= limit {
			return s[:i] + "..."
		}
	}
	return s
}

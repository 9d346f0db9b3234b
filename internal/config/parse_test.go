package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// render prints a parsed file compactly: one line per option,
// `[Section] key="value"@line`.
func render(f *File) string {
	var b strings.Builder
	for _, s := range f.Sections {
		if len(s.Options) == 0 {
			fmt.Fprintf(&b, "[%s]@%d\n", s.Name, s.Pos.Line)
		}
		for _, o := range s.Options {
			fmt.Fprintf(&b, "[%s] %s=%q@%d\n", s.Name, o.Name, o.Value, o.Pos.Line)
		}
	}
	return b.String()
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string // render's output
		wantErr string // substring of the error; want is ignored when set
		is      error
	}{
		{name: "equals and colon", in: "[A]\nx = 1\ny: 2\nz=3=4\nw : a=b\n",
			want: "[A] x=\"1\"@2\n[A] y=\"2\"@3\n[A] z=\"3=4\"@4\n[A] w=\"a=b\"@5\n"},
		{name: "first delimiter splits", in: "[A]\nurl: http://x=y\n",
			want: "[A] url=\"http://x=y\"@2\n"},
		{name: "keys lower-cased, sections case-sensitive", in: "[Definition]\nFailRegex = X\n[definition]\nA=b\n",
			want: "[Definition] failregex=\"X\"@2\n[definition] a=\"b\"@4\n"},
		{name: "empty value", in: "[A]\nx =\ny=\n",
			want: "[A] x=\"\"@2\n[A] y=\"\"@3\n"},
		{name: "inline semicolon after whitespace", in: "[A]\nx = a ; comment\ny = a;b\nz = a\t;c\n",
			want: "[A] x=\"a\"@2\n[A] y=\"a;b\"@3\n[A] z=\"a\"@4\n"},
		{name: "hash is never inline", in: "[A]\nx = a # not a comment\ny = a#b\n",
			want: "[A] x=\"a # not a comment\"@2\n[A] y=\"a#b\"@3\n"},
		{name: "full-line comments, also indented", in: "# c\n; c\n[A]\n  # c\n\t; c\nx = 1\n",
			want: "[A] x=\"1\"@6\n"},
		{name: "continuation lines", in: "[A]\nx = a\n  b\n\tc\ny = d\n",
			want: "[A] x=\"a\\nb\\nc\"@2\n[A] y=\"d\"@5\n"},
		{name: "empty lines inside a value kept, trailing dropped", in: "[A]\nx = a\n\n  b\n\n\ny = c\n\n",
			want: "[A] x=\"a\\n\\nb\"@2\n[A] y=\"c\"@7\n"},
		{name: "comment lines inside a value skipped", in: "[A]\nx = a\n# c\n  ; c\n  b ; c\n",
			want: "[A] x=\"a\\nb\"@2\n"},
		{name: "continuation of an empty first line", in: "[A]\nx =\n  a\n  b\n",
			want: "[A] x=\"\\na\\nb\"@2\n"},
		{name: "continuation needs deeper indentation than its key", in: "[A]\n  x = a\n  y = b\n    c\n",
			want: "[A] x=\"a\"@2\n[A] y=\"b\\nc\"@3\n"},
		{name: "indented line after header is a key", in: "[A]\n  x = a\n",
			want: "[A] x=\"a\"@2\n"},
		{name: "header text after last bracket ignored", in: "[A] junk\nx=1\n[B]]\ny=2\n",
			want: "[A] x=\"1\"@2\n[B]] y=\"2\"@4\n"},
		{name: "conditional section kept verbatim", in: "[Init?family=inet6]\nx = 1\n",
			want: "[Init?family=inet6] x=\"1\"@2\n"},
		{name: "empty section", in: "[A]\n[B]\n", want: "[A]@1\n[B]@2\n"},
		{name: "DEFAULT repeated is merged", in: "[DEFAULT]\na=1\n[X]\n[DEFAULT]\nb=2\n",
			want: "[DEFAULT] a=\"1\"@2\n[DEFAULT] b=\"2\"@5\n[X]@3\n"},
		{name: "CRLF", in: "[A]\r\nx = a\r\n  b\r\n",
			want: "[A] x=\"a\\nb\"@2\n"},
		{name: "lone CR ends a line", in: "[A]\rx = a\r  b\r",
			want: "[A] x=\"a\\nb\"@2\n"},
		{name: "BOM skipped", in: "\ufeff[A]\nx = 1\n",
			want: "[A] x=\"1\"@2\n"},
		{name: "no final newline", in: "[A]\nx = 1",
			want: "[A] x=\"1\"@2\n"},
		{name: "unicode whitespace trimmed like Python", in: "[A]\nx = \u00a0a\x1f\n",
			want: "[A] x=\"a\"@2\n"},
		{name: "percent kept raw", in: "[A]\nx = %(y)s %% %d\n",
			want: "[A] x=\"%(y)s %% %d\"@2\n"},
		{name: "very long line", in: "[A]\nx = " + strings.Repeat("a", 1<<20) + "\n",
			want: "[A] x=\"" + strings.Repeat("a", 1<<20) + "\"@2\n"},

		{name: "duplicate key", in: "[A]\nx = 1\nX = 2\n",
			wantErr: `f.conf:3: option "x": duplicate option in section [A]`, is: ErrDuplicateOption},
		{name: "duplicate key across DEFAULT headers", in: "[DEFAULT]\nx=1\n[DEFAULT]\nx=2\n",
			wantErr: `f.conf:4: option "x": duplicate option`, is: ErrDuplicateOption},
		{name: "duplicate section", in: "[A]\nx=1\n[B]\n[A]\n",
			wantErr: `f.conf:4: duplicate section [A]`, is: ErrDuplicateSection},
		{name: "option before any section", in: "x = 1\n",
			wantErr: `f.conf:1: option before any section header`, is: ErrMissingHeader},
		{name: "BOM-less junk before header", in: "\ufeff\ufeff[A]\n",
			wantErr: `f.conf:1:`, is: ErrMissingHeader},
		{name: "line without delimiter", in: "[A]\nx = 1\njunk\n",
			wantErr: `f.conf:3: line is neither a section header nor key = value: "junk"`, is: ErrSyntax},
		{name: "empty key", in: "[A]\n= 1\n",
			wantErr: `f.conf:2: line is neither a section header nor key = value: empty key`, is: ErrSyntax},
		{name: "empty brackets", in: "[A]\n[]\n",
			wantErr: `f.conf:2:`, is: ErrSyntax},
		{name: "invalid UTF-8", in: "[A]\nx = 1\ny = \xff\n",
			wantErr: `f.conf:3: invalid UTF-8`, is: ErrEncoding},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse(strings.NewReader(tt.in), "f.conf")
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("no error, want %q; got\n%s", tt.wantErr, render(f))
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q, want it to contain %q", err, tt.wantErr)
				}
				if tt.is != nil && !errors.Is(err, tt.is) {
					t.Errorf("error %v is not %v", err, tt.is)
				}
				var e *Error
				if !errors.As(err, &e) || e.Pos.File != "f.conf" || e.Pos.Line == 0 {
					t.Errorf("error %#v does not carry file and line", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := render(f); got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", trunc(got), trunc(tt.want))
			}
		})
	}
}

func trunc(s string) string {
	if len(s) > 500 {
		return s[:500] + "..."
	}
	return s
}

func TestParseTooLarge(t *testing.T) {
	r := strings.NewReader("[A]\nx = " + strings.Repeat("a", MaxFileSize))
	_, err := Parse(r, "big.conf")
	if !errors.Is(err, ErrTooLarge) || !strings.HasPrefix(err.Error(), "big.conf: ") {
		t.Fatalf("got %v, want ErrTooLarge naming big.conf", err)
	}
}

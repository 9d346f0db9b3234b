package config

import (
	"errors"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"",
		"[A]\nx = 1\n",
		"[DEFAULT]\na = %(b)s\n[DEFAULT]\nb = 2\n[Definition]\nfailregex = ^x <HOST>$\n  ^y ; c\n\n  # c\n  ^z\n",
		"[INCLUDES]\nbefore = common.conf\n[Init?family=inet6]\nx: y\n",
		"\ufeff[A]\r\nx = a\r  b\r\n",
		"[A]\nx = 1\nX = 2\n",
		"[A]\n[A]\n",
		"x = 1\n",
		"[A]\n = \n",
		"[]]\n\x1c x=\xa0\n",
		"[A]\nx = \xff\n",
		"[A]\n  x = a\n  y = b\n    c\n[B] junk\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		file, err := Parse(strings.NewReader(in), "fuzz.conf")
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Pos.File != "fuzz.conf" || !strings.HasPrefix(err.Error(), "fuzz.conf:") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		// Resolving must not panic either, whatever the values hold.
		c := NewConfig(file)
		for _, s := range append([]string{DefaultSection}, c.SectionNames()...) {
			for _, n := range c.OptionNames(s) {
				if _, err := c.Get(s, n); err != nil && !strings.HasPrefix(err.Error(), "fuzz.conf:") {
					t.Fatalf("Get error does not name the file: %v", err)
				}
			}
			for _, sec := range file.Sections {
				for _, o := range sec.Options {
					if o.Name == "" || o.Name != strings.ToLower(o.Name) || o.Pos.Line < 1 {
						t.Fatalf("bad option %+v", o)
					}
				}
			}
		}
	})
}

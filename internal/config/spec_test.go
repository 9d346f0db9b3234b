package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// specString prints a Spec as name{k=v|k=v}.
func specString(s Spec) string {
	var kv []string
	for _, o := range s.Options {
		kv = append(kv, fmt.Sprintf("%s=%s", o.Key, o.Value))
	}
	return s.Name + "{" + strings.Join(kv, "|") + "}"
}

// The expectations below are what fail2ban's extractOptions and
// splitWithOptions return for the same input (checked with fail2ban 1.0.2).
func TestParseSpec(t *testing.T) {
	tests := []struct {
		name, in, want string // want empty: an error
	}{
		{"name only", "sshd", "sshd{}"},
		{"one option", "sshd[mode=aggressive]", "sshd{mode=aggressive}"},
		{"space before bracket", "sshd [mode=aggressive] ", "sshd{mode=aggressive}"},
		{"quotes", `iptables[name=SSH, port="22,2222", protocol='tcp']`, "iptables{name=SSH|port=22,2222|protocol=tcp}"},
		{"quoted comma and bracket", `a[x="q, ]r"]`, "a{x=q, ]r}"},
		{"other quote inside", `a[x='s"q']`, `a{x=s"q}`},
		{"quoted value trimmed", `a[x=" spaced "]`, "a{x=spaced}"},
		{"quote not right after equals is literal", `a[x= "q"]`, `a{x="q"}`},
		{"unclosed quote is literal", `a[x="unclosed]`, `a{x="unclosed}`},
		{"multi-line quoted value", "a[x=\"multi\nline\", y=2]", "a{x=multi\nline|y=2}"},
		{"unquoted value runs to comma", "a[x=1\n  y=2]", "a{x=1\n  y=2}"},
		{"groups", "a[x=1][y=2]", "a{x=1|y=2}"},
		{"groups with space", "a[x=1] [y=2]", "a{x=1|y=2}"},
		{"trailing comma", "a[x=1, ]", "a{x=1}"},
		{"empty options", "a[]", "a{}"},
		{"empty value", "a[x=]", "a{x=}"},
		{"equals in value", "a[x=a=b]", "a{x=a=b}"},
		{"repeated key: first place, last value", "a[x=1, x=2, y=3]", "a{x=2|y=3}"},
		{"key characters", "a[x.y-z_1=v, é=1]", "a{x.y-z_1=v|é=1}"},
		{"interpolated value kept", `a[port="%(port)s"]`, "a{port=%(port)s}"},
		{"newline after quote", "a[x=\"x\"\n]", "a{x=x}"},
		{"no name", "[x=1]", ""},
		{"empty", "", ""},
		{"space before equals", "a[x = 1]", ""},
		{"text after quote", `a[x="x"y]`, ""},
		{"space after quote", `a[x="x" , y=1]`, ""},
		{"text after bracket", "a[x=1]junk", ""},
		{"unclosed bracket", "a[x=1", ""},
		{"extra bracket", "a[x=1]]", ""},
		{"no key", "a[=1]", ""},
		{"two specs", "a[x=1] b[y=2]", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSpec(tt.in)
			if tt.want == "" {
				if err == nil || !errors.Is(err, ErrSpec) {
					t.Fatalf("got %s, %v; want an ErrSpec", specString(s), err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := specString(s); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSplitSpecs(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
	}{
		{"words", "a b c", []string{"a", "b", "c"}},
		{"lines", "a[x=1] b[y=\"2 3\"]\n c", []string{"a[x=1]", `b[y="2 3"]`, "c"}},
		{"newline inside brackets", "a[x=1,\n  y=2]\n  b", []string{"a[x=1,\n  y=2]", "b"}},
		{"space before bracket", "a [x=1] b", []string{"a [x=1]", "b"}},
		{"groups with space", "a[x=1] [y=2] c", []string{"a[x=1] [y=2]", "c"}},
		{"quoted bracket", `a[x="q] z"] b`, []string{`a[x="q] z"]`, "b"}},
		{"padding", "a[ x=1 ] b", []string{"a[ x=1 ]", "b"}},
		{"malformed split at spaces", "a[x=1 b", []string{"a[x=1", "b"}},
		{"junk after bracket", "a[x=1]junk b", []string{"a[x=1]junk", "b"}},
		{"blank lines", " \n a\n\n b ", []string{"a", "b"}},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SplitSpecs(tt.in)
			if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestStockJailSpecs splits and parses every filter and action option of
// every stock jail (with [DEFAULT]'s action_* variants).
func TestStockJailSpecs(t *testing.T) {
	dir := sharedDir(t, "config")
	c, err := Read(dir, "jail")
	if err != nil {
		t.Fatal(err)
	}
	c.SetDefault("fail2ban_version", "1.1.2.dev1")
	c.SetDefault("fail2ban_confpath", dir)
	n := 0
	for _, sec := range c.SectionNames() {
		for _, opt := range c.OptionNames(sec) {
			if opt != "filter" && !strings.HasPrefix(opt, "action") {
				continue
			}
			v, err := c.Get(sec, opt)
			if err != nil {
				if !isStockException("jail", err) {
					t.Errorf("[%s] %s: %v", sec, opt, err)
				}
				continue
			}
			for _, part := range SplitSpecs(v) {
				if _, err := ParseSpec(part); err != nil {
					t.Errorf("[%s] %s: %v", sec, opt, err)
				}
				n++
			}
		}
	}
	if n < 500 {
		t.Errorf("parsed only %d specs", n)
	}
	sshd, err := c.Get("sshd", "action")
	if err != nil {
		t.Fatal(err)
	}
	specs := SplitSpecs(sshd)
	if len(specs) != 1 {
		t.Fatalf("sshd action %q: %d specs", sshd, len(specs))
	}
	s, err := ParseSpec(specs[0])
	if err != nil {
		t.Fatal(err)
	}
	banaction, _ := c.Get("sshd", "banaction") // set by paths-debian.conf
	if port, _ := s.Option("port"); s.Name != banaction || port != "ssh" {
		t.Errorf("sshd action = %s", specString(s))
	}
}

func FuzzParseSpec(f *testing.F) {
	for _, seed := range []string{"sshd[mode=aggressive]", `a[x="q, ]r", y='z'][w=1]`, "a[x=1,\n y=2]\n b", "[", "a[x=\"", "a[]]"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		for _, part := range SplitSpecs(in) {
			if part == "" || strings.TrimFunc(part, isSpace) != part {
				t.Fatalf("SplitSpecs(%q) gave %q", in, part)
			}
			_, _ = ParseSpec(part)
		}
		_, _ = ParseSpec(in)
	})
}

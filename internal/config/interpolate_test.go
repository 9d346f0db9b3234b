package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestInterpolation(t *testing.T) {
	var chain strings.Builder
	for i := 1; i <= 11; i++ {
		fmt.Fprintf(&chain, "c%d = %%(c%d)s\n", i, i+1)
	}
	chain.WriteString("c12 = end\n")
	dir := writeTree(t, map[string]string{
		"filter.d/f.conf": "[DEFAULT]\n" +
			"host = default-host\n" +
			"greeting = hello %(who)s\n" +
			"who = world\n" +
			"over = from-default\n" +
			"[Definition]\n" +
			"who = section\n" +
			"use_default = %(host)s\n" +
			"late = %(greeting)s\n" +
			"percent = 100%% %%(not)s\n" +
			"name = %(__name__)s\n" +
			"caps = %(WHO)s\n" +
			"over = from-section\n" +
			"def = %(default/over)s\n" +
			"regex = first\n" +
			"twice = conf\n" +
			"only_conf = conf\n" +
			"other = %(lt_short/x)s and %(lt_short/host)s\n" +
			"bad_caps = %(Lt_short/x)s\n" +
			"missing = %(nope)s\n" +
			"missing_sec = %(nosuch/x)s\n" +
			"loop_a = %(loop_b)s\n" +
			"loop_b = x%(loop_a)s\n" +
			"bad_pct = 5%d\n" +
			"bad_ref = %(x\n" +
			"bad_ref2 = %()s\n" +
			"multi = a\n  %(who)s\n" +
			chain.String() +
			"[lt_short]\nx = short-%(who)s\n" +
			"[Mixed]\nx = 1\n",
		"filter.d/f.d/1.conf": "[Definition]\ntwice = d1\n",
		"filter.d/f.local": "[Definition]\n" +
			"regex = %(known/regex)s second\n" +
			"twice = %(known/twice)s+local\n" +
			"k_default = %(known/host)s\n" +
			"k_none = %(known/only_conf)s\n" +
			"k_missing = %(known/nothing)s\n",
	})
	c, err := Read(dir, "filter.d/f")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		option  string
		want    string
		wantErr string
		is      error
	}{
		{option: "use_default", want: "default-host"},
		{option: "late", want: "hello section"}, // DEFAULT's value sees the section's who
		{option: "percent", want: "100% %(not)s"},
		{option: "name", want: "Definition"},
		{option: "caps", want: "section"},
		{option: "def", want: "from-default"},
		{option: "other", want: "short-section and default-host"}, // resolved in [Definition]
		{option: "multi", want: "a\nsection"},
		{option: "regex", want: "first second"},
		{option: "twice", want: "d1+local"},         // known is the value just before the last override
		{option: "k_default", want: "default-host"}, // never overridden: falls back to [DEFAULT]
		{option: "c2", want: "end"},
		{option: "c1", wantErr: `filter.d/f.conf:29: option "c1": interpolation too deep (over 10 levels): c1 -> c2`, is: ErrInterpolationLoop},
		{option: "k_none", wantErr: `reference to a missing option "known/only_conf"`, is: ErrMissingReference},
		{option: "k_missing", wantErr: `filter.d/f.local:6: option "k_missing": reference to a missing option "known/nothing"`, is: ErrMissingReference},
		{option: "bad_caps", wantErr: `reference to a missing option "lt_short/x"`, is: ErrMissingReference},
		{option: "missing", wantErr: `filter.d/f.conf:20: option "missing": reference to a missing option "nope" (in [Definition] or [DEFAULT]): missing -> nope`, is: ErrMissingReference},
		{option: "missing_sec", wantErr: `missing option "nosuch/x"`, is: ErrMissingReference},
		{option: "loop_a", wantErr: `interpolation too deep (over 10 levels): loop_a -> loop_b -> loop_a -> loop_b`, is: ErrInterpolationLoop},
		{option: "bad_pct", wantErr: `filter.d/f.conf:24: option "bad_pct": bad interpolation: "%d": '%' must be followed by '%' or '('`, is: ErrBadInterpolation},
		{option: "bad_ref", wantErr: `bad interpolation: bad reference "%(x"`, is: ErrBadInterpolation},
		{option: "bad_ref2", wantErr: `bad reference "%()s"`, is: ErrBadInterpolation},
		{option: "nosuchoption", wantErr: `option "nosuchoption": no such option in [Definition] or [DEFAULT]`, is: ErrUnknownOption},
	}
	for _, tt := range tests {
		t.Run(tt.option, func(t *testing.T) {
			got, err := c.Get("Definition", tt.option)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %q, %v; want error containing %q", got, err, tt.wantErr)
				}
				if !errors.Is(err, tt.is) {
					t.Errorf("%v is not %v", err, tt.is)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	if got := mustGet(t, c, "DEFAULT", "greeting"); got != "hello world" {
		t.Errorf("DEFAULT greeting = %q", got)
	}
	if got := mustGet(t, c, "lt_short", "x"); got != "short-world" {
		t.Errorf("lt_short x = %q", got)
	}
	if _, err := c.Get("Nope", "x"); !errors.Is(err, ErrUnknownSection) {
		t.Errorf("unknown section: %v", err)
	}
}

func TestSection(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"jail.conf":  "[DEFAULT]\nbantime = 10m\nport = 0:65535\naction = ban[port=%(port)s, name=%(__name__)s]\n[sshd]\nport = ssh\nenabled = false\n",
		"jail.local": "[sshd]\nenabled = true\n",
	})
	c, err := Read(dir, "jail")
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Section("sshd")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range s.Options {
		got = append(got, fmt.Sprintf("%s=%s@%s", o.Name, o.Value, o.Pos))
	}
	want := "port=ssh@jail.conf:6 enabled=true@jail.local:2 bantime=10m@jail.conf:2 action=ban[port=ssh, name=sshd]@jail.conf:4"
	if strings.Join(got, " ") != want {
		t.Errorf("got  %s\nwant %s", strings.Join(got, " "), want)
	}
	if o, ok := s.Option("ACTION"); !ok || o.Value != "ban[port=ssh, name=sshd]" {
		t.Errorf("Option(ACTION) = %v, %v", o, ok)
	}
	if _, err := c.Section("nope"); !errors.Is(err, ErrUnknownSection) {
		t.Errorf("unknown section: %v", err)
	}
}

func TestInterpolationBlowUp(t *testing.T) {
	var in strings.Builder
	in.WriteString("[A]\n")
	for i := 0; i < 9; i++ {
		fmt.Fprintf(&in, "a%d = %s\n", i, strings.Repeat(fmt.Sprintf("%%(a%d)s", i+1), 10))
	}
	in.WriteString("a9 = 0123456789\n")
	f, err := Parse(strings.NewReader(in.String()), "laughs.conf")
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewConfig(f).Get("A", "a0")
	if !errors.Is(err, ErrResolvedTooLarge) || !strings.HasPrefix(err.Error(), `laughs.conf:2: option "a0": resolved value too large`) {
		t.Fatalf("got %v, want ErrResolvedTooLarge at laughs.conf:2", err)
	}
}

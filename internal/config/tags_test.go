package config

import (
	"strings"
	"testing"
)

func TestSubstituteTags(t *testing.T) {
	tests := []struct {
		name    string
		in      [][2]string
		opts    SubstituteOptions
		want    map[string]string
		wantErr string
	}{
		{name: "plain", in: [][2]string{{"a", "3"}, {"b", "<a>_3"}}, want: map[string]string{"a": "3", "b": "3_3"}},
		{name: "nested name", in: [][2]string{{"mode", "aggressive"}, {"re-aggressive", "X"}, {"failregex", "A <re-<mode>> B"}},
			want: map[string]string{"failregex": "A X B"}},
		{name: "chain", in: [][2]string{{"c", "<b>!"}, {"b", "<a>?"}, {"a", "x"}}, want: map[string]string{"c": "x?!"}},
		{name: "unknown kept", in: [][2]string{{"cmd", "ban <ip> from <HOST> <STDIN>"}, {"ip", "1.2.3.4"}},
			want: map[string]string{"cmd": "ban 1.2.3.4 from <HOST> <STDIN>"}},
		{name: "lookup", in: [][2]string{{"a", "<extra>"}}, opts: SubstituteOptions{Lookup: func(n string) (string, bool) { return "L:" + n, n == "extra" }},
			want: map[string]string{"a": "L:extra"}},
		{name: "conditional", in: [][2]string{{"t", "<bt>"}, {"bt", "v4"}, {"bt?family=inet6", "v6"}}, opts: SubstituteOptions{Conditional: "family=inet6"},
			want: map[string]string{"t": "v6"}},
		{name: "ignored", in: [][2]string{{"t", "<bt>"}, {"bt", "v4"}}, opts: SubstituteOptions{Ignore: []string{"bt"}}, want: map[string]string{"t": "<bt>"}},
		{name: "self", in: [][2]string{{"a", "x<a>"}}, wantErr: "refers to itself"},
		{name: "loop", in: [][2]string{{"a", "<b>"}, {"b", "<a>"}}, wantErr: "refers to itself"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := NewTags()
			for _, kv := range tc.in {
				in.Set(kv[0], kv[1])
			}
			before := in.Clone()
			out, err := SubstituteTags(in, tc.opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.want {
				if got, _ := out.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			for _, k := range before.Names() {
				a, _ := before.Get(k)
				b, _ := in.Get(k)
				if a != b {
					t.Errorf("input %s changed", k)
				}
			}
		})
	}
}

func TestReadDefinition(t *testing.T) {
	const common = "[DEFAULT]\n_daemon = \\S*\nlogtype = file\n__prefix_line = <lt_<logtype>/x>\nlt_file/x = F\nlt_journal/x = J\n"
	const filter = `[INCLUDES]
before = common.conf
[Definition]
_daemon = sshd
prefregex = ^%(_daemon)s <F-CONTENT>.+</F-CONTENT>$
cmn = ^Failed for <F-USER>\S+</F-USER> from <HOST>$
mdre-normal =
mdre-aggressive = ^Bad from <HOST>$
failregex = %(cmn)s
            <mdre-<mode>>
            ^<extra>$
mode = normal
[Init]
extra = init-value
`
	dir := writeTree(t, map[string]string{"filter.d/common.conf": common, "filter.d/f.conf": filter})
	cfg, err := Read(dir, "filter.d/f")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		params map[string]string
		want   map[string]string
	}{
		{nil, map[string]string{"failregex": "^Failed for <F-USER>\\S+</F-USER> from <HOST>$\n\n^init-value$", "known/extra": "init-value", "prefregex": "^sshd <F-CONTENT>.+</F-CONTENT>$"}},
		{map[string]string{"mode": "aggressive", "extra": "p"}, map[string]string{"failregex": "^Failed for <F-USER>\\S+</F-USER> from <HOST>$\n^Bad from <HOST>$\n^p$", "known/extra": "init-value"}},
		{map[string]string{"_daemon": "dropbear"}, map[string]string{"prefregex": "^dropbear <F-CONTENT>.+</F-CONTENT>$"}},
	}
	for _, tc := range tests {
		d, err := ReadDefinition(cfg, "filter f", []string{"prefregex", "failregex", "mode"}, tc.params)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range tc.want {
			if got, _ := d.Get(k); got != v {
				t.Errorf("params %v: %s = %q, want %q", tc.params, k, got, v)
			}
		}
	}
}

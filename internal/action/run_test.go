package action

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestPrepare(t *testing.T) {
	tests := []struct {
		name    string
		command string
		values  map[string]string
		fields  map[string]string
		want    Script
	}{
		{"plain values go in as text", "ban <ip> for <bantime>", map[string]string{"ip": "192.0.2.1", "bantime": "600"}, nil,
			Script{Text: "ban 192.0.2.1 for 600"}},
		{"unknown tags stay", "x <nosuch> <ip>", map[string]string{"ip": "::1"}, nil, Script{Text: "x <nosuch> ::1"}},
		{"br and sp", "a<br>b<sp>c", nil, nil, Script{Text: "a\nb c"}},
		{"a value defines br", "a<br>", map[string]string{"br": "X"}, nil, Script{Text: "aX"}},
		{"field tags", "user <F-USER> id <F-ID> port <F-PORT> none <F-NONE>.",
			map[string]string{}, map[string]string{"user": "root", "fid": "42", "fport": "22"},
			Script{Text: "user root id 42 port 22 none ."}},
		{"unsafe field becomes an argument", "echo <F-USER>", nil, map[string]string{"user": "$(touch /tmp/pwned);'\""},
			Script{Text: "f2bV_F_user=$1 \necho $f2bV_F_user", Args: []string{"$(touch /tmp/pwned);'\""}}},
		{"unsafe values, each once", "m=<matches> again <matches> ip <ip>", map[string]string{"matches": "a;b\nc", "ip": "192.0.2.1"}, nil,
			Script{Text: "f2bV_matches=$1 \nm=$f2bV_matches again $f2bV_matches ip 192.0.2.1", Args: []string{"a;b\nc"}}},
		{"tag names become variable names", "<ipjail-matches>", map[string]string{"ipjail-matches": "`x`"}, nil,
			Script{Text: "f2bV_ipjail_matches=$1 \n$f2bV_ipjail_matches", Args: []string{"`x`"}}},
		{"a value's tags are not substituted again", "<a>", map[string]string{"a": "<b>", "b": "no"}, nil,
			Script{Text: "f2bV_a=$1 \n$f2bV_a", Args: []string{"<b>"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Prepare(tt.command, tt.values, tt.fields)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Prepare = %#v, want %#v", got, tt.want)
			}
		})
	}
}

// TestRunInjection bans with values taken from log lines that try to run
// code, through a real shell: the command writes them to a file, and
// they must arrive as text while nothing else runs.
func TestRunInjection(t *testing.T) {
	dir := t.TempDir()
	pwned := filepath.Join(dir, "pwned")
	payloads := []string{
		`$(touch /tmp/pwned);'"`, // the F-USER
		"$(touch " + pwned + ");'\"",
		"`touch " + pwned + "`",
		"x; touch " + pwned,
		"x' ; touch " + pwned + " ; '",
		"x\" ; touch " + pwned + " ; \"",
		"x\ntouch " + pwned,
		"x | touch " + pwned,
		"x && touch " + pwned,
		"* ? [a] {b,c} ~ # <ip>",
	}
	_, preexisting := os.Stat("/tmp/pwned")
	for _, p := range payloads {
		out := filepath.Join(dir, "out")
		cmd := `printf '%s\n' "<F-USER>" > ` + out + `; printf 'ip=%s\n' <ip> >> ` + out
		s := Prepare(cmd, map[string]string{"ip": "192.0.2.1"}, map[string]string{"user": p})
		if _, err := Run(context.Background(), s, 10*time.Second); err != nil {
			t.Fatalf("%q: %v", p, err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if want := p + "\nip=192.0.2.1\n"; string(b) != want {
			t.Errorf("%q: wrote %q, want %q", p, b, want)
		}
		if _, err := os.Stat(pwned); err == nil {
			t.Fatalf("%q ran code", p)
		}
	}
	if preexisting != nil {
		if _, err := os.Stat("/tmp/pwned"); err == nil {
			t.Fatal("/tmp/pwned was created")
		}
	}
}

func TestRunFailures(t *testing.T) {
	tests := []struct {
		name    string
		command string
		timeout time.Duration
		check   func(error) bool
	}{
		{"exit status", "echo oops >&2; exit 3", 0, func(err error) bool {
			var ee *ExitError
			return errors.As(err, &ee) && ee.Code == 3 && ee.Stderr == "oops"
		}},
		{"timeout kills the group", "sleep 30 & sleep 30; wait", 200 * time.Millisecond, func(err error) bool {
			return errors.Is(err, context.DeadlineExceeded)
		}},
		{"success", "true", 0, func(err error) bool { return err == nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := Run(context.Background(), Script{Text: tt.command}, tt.timeout)
			if !tt.check(err) {
				t.Fatalf("error %v", err)
			}
			if time.Since(start) > 10*time.Second {
				t.Fatalf("Run returned after %v", time.Since(start))
			}
		})
	}
	if out, err := Run(context.Background(), Script{Text: `printf '%s|%s|%s' "$0" "$1" "$2"`, Args: []string{"a b", "c"}}, 0); err != nil || out != "sh|a b|c" {
		t.Fatalf("arguments: %q, %v", out, err)
	}
	if !strings.Contains((&ExitError{Code: 1}).Error(), "exit status 1") {
		t.Fatal("ExitError text")
	}
}

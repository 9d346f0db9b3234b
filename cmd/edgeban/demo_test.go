package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

// TestDemoUsage checks the demo's flags: a mistake is a usage error,
// found before either part starts.
func TestDemoUsage(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-part", "firewall"}, `-part "firewall": use all, daemon or cloudflare`},
		{[]string{"-keep", "5000"}, "-keep is larger than a wave"},
		{[]string{"now"}, "demo takes no arguments"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			c := &cli{stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }}
			err := c.main(context.Background(), append([]string{"demo"}, tt.args...))
			var ue usageError
			if !errors.As(err, &ue) || err.Error() != tt.want {
				t.Fatalf("error %v, want the usage error %q", err, tt.want)
			}
			if out.Len() != 0 {
				t.Errorf("a part ran:\n%s", out.String())
			}
		})
	}
}

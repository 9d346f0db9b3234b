// Package sharedtest locates the project's read-only reference data, the
// shared/ folder beside the checkout (fail2ban's configuration and sample
// logs, Cloudflare's OpenAPI schema), for tests. Tests read it in place and
// never copy it into the repository.
package sharedtest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Path returns ../shared/<rel> beside the module root, or skips the test
// with a message saying what is missing.
func Path(tb testing.TB, rel string) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Skip("needs the module root (go.mod) above the test to locate ../shared")
		}
		dir = parent
	}
	p := filepath.Join(dir, "..", "shared", filepath.FromSlash(rel))
	if _, err := os.Stat(p); err != nil {
		tb.Skipf("needs the reference data at %s beside the checkout: %v", p, err)
	}
	return p
}

// GoldenConfig returns a directory holding fail2ban's stock configuration
// (each entry linked, not copied) with the golden dump's jail.local, which
// enables every jail: the configuration fail2ban-client -d read to make
// fail2ban/golden/fail2ban-client-d.all-jails.jsonl.
func GoldenConfig(tb testing.TB) string {
	tb.Helper()
	stock := Path(tb, "fail2ban/config")
	local, err := os.ReadFile(filepath.Join(Path(tb, "fail2ban/golden"), "jail.local"))
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	entries, err := os.ReadDir(stock)
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range entries {
		if err := os.Symlink(filepath.Join(stock, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			tb.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "jail.local"), local, 0o644); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// GoldenCommands returns the command stream fail2ban-client -d printed
// for GoldenConfig, one decoded JSON array per command
// (["set", "sshd", "maxretry", 5], ...).
func GoldenCommands(tb testing.TB) [][]any {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(Path(tb, "fail2ban/golden"), "fail2ban-client-d.all-jails.jsonl"))
	if err != nil {
		tb.Fatal(err)
	}
	var out [][]any
	for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var cmd []any
		if err := json.Unmarshal([]byte(line), &cmd); err != nil || len(cmd) == 0 {
			tb.Fatalf("golden command %d: %v", i+1, err)
		}
		out = append(out, cmd)
	}
	return out
}

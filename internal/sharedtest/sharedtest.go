// Package sharedtest locates the project's read-only reference data, the
// shared/ folder beside the checkout (fail2ban's configuration and sample
// logs, Cloudflare's OpenAPI schema), for tests. Tests read it in place and
// never copy it into the repository.
package sharedtest

import (
	"os"
	"path/filepath"
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

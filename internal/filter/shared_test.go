package filter

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// sharedDir returns ../shared/<sub> beside the module root, or skips.
func sharedDir(tb testing.TB, sub string) string {
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
			tb.Skip("needs the module root (go.mod) to locate ../shared")
		}
		dir = parent
	}
	p := filepath.Join(dir, "..", "shared", sub)
	if _, err := os.Stat(p); err != nil {
		tb.Skipf("needs fail2ban reference data at %s: %v", p, err)
	}
	return p
}

// compatEntry is one regex of filter-regex-go-compat.json.
type compatEntry struct {
	Filter      string            `json:"filter"`
	Options     map[string]string `json:"options"`
	Kind        string            `json:"kind"`
	Index       int               `json:"index"`
	Source      string            `json:"source"`
	Expanded    string            `json:"expanded"`
	PyOnlyAfter []string          `json:"python_only_features_after_ipv6_fix"`
}

func loadCompat(tb testing.TB) []compatEntry {
	tb.Helper()
	p := filepath.Join(sharedDir(tb, "fail2ban/analysis"), "filter-regex-go-compat.json")
	b, err := os.ReadFile(p)
	if err != nil {
		tb.Fatalf("read %s: %v", p, err)
	}
	var es []compatEntry
	if err := json.Unmarshal(b, &es); err != nil {
		tb.Fatalf("decode %s: %v", p, err)
	}
	return es
}

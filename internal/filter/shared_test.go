package filter

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgeban/edgeban/internal/sharedtest"
)

// sharedDir returns ../shared/<sub> beside the module root, or skips.
func sharedDir(tb testing.TB, sub string) string {
	tb.Helper()
	return sharedtest.Path(tb, sub)
}

// sharedDirNoSkip returns ../shared/<sub> beside the module root, or an
// error when it is missing, for tests that only use it for extra output.
func sharedDirNoSkip(sub string) (string, error) {
	p := filepath.Join("..", "..", "..", "shared", filepath.FromSlash(sub))
	if _, err := os.Stat(p); err != nil {
		return "", err
	}
	return p, nil
}

// sharedDirOr returns ../shared/<sub>, or "" when it is missing.
func sharedDirOr(tb testing.TB, sub string) string {
	p, err := sharedDirNoSkip(sub)
	if err != nil {
		tb.Logf("no %s: %v", sub, err)
		return ""
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

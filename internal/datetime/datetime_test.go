package datetime

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgeban/edgeban/internal/sharedtest"
)

// sharedDir returns ../shared/fail2ban beside the module root, or skips.
func sharedDir(tb testing.TB) string {
	tb.Helper()
	return sharedtest.Path(tb, "fail2ban")
}

// paris returns Europe/Paris, the zone of fail2ban's test suite.
func paris(tb testing.TB) *time.Location {
	tb.Helper()
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		tb.Skipf("needs the Europe/Paris zone: %v", err)
	}
	return loc
}

// testOptions are fail2ban's test conditions: Europe/Paris and "now" at
// 1124013600 (2005-08-14 12:00 CEST).
func testOptions(tb testing.TB) Options {
	loc := paris(tb)
	return Options{Location: loc, Now: func() time.Time { return time.Unix(1124013600, 0).In(loc) }}
}

func TestDefaultTemplatesMatchFail2ban(t *testing.T) {
	shared := sharedDir(t)
	raw, err := os.ReadFile(filepath.Join(shared, "analysis", "default-date-templates.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want []struct {
		Order  int     `json:"order"`
		Name   string  `json:"name"`
		Regex  string  `json:"regex"`
		Weight float64 `json:"weight"`
		Flags  int     `json:"flags"`
	}
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	// The JSON was generated in 2026: %ExY is 20[012]\d then.
	got := defaultTemplates(time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
	if len(got) != len(want) {
		t.Fatalf("got %d templates, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.name != w.Name {
			t.Errorf("#%d name = %q, want %q", i, g.name, w.Name)
		}
		if g.pyRegex != w.Regex {
			t.Errorf("#%d regex =\n %s\nwant\n %s", i, g.pyRegex, w.Regex)
		}
		if g.weight != w.Weight || g.flags != w.Flags {
			t.Errorf("#%d weight, flags = %v, %d, want %v, %d", i, g.weight, g.flags, w.Weight, w.Flags)
		}
	}
}

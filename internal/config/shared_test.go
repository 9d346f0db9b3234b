package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/edgeban/edgeban/internal/sharedtest"
)

// sharedDir returns ../shared/fail2ban/<sub> beside the module root, or
// skips the test when it is missing.
func sharedDir(tb testing.TB, sub string) string {
	tb.Helper()
	return sharedtest.Path(tb, "fail2ban/"+sub)
}

// stockConfigs lists the configurations of fail2ban's stock config dir as
// Read names them: filter.d/x, action.d/x, jail, fail2ban, paths-x.
func stockConfigs(tb testing.TB, dir string) []string {
	tb.Helper()
	var names []string
	for _, pat := range []string{"filter.d/*.conf", "action.d/*.conf", "*.conf"} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			tb.Fatal(err)
		}
		for _, p := range m {
			rel, _ := filepath.Rel(dir, p)
			names = append(names, strings.TrimSuffix(filepath.ToSlash(rel), ".conf"))
		}
	}
	sort.Strings(names)
	return names
}

// stockExceptions are, per stock configuration, the references that do
// not resolve on their own, in fail2ban either: fail2ban resolves only the
// options a jail uses, together with the file that includes them.
var stockExceptions = map[string][]string{
	// _type is set by the selinux-*.conf filters that include it.
	"filter.d/selinux-common": {"_type"},
	// default/backend is jail.conf's [DEFAULT] backend; jail.conf includes them.
	"paths-arch":     {"default/backend"},
	"paths-common":   {"default/backend"},
	"paths-debian":   {"default/backend"},
	"paths-fedora":   {"default/backend"},
	"paths-freebsd":  {"default/backend"},
	"paths-opensuse": {"default/backend"},
	"paths-osx":      {"default/backend"},
	// For the user to set in jail.local (cfemail, blocklist_de_apikey), or
	// set by each jail (logpath: not in [DEFAULT] nor [INCLUDES]).
	"jail": {"cfemail", "blocklist_de_apikey", "logpath"},
}

func TestReadStockConfigs(t *testing.T) {
	dir := sharedDir(t, "config")
	names := stockConfigs(t, dir)
	if len(names) < 170 {
		t.Fatalf("found only %d stock configs under %s", len(names), dir)
	}
	dump := map[string]map[string]map[string]string{}
	for _, name := range names {
		c, err := Read(dir, name)
		if err != nil {
			t.Errorf("Read(%q): %v", name, err)
			continue
		}
		if name == "jail" {
			// fail2ban's jail reader adds these before resolving a jail.
			c.SetDefault("fail2ban_version", "1.1.2.dev1")
			c.SetDefault("fail2ban_confpath", dir)
		}
		dump[name] = map[string]map[string]string{}
		for _, sec := range append([]string{DefaultSection}, c.SectionNames()...) {
			dump[name][sec] = map[string]string{}
			for _, opt := range c.OptionNames(sec) {
				v, err := c.Get(sec, opt)
				if err != nil {
					if !isStockException(name, err) {
						t.Errorf("%s: Get(%q, %q): %v", name, sec, opt, err)
					}
					continue
				}
				dump[name][sec][opt] = v
				if o, _ := c.Raw(sec, opt); o.Pos.File != "<set by program>" && (o.Pos.File == "" || o.Pos.Line <= 0) {
					t.Errorf("%s [%s] %s: no position: %+v", name, sec, opt, o.Pos)
				}
			}
		}
	}
	if out := os.Getenv("EDGEBAN_CONFIG_DUMP"); out != "" {
		b, _ := json.MarshalIndent(dump, "", " ")
		if err := os.WriteFile(out, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func isStockException(name string, err error) bool {
	if !errors.Is(err, ErrMissingReference) {
		return false
	}
	for _, ref := range stockExceptions[name] {
		if strings.Contains(err.Error(), fmt.Sprintf("missing option %q", ref)) {
			return true
		}
	}
	return false
}

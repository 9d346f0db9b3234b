package filter

import (
	"fmt"
	"strings"
	"testing"

	"github.com/edgeban/edgeban/internal/config"
	"github.com/edgeban/edgeban/internal/sharedtest"
)

// TestJailFiltersGolden reads the filter of every stock jail (all
// enabled, as the golden dump was made) with the jail's backend and
// compares its prefregex, failregexes, ignoreregexes, maxlines and
// datepattern with fail2ban's own reading (fail2ban-client -d).
func TestJailFiltersGolden(t *testing.T) {
	dir := sharedtest.GoldenConfig(t)

	// What the dump sets per jail: option -> values, in order.
	want := map[string]map[string][]string{}
	backend := map[string]string{} // the backend the dump gives each jail
	for _, cmd := range sharedtest.GoldenCommands(t) {
		if cmd[0] == "add" {
			backend[cmd[1].(string)] = cmd[2].(string)
			continue
		}
		if len(cmd) < 4 || (cmd[0] != "set" && cmd[0] != "multi-set") {
			continue
		}
		jail, opt := cmd[1].(string), cmd[2].(string)
		if want[jail] == nil {
			want[jail] = map[string][]string{}
		}
		switch v := cmd[3].(type) {
		case []any:
			for _, x := range v {
				want[jail][opt] = append(want[jail][opt], fmt.Sprint(x))
			}
		default:
			want[jail][opt] = append(want[jail][opt], fmt.Sprint(v))
		}
	}

	jails, err := config.ReadJails(dir)
	if err != nil {
		t.Fatal(err)
	}
	agree, total := 0, 0
	for _, j := range config.EnabledJails(jails) {
		total++
		w := want[j.Name]
		if backend[j.Name] != j.Backend {
			t.Errorf("jail %q: backend %q, golden %q", j.Name, j.Backend, backend[j.Name])
		}
		def, err := Load(dir, j.Options["filter"], LoadOptions{Backend: j.Backend})
		if err != nil {
			t.Errorf("jail %q: %v", j.Name, err)
			continue
		}
		var diffs []string
		cmp := func(opt string, got []string) {
			if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", w[opt]) {
				diffs = append(diffs, fmt.Sprintf("%s %q, golden %q", opt, got, w[opt]))
			}
		}
		one := func(s string) []string {
			if s == "" {
				return nil
			}
			return []string{s}
		}
		cmp("prefregex", one(def.PrefRegex))
		cmp("addfailregex", def.FailRegex)
		cmp("addignoreregex", def.IgnoreRegex)
		cmp("datepattern", one(def.DatePattern))
		if def.MaxLines != 1 || w["maxlines"] != nil {
			cmp("maxlines", []string{fmt.Sprint(def.MaxLines)})
		}
		if len(diffs) > 0 {
			t.Errorf("jail %q: %s", j.Name, strings.Join(diffs, "; "))
			continue
		}
		agree++
	}
	t.Logf("filter settings agree with fail2ban for %d of %d jails", agree, total)
}

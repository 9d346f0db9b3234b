package action

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/edgeban/edgeban/internal/config"
	"github.com/edgeban/edgeban/internal/sharedtest"
)

// goldenActions reads the golden fail2ban-client -d stream: per jail, its
// actions' names in order and each action's options.
func goldenActions(t *testing.T) (names map[string][]string, opts map[string]map[string]map[string]string) {
	t.Helper()
	names = map[string][]string{}
	opts = map[string]map[string]map[string]string{}
	for _, cmd := range sharedtest.GoldenCommands(t) {
		switch {
		case cmd[0] == "set" && len(cmd) == 4 && cmd[2] == "addaction":
			j := cmd[1].(string)
			names[j] = append(names[j], cmd[3].(string))
		case cmd[0] == "multi-set" && cmd[2] == "action":
			j, a := cmd[1].(string), cmd[3].(string)
			if opts[j] == nil {
				opts[j] = map[string]map[string]string{}
			}
			m := map[string]string{}
			for _, kv := range cmd[4].([]any) {
				p := kv.([]any)
				m[p[0].(string)] = fmt.Sprint(p[1])
			}
			opts[j][a] = m
		}
	}
	return names, opts
}

// TestActionsGolden reads every action of every stock jail (all enabled,
// as the golden dump was made) and compares its name and its options
// with fail2ban's own reading (fail2ban-client -d): the commands with
// their tags substituted as far as fail2ban substitutes them before a
// ban, the parameters, and the [Init] options.
func TestActionsGolden(t *testing.T) {
	dir := sharedtest.GoldenConfig(t)
	wantNames, wantOpts := goldenActions(t)

	jails, err := config.ReadJails(dir)
	if err != nil {
		t.Fatal(err)
	}
	agree, total, actions := 0, 0, 0
	for _, j := range config.EnabledJails(jails) {
		total++
		var names, diffs []string
		for _, spec := range j.Actions {
			actions++
			d, err := Load(dir, j.Name, spec)
			if err != nil {
				diffs = append(diffs, err.Error())
				continue
			}
			names = append(names, d.Name)
			want := wantOpts[j.Name][d.Name]
			got := map[string]string{}
			for k, v := range d.Commands {
				got[k] = v
			}
			for k, v := range d.Params {
				got[k] = v
			}
			keys := map[string]bool{}
			for k := range want {
				keys[k] = true
			}
			for k := range got {
				keys[k] = true
			}
			for _, k := range slices.Sorted(func(yield func(string) bool) {
				for k := range keys {
					if !yield(k) {
						return
					}
				}
			}) {
				w, wok := want[k]
				g, gok := got[k]
				if w != g || wok != gok {
					diffs = append(diffs, fmt.Sprintf("action %s option %s: %q (%v), golden %q (%v)", d.Name, k, g, gok, w, wok))
				}
			}
		}
		if fmt.Sprint(names) != fmt.Sprint(wantNames[j.Name]) {
			diffs = append(diffs, fmt.Sprintf("actions %v, golden %v", names, wantNames[j.Name]))
		}
		if len(diffs) > 0 {
			t.Errorf("jail %q:\n  %s", j.Name, strings.Join(diffs, "\n  "))
			continue
		}
		agree++
	}
	t.Logf("actions agree with fail2ban for %d of %d jails (%d actions)", agree, total, actions)
}

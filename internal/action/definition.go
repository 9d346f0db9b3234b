package action

import (
	"fmt"
	"slices"
	"strings"

	"github.com/edgeban/edgeban/internal/config"
)

// Commands are the options of an action definition that fail2ban reads
// from its [Definition] section.
var Commands = []string{
	"actionstart", "actionstart_on_demand", "actionstop", "actionflush", "actionreload",
	"actioncheck", "actionrepair", "actionrepair_on_unban", "actionban", "actionprolong",
	"actionreban", "actionunban", "norestored",
}

// Definition is an action of one jail, read from action.d.
type Definition struct {
	// Name is the action's name in its jail: its actname parameter, or
	// its file name, suffixed when its name parameter is not the jail's.
	Name string
	// File is the action.d file's name ("nftables").
	File string
	// Commands holds the commands of Commands that the file sets, with
	// the <tag> references that can be resolved before a ban replaced
	// (<ip>, <F-USER>... are left for the ban, and so are options with a
	// ?family= variant).
	Commands map[string]string
	// Params holds the [Init] options and the jail's parameters (which
	// win), name and actname included, as written: their tags are
	// replaced when a command uses them.
	Params map[string]string
	// Tags is everything resolved together, for running the commands.
	Tags *config.Tags
}

// Load reads action spec (as in a jail's action option) from
// dir/action.d for jail, as fail2ban's action reader does: the jail's
// name is the name parameter unless spec sets one, and the action's name
// is actname, or the file name suffixed to tell two uses of one file in a
// jail apart.
func Load(dir, jail string, spec config.Spec) (*Definition, error) {
	if strings.HasSuffix(spec.Name, ".py") {
		return nil, fmt.Errorf("jail %q: action %q: Python actions are not supported", jail, spec.Name)
	}
	params, actname := namedParams(jail, spec)
	cfg, err := config.Read(dir, "action.d/"+spec.Name)
	if err != nil {
		return nil, fmt.Errorf("jail %q: action %q: %w", jail, spec.Name, err)
	}
	d, err := config.ReadDefinition(cfg, "action "+spec.Name, append(slices.Clone(Commands), "timeout"), params)
	if err != nil {
		return nil, fmt.Errorf("jail %q: %w", jail, err)
	}
	out := &Definition{Name: actname, File: spec.Name, Commands: map[string]string{}, Params: params, Tags: d.Options}
	for _, c := range Commands {
		if v, ok := d.Options.Get(c); ok {
			out.Commands[c] = v
		}
	}
	for _, n := range d.Options.Names() {
		opt, ok := strings.CutPrefix(n, "known/")
		if _, isParam := params[opt]; !ok || isParam {
			continue
		}
		v, err := cfg.Get(config.InitSection, opt)
		if err != nil {
			return nil, fmt.Errorf("jail %q: action %q: %w", jail, spec.Name, err)
		}
		params[opt] = v
	}
	return out, nil
}

// namedParams returns the parameters of spec in jail with its name and
// actname parameters set as fail2ban sets them: name is the jail's name
// unless spec sets one, and actname is the file name, suffixed to tell
// two uses of one file in a jail apart, unless spec sets one.
func namedParams(jail string, spec config.Spec) (params map[string]string, actname string) {
	params = map[string]string{}
	for _, o := range spec.Options {
		params[o.Key] = o.Value
	}
	n, ok := params["name"]
	if !ok {
		n = jail
		params["name"] = n
	}
	actname, ok = params["actname"]
	if !ok {
		actname = spec.Name
		if n != jail {
			if rest, ok := strings.CutPrefix(n, jail); ok {
				actname += rest
			} else {
				actname += "-" + n
			}
		}
		params["actname"] = actname
	}
	return params, actname
}

// nativeWanted reports whether spec, whose name edgeban runs natively
// when known, is to run natively: unless its native option says false.
func nativeWanted(spec config.Spec, known bool) (bool, error) {
	if !known {
		return false, nil
	}
	v, ok := spec.Option("native")
	if !ok {
		return true, nil
	}
	native, err := config.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("action %s: native: %w", spec.Name, err)
	}
	return native, nil
}

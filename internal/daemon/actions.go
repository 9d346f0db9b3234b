package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/edgeban/edgeban/internal/action"
	"github.com/edgeban/edgeban/internal/cloudflare/delivery"
	"github.com/edgeban/edgeban/internal/config"
	"github.com/edgeban/edgeban/internal/firewall"
	"github.com/edgeban/edgeban/internal/jail"
)

// buildActions builds the actions of jc, in order: each natively when
// edgeban runs that action natively, else from its action.d file as
// shell commands. It records what each was built from in what.
func buildActions(dir string, jc *config.Jail, opts Options, what *builtFrom) ([]jail.Action, error) {
	var actions []jail.Action
	for _, spec := range jc.Actions {
		a, from, ok, err := nativeAction(dir, jc, spec, opts)
		if err != nil {
			return nil, fmt.Errorf("%s: jail %q: option \"action\": %w", jc.Pos["action"], jc.Name, err)
		}
		if ok {
			actions = append(actions, a)
			what.Actions = append(what.Actions, from)
			continue
		}
		ad, err := action.Load(dir, jc.Name, spec)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", jc.Pos["action"], err)
		}
		sh, err := action.NewShell(ad)
		if err != nil {
			return nil, fmt.Errorf("jail %q: %w", jc.Name, err)
		}
		actions = append(actions, sh)
		what.Actions = append(what.Actions, actionFrom{Name: ad.Name, File: ad.File, Commands: ad.Commands, Params: ad.Params})
	}
	for _, a := range actions {
		if _, ok := a.(*action.Cloudflare); ok {
			what.Cloudflare = true
		}
	}
	return actions, nil
}

// nativeAction builds the action of spec when edgeban runs it natively
// (ok), and says what it was built from. Each native family of actions
// has its case here.
func nativeAction(dir string, jc *config.Jail, spec config.Spec, opts Options) (a jail.Action, from actionFrom, ok bool, err error) {
	from = actionFrom{File: spec.Name, Params: specParams(spec)}
	if native, err := action.IsFirewall(spec); err != nil || native {
		if err != nil {
			return nil, from, false, err
		}
		fw, err := action.NewFirewall(dir, jc.Name, spec, opts.Firewall)
		if err != nil {
			return nil, from, false, err
		}
		opts.Log.Info("action runs natively on the kernel's packet filter (no shell, one netlink message or command per ban); native=false runs the action.d file instead",
			"jail", jc.Name, "action", spec.Name)
		// What the rules are built from, for the reload's fingerprint:
		// the action.d file's [Init] may have changed.
		from.Name, from.Commands = fw.Name(), map[string]string{"firewall": fmt.Sprintf("%+v", fw.Config())}
		return fw, from, true, nil
	}
	if native, err := action.IsCloudflare(spec); err != nil || native {
		if err != nil {
			return nil, from, false, err
		}
		cf, err := action.NewCloudflare(jc.Name, spec, action.CloudflareEnv{Outbox: delivery.NewOutbox(opts.Store),
			Getenv: opts.Cloudflare.Getenv, Credentials: opts.Cloudflare.Credentials})
		if err != nil {
			return nil, from, false, err
		}
		opts.Log.Info("action runs natively on edgeban's Cloudflare engine (no shell, no curl); native=false runs the action.d file instead",
			"jail", jc.Name, "action", spec.Name)
		from.Name = cf.Name()
		return cf, from, true, nil
	}
	if native, err := action.IsMail(spec); err != nil || native {
		if err != nil {
			return nil, from, false, err
		}
		// The action's file, when action.d has it, gives the parameters'
		// defaults and the user's overrides (sendmail-common.local...).
		def, err := action.Load(dir, jc.Name, spec)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, from, false, err
		}
		if def != nil {
			from = actionFrom{File: def.File, Commands: def.Commands, Params: def.Params}
		}
		m, err := action.NewMail(jc.Name, spec, def, action.MailEnv{Hostname: opts.Hostname, Log: opts.Log.With("jail", jc.Name)})
		if err != nil {
			return nil, from, false, err
		}
		opts.Log.Info("action runs natively: edgeban writes and sends the mail, with its own whois client (no shell); native=false runs the action.d file instead",
			"jail", jc.Name, "action", spec.Name)
		from.Name = m.Name()
		return m, from, true, nil
	}
	return nil, from, false, nil
}

// specParams are the options of an action spec, as a map.
func specParams(spec config.Spec) map[string]string {
	params := map[string]string{}
	for _, o := range spec.Options {
		params[o.Key] = o.Value
	}
	return params
}

// CheckActions builds the actions of jc as the daemon would, without
// starting any: their files, parameters and credentials' settings are
// read and checked, and nothing is banned, sent or changed. It is what
// edgeban check runs.
func CheckActions(dir string, jc *config.Jail, opts Options) ([]jail.Action, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Firewall == nil {
		opts.Firewall = firewall.NewHost("")
	}
	return buildActions(dir, jc, opts, &builtFrom{})
}

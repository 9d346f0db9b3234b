package action

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/edgeban/edgeban/internal/cloudflare/delivery"
	"github.com/edgeban/edgeban/internal/config"
)

// cloudflareActions are the action names that edgeban runs natively on its
// Cloudflare engine, with what each of their shell files sets by default:
// the scope their URL names and the note their rules carry
// (shared/cloudflare/API-NOTES.md §7). A jail's parameters override them.
var cloudflareActions = map[string]map[string]string{
	// The seed article's file: user level, global key, one fixed note.
	"cloudflare-restv4": {"cfscope": delivery.ScopeUser, "cfnotes": delivery.DefaultNotes},
	// fail2ban's cloudflare.conf: user level, global key.
	"cloudflare": {"cfscope": delivery.ScopeUser, "cfnotes": "Fail2Ban <name>"},
	// fail2ban's cloudflare-token.conf: zone level, API token; its note
	// parameter is "notes".
	"cloudflare-token": {"cfscope": delivery.ScopeZone, "cfnotes": "Fail2Ban <name>", "cfmode": "block"},
	// Our own action file: every parameter of edgeban cloudflare.
	"edgeban-cloudflare": {"cfnotes": delivery.DefaultNotes},
}

// IsCloudflare reports whether spec names one of the Cloudflare actions
// that edgeban runs natively, and is not told to run the shell file
// instead (native=false).
func IsCloudflare(spec config.Spec) (bool, error) {
	_, ok := cloudflareActions[spec.Name]
	return nativeWanted(spec, ok)
}

// CloudflareEnv is what the native Cloudflare actions share in a daemon.
type CloudflareEnv struct {
	Outbox *delivery.Outbox
	// Wake tells the daemon's worker that the outbox changed (nil: the
	// worker finds it on its own).
	Wake func()
	// Getenv reads the environment (CLOUDFLARE_API_TOKEN...); nil: none.
	Getenv func(string) string
	// Credentials is the credentials file with [profile] sections; "" for
	// none.
	Credentials string
}

// Cloudflare is a native Cloudflare action of one jail. A ban or unban is
// written to the daemon's durable outbox and returns; the daemon's worker
// delivers it, so that a slow or failing API never holds up the jail, and
// nothing is lost when the daemon stops or dies. Its bans outlive the
// daemon: stopping it leaves them at Cloudflare, and a restart restores
// them without sending anything again.
type Cloudflare struct {
	name, jail string
	params     delivery.Params
	secret     string
	env        CloudflareEnv
	dest       delivery.Dest
}

// NewCloudflare builds the native action for spec in jail. The spec's
// parameters are those of the shell file it replaces: cfuser with cftoken
// (the global key), or cftoken alone (an API token), cftoken_file,
// cfprofile, cfscope, cfzone, cfaccount, cflist, cfmode, cfnotes (notes for
// cloudflare-token), cfapi (the API's base URL), cfplan, cfpolicy and
// cfcapacity. "<name>" in the note is the jail's name.
func NewCloudflare(jail string, spec config.Spec, env CloudflareEnv) (*Cloudflare, error) {
	defaults, ok := cloudflareActions[spec.Name]
	if !ok {
		return nil, fmt.Errorf("action %s: not a Cloudflare action", spec.Name)
	}
	p := map[string]string{}
	for k, v := range defaults {
		p[k] = v
	}
	for _, o := range spec.Options {
		p[o.Key] = o.Value
	}
	if v, ok := p["notes"]; ok && spec.Name == "cloudflare-token" {
		p["cfnotes"] = v
	}
	name := spec.Name
	if n := p["actname"]; n != "" {
		name = n
	}
	// <name> is the jail's name: as delivery's {jail}, so that the jails
	// banning one address at one place share one rule (its note names the
	// first of them), removed when the last one unbans. A name parameter
	// fixes it.
	jailName := "{jail}"
	if n := p["name"]; n != "" {
		jailName = n
	}
	notes := strings.ReplaceAll(p["cfnotes"], "<name>", jailName)
	params := delivery.Params{
		API: p["cfapi"], Scope: p["cfscope"], Account: p["cfaccount"], Zone: p["cfzone"],
		List: p["cflist"], Mode: p["cfmode"], Notes: notes, Policy: p["cfpolicy"], Plan: p["cfplan"],
		Email: p["cfuser"], TokenFile: p["cftoken_file"], Profile: p["cfprofile"],
		Credentials: env.Credentials, SecretStdin: true,
	}
	if v := p["cfcapacity"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("action %s: cfcapacity %q is not a number", name, v)
		}
		params.Capacity = n
	}
	if params.Profile != "" && params.Credentials == "" {
		return nil, fmt.Errorf("action %s: cfprofile %q, but no credentials file", name, params.Profile)
	}
	return &Cloudflare{name: name, jail: jail, params: params, secret: p["cftoken"], env: env}, nil
}

// Name is the action's name in its jail.
func (c *Cloudflare) Name() string { return c.name }

// Start resolves the credential and registers the destination, so that a
// wrong parameter or a missing credential stops the jail at start, naming
// the action.
func (c *Cloudflare) Start(ctx context.Context) error {
	getenv := c.env.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	spec, auth, err := c.params.Resolve(delivery.Env{Getenv: getenv, Stdin: strings.NewReader(c.secret + "\n")})
	if err != nil {
		return fmt.Errorf("action %s: %w", c.name, err)
	}
	d, err := c.env.Outbox.Register(ctx, spec, auth)
	if err != nil {
		return fmt.Errorf("action %s: %w", c.name, err)
	}
	c.dest = d
	return nil
}

// Ban records the ban in the outbox. A ban already held (a restored one)
// changes nothing and sends nothing.
func (c *Cloudflare) Ban(ctx context.Context, t Ticket) error {
	if _, err := c.env.Outbox.Ban(ctx, c.dest, c.jail, t.IP); err != nil {
		return fmt.Errorf("action %s: %w", c.name, err)
	}
	c.wake()
	return nil
}

// Unban records the unban in the outbox: the rule goes once no jail holds
// the address at this destination any more.
func (c *Cloudflare) Unban(ctx context.Context, t Ticket) error {
	if _, err := c.env.Outbox.Unban(ctx, c.dest, c.jail, t.IP); err != nil {
		return fmt.Errorf("action %s: %w", c.name, err)
	}
	c.wake()
	return nil
}

// Stop does nothing: the bans stay at Cloudflare, and in the outbox, until
// they are lifted.
func (c *Cloudflare) Stop(context.Context) error { return nil }

// Persistent says that the action's bans outlive the daemon, so that a
// ban that ended while the daemon was down must still be lifted.
func (c *Cloudflare) Persistent() bool { return true }

// Destination is where the action bans, once started.
func (c *Cloudflare) Destination() delivery.Dest { return c.dest }

func (c *Cloudflare) wake() {
	if c.env.Wake != nil {
		c.env.Wake()
	}
}

// DefaultCredentials is where the Cloudflare credentials file is looked
// for when edgeban.conf names none, if it exists.
const DefaultCredentials = "/etc/edgeban/cloudflare.credentials"

// CredentialsFile returns DefaultCredentials if the file exists, else "".
func CredentialsFile() string {
	if _, err := os.Stat(DefaultCredentials); err == nil {
		return DefaultCredentials
	}
	return ""
}

package action

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/edgeban/edgeban/internal/config"
	"github.com/edgeban/edgeban/internal/firewall"
)

// firewallKind is a family of firewall actions that edgeban runs
// natively.
type firewallKind int

const (
	kindNFTables firewallKind = iota
	kindIPSet                 // iptables with an ipset per family
	kindIPTables              // iptables with a rule per address
)

// firewallActions are the action names that edgeban runs natively on
// the kernel's packet filter, with what fail2ban's file of each type
// bans by default: a port list (multiport, or oneport for one port) or
// every port (allports). jail.conf's banaction and banaction_allports
// name them (Debian's: nftables and nftables[type=allports]).
var firewallActions = map[string]struct {
	kind firewallKind
	typ  string
}{
	"nftables":                       {kindNFTables, "multiport"},
	"nftables-multiport":             {kindNFTables, "multiport"},
	"nftables-allports":              {kindNFTables, "allports"},
	"iptables-ipset":                 {kindIPSet, "oneport"},
	"iptables-ipset-proto6":          {kindIPSet, "multiport"},
	"iptables-ipset-proto6-allports": {kindIPSet, "allports"},
	"iptables":                       {kindIPTables, "oneport"},
	"iptables-multiport":             {kindIPTables, "multiport"},
	"iptables-allports":              {kindIPTables, "allports"},
}

// Parameters of the firewall actions, as fail2ban's action.d files set
// them in [Init], for a configuration directory without those files.
const (
	nftDefaults = `[Init]
table = f2b-table
table_family = inet
chain = f2b-chain
chain_type = filter
chain_hook = input
chain_priority = -1
name = default
port = ssh
protocol = tcp
blocktype = reject
addr_set = addr-set-<name>
[Init?family=inet6]
addr_set = addr6-set-<name>
`
	iptDefaults = `[Init]
chain = INPUT
name = default
port = ssh
protocol = tcp
blocktype = REJECT --reject-with icmp-port-unreachable
returntype = RETURN
maxelem = 65536
ipmset = f2b-<name>
[Init?family=inet6]
blocktype = REJECT --reject-with icmp6-port-unreachable
ipmset = f2b-<name>6
`
)

// IsFirewall reports whether spec names one of the firewall actions
// that edgeban runs natively, and is not told to run the shell file
// instead (native=false).
func IsFirewall(spec config.Spec) (bool, error) {
	_, ok := firewallActions[spec.Name]
	return nativeWanted(spec, ok)
}

// firewallBackend is the kernel's side of a firewall action.
type firewallBackend interface {
	Start(ctx context.Context) error
	Add(ctx context.Context, elems []firewall.Element) error
	Remove(ctx context.Context, addrs []netip.Addr) error
	Sync(ctx context.Context, elems []firewall.Element) error
	Stop(ctx context.Context) error
}

// Firewall is a native firewall action of one jail: nftables through
// netlink, or iptables with ipset. A ban puts the address in the jail's
// set with the time its ban has left, so that the kernel lifts it on
// time even when the daemon is not running; an unban takes it out.
//
// A restart brings the kernel in line with the store, which holds the
// active bans: Start keeps what is in the kernel (a killed daemon's
// bans stay banned meanwhile), and Sync, given every active ban at
// once, adds the missing ones and removes those no longer active, in
// one step each with no gap (see jail's restore). Stop removes the
// jail's rules and sets, as fail2ban's actionstop does, so that a
// stopped jail bans nobody; the next start restores its bans.
type Firewall struct {
	name string
	fw   firewallBackend
	now  func() time.Time
}

// NewFirewall builds the native firewall action of spec for jail, on
// host. Its parameters are those of fail2ban's action.d file of the
// same name (port, protocol, chain, blocktype, name, table,
// table_family, chain_hook, chain_priority, addr_set for nftables;
// ipmset, returntype, maxelem for iptables; type): the file's [Init]
// values, when dir/action.d has the file, else fail2ban's defaults,
// with spec's parameters over them.
func NewFirewall(dir, jail string, spec config.Spec, host *firewall.Host) (*Firewall, error) {
	kind, ok := firewallActions[spec.Name]
	if !ok {
		return nil, fmt.Errorf("action %s: not a firewall action", spec.Name)
	}
	params, actname := namedParams(jail, spec)
	defaults := nftDefaults
	if kind.kind != kindNFTables {
		defaults = iptDefaults
	}
	p, err := readFirewallParams(dir, spec.Name, "[Definition]\ntype = "+kind.typ+"\n"+defaults, params)
	if err != nil {
		return nil, fmt.Errorf("action %s: %w", actname, err)
	}
	a := &Firewall{name: actname, now: time.Now}
	if kind.kind == kindNFTables {
		a.fw, err = newNFTables(p, host)
	} else {
		a.fw, err = newIPTables(p, host, kind.kind == kindIPSet)
	}
	if err != nil {
		return nil, fmt.Errorf("action %s: %w", actname, err)
	}
	return a, nil
}

// firewallParams are the resolved parameters of a firewall action.
type firewallParams struct {
	tags *config.Tags // resolved for inet4
	tag6 *config.Tags // resolved for inet6
}

// get returns parameter name for family f, trimmed.
func (p firewallParams) get(f firewall.Family, name string) string {
	tags := p.tags
	if f == firewall.IPv6 {
		tags = p.tag6
	}
	if v, ok := tags.Get(name + "?family=" + f.String()); ok {
		return strings.TrimSpace(v)
	}
	v, _ := tags.Get(name)
	return strings.TrimSpace(v)
}

// readFirewallParams reads the [Init] parameters and the type of
// action name from dir/action.d, or from defaults when dir has no such
// file, with params over them, resolved for each family.
func readFirewallParams(dir, name, defaults string, params map[string]string) (firewallParams, error) {
	var cfg *config.Config
	if hasActionFile(dir, name) {
		c, err := config.Read(dir, "action.d/"+name)
		if err != nil {
			return firewallParams{}, err
		}
		cfg = c
	} else {
		f, err := config.Parse(strings.NewReader(defaults), "edgeban's defaults for "+name)
		if err != nil {
			return firewallParams{}, err
		}
		cfg = config.NewConfig(f)
	}
	d, err := config.ReadDefinition(cfg, "action "+name, []string{"type"}, params)
	if err != nil {
		return firewallParams{}, err
	}
	var p firewallParams
	for _, f := range []firewall.Family{firewall.IPv4, firewall.IPv6} {
		tags, err := config.SubstituteTags(d.Options, config.SubstituteOptions{Conditional: "family=" + f.String()})
		if err != nil {
			return firewallParams{}, err
		}
		if f == firewall.IPv4 {
			p.tags = tags
		} else {
			p.tag6 = tags
		}
	}
	return p, nil
}

// hasActionFile reports whether dir/action.d has name's file.
func hasActionFile(dir, name string) bool {
	if dir == "" {
		return false
	}
	for _, ext := range []string{".conf", ".local"} {
		if _, err := os.Stat(filepath.Join(dir, "action.d", name+ext)); err == nil {
			return true
		}
	}
	return false
}

// matchParams reads the type, port and protocol parameters: what the
// rules match.
func matchParams(p firewallParams) (protos []firewall.Protocol, ports firewall.Ports, err error) {
	typ := p.get(firewall.IPv4, "type")
	protos, err = firewall.ParseProtocols(p.get(firewall.IPv4, "protocol"))
	if err != nil {
		return nil, nil, err
	}
	switch typ {
	case "allports":
		return protos, nil, nil
	case "multiport", "oneport":
		ports, err = firewall.ParsePorts(p.get(firewall.IPv4, "port"), firewall.LoadServices(firewall.ServicesFile))
		return protos, ports, err
	}
	return nil, nil, fmt.Errorf("type %q: natively, multiport, oneport or allports (native=false runs the action.d file)", typ)
}

func newNFTables(p firewallParams, host *firewall.Host) (*firewall.NFTables, error) {
	protos, ports, err := matchParams(p)
	if err != nil {
		return nil, err
	}
	prio, err := strconv.ParseInt(p.get(firewall.IPv4, "chain_priority"), 10, 32)
	if err != nil {
		return nil, fmt.Errorf("chain_priority %q: not a number", p.get(firewall.IPv4, "chain_priority"))
	}
	return firewall.NewNFTables(host, firewall.NFTConfig{
		Table: p.get(firewall.IPv4, "table"), TableFamily: p.get(firewall.IPv4, "table_family"),
		Chain: p.get(firewall.IPv4, "chain"), ChainType: p.get(firewall.IPv4, "chain_type"),
		Hook: p.get(firewall.IPv4, "chain_hook"), Priority: int32(prio),
		Sets:      map[firewall.Family]string{firewall.IPv4: p.get(firewall.IPv4, "addr_set"), firewall.IPv6: p.get(firewall.IPv6, "addr_set")},
		Protocols: protos, Ports: ports, BlockType: p.get(firewall.IPv4, "blocktype"),
	})
}

func newIPTables(p firewallParams, host *firewall.Host, ipset bool) (*firewall.IPTables, error) {
	protos, ports, err := matchParams(p)
	if err != nil {
		return nil, err
	}
	var chains []string
	for _, c := range strings.Split(p.get(firewall.IPv4, "chain"), ",") {
		if c = strings.TrimSpace(c); c != "" {
			chains = append(chains, c)
		}
	}
	maxElem := 0
	if v := p.get(firewall.IPv4, "maxelem"); v != "" {
		if maxElem, err = strconv.Atoi(v); err != nil || maxElem <= 0 {
			return nil, fmt.Errorf("maxelem %q: not a positive number", v)
		}
	}
	cfg := firewall.IPTablesConfig{Name: p.get(firewall.IPv4, "name"), IPSet: ipset, Chains: chains,
		Protocols: protos, Ports: ports, ReturnType: p.get(firewall.IPv4, "returntype"), MaxElem: maxElem,
		BlockType: map[firewall.Family]string{firewall.IPv4: p.get(firewall.IPv4, "blocktype"), firewall.IPv6: p.get(firewall.IPv6, "blocktype")}}
	if ipset {
		cfg.Sets = map[firewall.Family]string{firewall.IPv4: p.get(firewall.IPv4, "ipmset"), firewall.IPv6: p.get(firewall.IPv6, "ipmset")}
	}
	return firewall.NewIPTables(host, cfg)
}

// Name is the action's name in its jail.
func (a *Firewall) Name() string { return a.name }

// Config returns the configuration of the action's firewall: a
// firewall.NFTConfig or a firewall.IPTablesConfig.
func (a *Firewall) Config() any {
	switch fw := a.fw.(type) {
	case *firewall.NFTables:
		return fw.Config()
	case *firewall.IPTables:
		return fw.Config()
	}
	return nil
}

// Start creates the jail's table, chain, sets and rules (nftables), or
// checks that the commands are there (iptables, whose rules and sets
// come with the first ban of each family). What a killed daemon left
// in the kernel stays until Sync.
func (a *Firewall) Start(ctx context.Context) error {
	if err := a.fw.Start(ctx); err != nil {
		return fmt.Errorf("action %s: %w", a.name, err)
	}
	return nil
}

// element returns the firewall's element for ban t at now, and false
// when the ban has ended.
func element(t Ticket, now time.Time) (firewall.Element, bool, error) {
	addr, err := firewall.ParseAddr(t.IP)
	if err != nil {
		return firewall.Element{}, false, err
	}
	if t.BanTime < 0 {
		return firewall.Element{Addr: addr}, true, nil // no timeout
	}
	left := t.BanTime
	if !t.Time.IsZero() {
		left = t.Time.Add(t.BanTime).Sub(now)
	}
	return firewall.Element{Addr: addr, Timeout: left}, left > 0, nil
}

// Ban puts t's address in the jail's set with the time its ban has
// left. An address already there gets that time. A ban that has ended
// already does nothing. If the set or table is gone (removed by hand),
// the action starts again and bans once more, as fail2ban's
// actioncheck and actionrepair do.
func (a *Firewall) Ban(ctx context.Context, t Ticket) error {
	e, ok, err := element(t, a.now())
	if err != nil {
		return fmt.Errorf("action %s: ban: %w", a.name, err)
	}
	if !ok {
		return nil
	}
	err = a.fw.Add(ctx, []firewall.Element{e})
	if errors.Is(err, firewall.ErrNotFound) {
		if serr := a.fw.Start(ctx); serr != nil {
			err = fmt.Errorf("%w; then start again: %v", err, serr)
		} else {
			err = a.fw.Add(ctx, []firewall.Element{e})
		}
	}
	if err != nil {
		return fmt.Errorf("action %s: ban %s: %w", a.name, e.Addr, err)
	}
	return nil
}

// Unban takes t's address out of the jail's set. An address that is
// not there is an error, unless its ban's time is up: the kernel lifted
// it then, as it was told to.
func (a *Firewall) Unban(ctx context.Context, t Ticket) error {
	addr, err := firewall.ParseAddr(t.IP)
	if err != nil {
		return fmt.Errorf("action %s: unban: %w", a.name, err)
	}
	err = a.fw.Remove(ctx, []netip.Addr{addr})
	if errors.Is(err, firewall.ErrNotFound) && t.BanTime >= 0 && !t.Time.IsZero() && !a.now().Before(t.Time.Add(t.BanTime)) {
		return nil // timed out in the kernel
	}
	if err != nil {
		return fmt.Errorf("action %s: unban %s: %w", a.name, addr, err)
	}
	return nil
}

// Sync makes the jail's sets hold the bans of tickets, each with the
// time it has left, and nothing else: a restart's active bans, all at
// once. What a killed daemon left behind and is no longer banned goes;
// no active ban goes missing on the way. A ticket whose id is no
// address is left out: no firewall can hold it.
func (a *Firewall) Sync(ctx context.Context, tickets []Ticket) error {
	now := a.now()
	elems := make([]firewall.Element, 0, len(tickets))
	for _, t := range tickets {
		if e, ok, err := element(t, now); err == nil && ok {
			elems = append(elems, e)
		}
	}
	if err := a.fw.Sync(ctx, elems); err != nil {
		return fmt.Errorf("action %s: sync %d bans: %w", a.name, len(elems), err)
	}
	return nil
}

// Stop removes the jail's rules and sets: its bans are lifted until the
// next start restores them.
func (a *Firewall) Stop(ctx context.Context) error {
	err := a.fw.Stop(ctx)
	if c, ok := a.fw.(io.Closer); ok {
		c.Close()
	}
	if err != nil {
		return fmt.Errorf("action %s: stop: %w", a.name, err)
	}
	return nil
}

package firewall

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// IPTablesConfig says how a jail bans with iptables and ip6tables, as
// the parameters of fail2ban's iptables actions do.
type IPTablesConfig struct {
	// Name is the jail's name parameter: the jail's chain is f2b-NAME,
	// its sets f2b-NAME and f2b-NAME6.
	Name string
	// IPSet keeps the banned addresses in an ipset per family, matched
	// by one rule per chain and protocol (iptables-ipset-proto6...);
	// without it each banned address is a rule of the jail's chain
	// (iptables-multiport...).
	IPSet bool
	// Chains are the chains the jail's rules go in (chain: "INPUT").
	Chains    []string
	Protocols []Protocol // protocol: nil for all of them
	Ports     Ports      // port: nil for every port (allports)
	// BlockType is the target of a banned address's packets for each
	// family, as fail2ban's blocktype: "REJECT --reject-with
	// icmp-port-unreachable" (icmp6-port-unreachable for IPv6), "DROP".
	BlockType map[Family]string
	// ReturnType ends the jail's chain (returntype: "RETURN").
	ReturnType string
	// Sets names the ipset of each family, with IPSet (ipmset); nil
	// names them f2b-NAME and f2b-NAME6, as fail2ban does.
	Sets map[Family]string
	// MaxElem bounds an ipset (maxelem: 65536).
	MaxElem int
}

// IPTables is the iptables side of one jail's bans, for hosts without
// nftables, driving the iptables, ip6tables and ipset commands as
// fail2ban's iptables actions do, with an argument vector each.
//
// With IPSet, the addresses are in a set per family (hash:ip with
// timeouts, so that the kernel lifts a ban on time even with no daemon
// running), and a ban or an unban is one ipset command. Without it,
// each address is a rule of the jail's chain f2b-NAME, which the rules
// of the chains jump to; nothing times out. Many bans at once go
// through one ipset restore or iptables-restore.
//
// A family's rules and set are made at its first ban, as fail2ban
// starts its iptables actions per family on demand. IPTables is safe
// for concurrent use.
type IPTables struct {
	host   *Host
	cfg    IPTablesConfig
	target string            // the jail's chain, f2b-NAME
	sets   map[Family]string // the ipsets, with IPSet

	mu      sync.Mutex // orders the changes of a family's rules
	started map[Family]bool
}

// ipsetMaxTimeout is the longest timeout ipset takes, in seconds; a
// longer ban has none, and is lifted by the daemon.
const ipsetMaxTimeout = 2147483

var wordRE = regexp.MustCompile(`^[A-Za-z0-9_.:,/=+-]+$`)

// NewIPTables checks cfg and returns the jail's iptables side in host;
// nothing changes in the kernel until a ban.
func NewIPTables(host *Host, cfg IPTablesConfig) (*IPTables, error) {
	t := &IPTables{host: host, cfg: cfg, target: "f2b-" + cfg.Name, sets: map[Family]string{}, started: map[Family]bool{}}
	// iptables takes chain names of 28 characters, ipset set names of
	// 31.
	if !wordRE.MatchString(cfg.Name) || len(t.target) > 28 {
		return nil, fmt.Errorf("name %q: the chain f2b-NAME must be a name of up to 28 letters, digits and _.-", cfg.Name)
	}
	if cfg.IPSet {
		t.sets[IPv4], t.sets[IPv6] = t.target, t.target+"6"
		for f, name := range cfg.Sets {
			t.sets[f] = name
		}
		for _, name := range t.sets {
			if !wordRE.MatchString(name) || len(name) > 31 {
				return nil, fmt.Errorf("ipmset %q: an ipset name is up to 31 letters, digits and _.-", name)
			}
		}
	}
	if len(cfg.Chains) == 0 {
		return nil, errors.New("chain: no chain")
	}
	for _, c := range cfg.Chains {
		if !wordRE.MatchString(c) || len(c) > 28 {
			return nil, fmt.Errorf("chain %q: not a chain name", c)
		}
	}
	if cfg.Ports.All() {
		t.cfg.Ports = nil
	}
	if t.cfg.Ports != nil && cfg.Protocols == nil {
		return nil, errors.New("protocol all: iptables matches ports for a protocol only (tcp, udp...); use an allports action")
	}
	for _, f := range []Family{IPv4, IPv6} {
		bt := cfg.BlockType[f]
		if strings.TrimSpace(bt) == "" {
			return nil, fmt.Errorf("blocktype for %s: empty", f)
		}
		for _, w := range strings.Split(strings.TrimSpace(bt), " ") {
			if !wordRE.MatchString(w) {
				return nil, fmt.Errorf("blocktype %q: %q is not a word iptables takes here", bt, w)
			}
		}
	}
	if !cfg.IPSet && !wordRE.MatchString(cfg.ReturnType) {
		return nil, fmt.Errorf("returntype %q: not a target", cfg.ReturnType)
	}
	if cfg.MaxElem <= 0 {
		t.cfg.MaxElem = 65536
	}
	return t, nil
}

// Config returns the jail's configuration, its ports as they are
// matched (nil for every port) and its sets named.
func (t *IPTables) Config() IPTablesConfig {
	cfg := t.cfg
	if cfg.IPSet {
		cfg.Sets = t.sets
	}
	return cfg
}

// commands names the commands for family f.
func commands(f Family) (iptables, restore string) {
	if f == IPv6 {
		return "ip6tables", "ip6tables-restore"
	}
	return "iptables", "iptables-restore"
}

// Start checks that the commands the jail's bans need are there: its
// rules and sets are made at its first ban of each family.
func (t *IPTables) Start(ctx context.Context) error {
	need := []string{"iptables", "ip6tables", "iptables-restore", "ip6tables-restore"}
	if t.cfg.IPSet {
		need = append(need, "ipset")
	}
	for _, c := range need {
		if _, err := exec.LookPath(c); err != nil {
			return fmt.Errorf("iptables: %w", err)
		}
	}
	return nil
}

// blockType returns the target words of family f's bans.
func (t *IPTables) blockType(f Family) []string { return strings.Fields(t.cfg.BlockType[f]) }

// jumps returns the rules that send the jail's packets of family f to
// its target, each as the words after -I CHAIN: per protocol and per
// fifteen ports (what multiport takes).
func (t *IPTables) jumps(f Family) [][]string {
	protos := t.cfg.Protocols
	if protos == nil {
		protos = []Protocol{{Name: "all"}}
	}
	var out [][]string
	for _, p := range protos {
		groups := [][]string{nil}
		if t.cfg.Ports != nil {
			groups = portGroups(t.cfg.Ports)
		}
		for _, g := range groups {
			rule := []string{"-p", p.Name}
			rule = append(rule, g...)
			if t.cfg.IPSet {
				rule = append(rule, "-m", "set", "--match-set", t.sets[f], "src", "-j")
				rule = append(rule, t.blockType(f)...)
			} else {
				rule = append(rule, "-j", t.target)
			}
			out = append(out, rule)
		}
	}
	return out
}

// portGroups returns the port matches of ps: --dport for one port or
// range, else multiport, fifteen ports a rule (a range counts two).
func portGroups(ps Ports) [][]string {
	if len(ps) == 1 {
		return [][]string{{"--dport", ps[0].String()}}
	}
	var out [][]string
	var cur []string
	n := 0
	for _, r := range ps {
		w := 1
		if r.First != r.Last {
			w = 2
		}
		if n+w > 15 {
			out = append(out, []string{"-m", "multiport", "--dports", strings.Join(cur, ",")})
			cur, n = nil, 0
		}
		cur, n = append(cur, r.String()), n+w
	}
	return append(out, []string{"-m", "multiport", "--dports", strings.Join(cur, ",")})
}

// refersTo reports whether rule, a line of iptables -S, is one of the
// jail's: it jumps to its chain or matches its set.
func (t *IPTables) refersTo(f Family, rule []string) bool {
	for i, w := range rule {
		if w == "-j" && i+1 < len(rule) && rule[i+1] == t.target && !t.cfg.IPSet {
			return true
		}
		if w == "--match-set" && i+1 < len(rule) && rule[i+1] == t.sets[f] && t.cfg.IPSet {
			return true
		}
	}
	return false
}

// startLocked makes family f's set or chain and its rules, replacing
// the jail's rules of an earlier configuration (other ports, say).
func (t *IPTables) startLocked(ctx context.Context, f Family) error {
	ipt, _ := commands(f)
	if t.cfg.IPSet {
		args := []string{"ipset", "-exist", "create", t.sets[f], "hash:ip", "timeout", "0", "maxelem", strconv.Itoa(t.cfg.MaxElem)}
		if f == IPv6 {
			args = append(args, "family", "inet6")
		}
		if _, err := t.host.run(ctx, "", args...); err != nil {
			return fmt.Errorf("iptables: %w", err)
		}
	} else {
		if _, err := t.host.run(ctx, "", ipt, "-w", "-S", t.target); err != nil {
			if _, err := t.host.run(ctx, "", ipt, "-w", "-N", t.target); err != nil {
				return fmt.Errorf("iptables: %w", err)
			}
		}
		if _, err := t.host.run(ctx, "", ipt, "-w", "-C", t.target, "-j", t.cfg.ReturnType); err != nil {
			if _, err := t.host.run(ctx, "", ipt, "-w", "-A", t.target, "-j", t.cfg.ReturnType); err != nil {
				return fmt.Errorf("iptables: %w", err)
			}
		}
	}
	want := t.jumps(f)
	for _, chain := range t.cfg.Chains {
		have, err := t.rulesOf(ctx, f, chain)
		if err != nil {
			return err
		}
		for _, r := range have {
			if !slices.ContainsFunc(want, func(w []string) bool { return sameRule(r, w) }) {
				if _, err := t.host.run(ctx, "", append([]string{ipt, "-w", "-D", chain}, r...)...); err != nil {
					return fmt.Errorf("iptables: %w", err)
				}
			}
		}
		for _, w := range want {
			if slices.ContainsFunc(have, func(r []string) bool { return sameRule(r, w) }) {
				continue
			}
			if _, err := t.host.run(ctx, "", append([]string{ipt, "-w", "-I", chain}, w...)...); err != nil {
				return fmt.Errorf("iptables: %w", err)
			}
		}
	}
	t.started[f] = true
	return nil
}

// rulesOf returns the jail's rules in chain, as iptables -S writes
// them, without -A CHAIN.
func (t *IPTables) rulesOf(ctx context.Context, f Family, chain string) ([][]string, error) {
	ipt, _ := commands(f)
	out, err := t.host.run(ctx, "", ipt, "-w", "-S", chain)
	if err != nil {
		return nil, fmt.Errorf("iptables: %w", err)
	}
	var rules [][]string
	for _, line := range strings.Split(out, "\n") {
		w := strings.Fields(line)
		if len(w) > 2 && w[0] == "-A" && t.refersTo(f, w[2:]) {
			rules = append(rules, w[2:])
		}
	}
	return rules, nil
}

// sameRule reports whether a rule as iptables -S writes it is the rule
// w, as the jail writes it: -S spells some matches out ("-m tcp").
func sameRule(have, w []string) bool {
	strip := func(r []string) string {
		var out []string
		for i := 0; i < len(r); i++ {
			if r[i] == "-m" && i+1 < len(r) && (r[i+1] == "tcp" || r[i+1] == "udp" || r[i+1] == "sctp" || r[i+1] == "dccp" || r[i+1] == "udplite") {
				i++
				continue
			}
			out = append(out, r[i])
		}
		return strings.Join(out, " ")
	}
	return strip(have) == strip(w)
}

// ensureLocked starts family f if it has not started.
func (t *IPTables) ensureLocked(ctx context.Context, f Family) error {
	if t.started[f] {
		return nil
	}
	return t.startLocked(ctx, f)
}

// ipsetTimeout is what ipset takes for a ban with d left: whole
// seconds, rounded up, 0 for none.
func ipsetTimeout(d time.Duration) string {
	if d <= 0 {
		return "0"
	}
	s := math.Ceil(d.Seconds())
	if s > ipsetMaxTimeout {
		return "0"
	}
	return strconv.FormatInt(int64(s), 10)
}

// hostAddr is a in the form iptables -S writes a source: 1.2.3.4/32.
func hostAddr(a netip.Addr) string {
	return netip.PrefixFrom(a, a.BitLen()).String()
}

// byFamily sorts elems by their addresses' families (an IPv4-mapped
// address is IPv4).
func byFamily(elems []Element) map[Family][]Element {
	by := map[Family][]Element{}
	for _, e := range elems {
		e.Addr = e.Addr.Unmap()
		by[FamilyOf(e.Addr)] = append(by[FamilyOf(e.Addr)], e)
	}
	return by
}

// Add bans elems. With IPSet, an address already in its set gets the
// new timeout; without, an address that has its rule is left as it is.
func (t *IPTables) Add(ctx context.Context, elems []Element) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	by := byFamily(elems)
	for _, f := range []Family{IPv4, IPv6} {
		els := by[f]
		if len(els) == 0 {
			continue
		}
		if err := t.ensureLocked(ctx, f); err != nil {
			return err
		}
		if err := t.addLocked(ctx, f, els); err != nil {
			return err
		}
	}
	return nil
}

func (t *IPTables) addLocked(ctx context.Context, f Family, els []Element) error {
	ipt, restore := commands(f)
	if t.cfg.IPSet {
		if len(els) == 1 {
			_, err := t.host.run(ctx, "", "ipset", "-exist", "add", t.sets[f], els[0].Addr.String(), "timeout", ipsetTimeout(els[0].Timeout))
			if err != nil {
				return fmt.Errorf("iptables: %w", err)
			}
			return nil
		}
		var b strings.Builder
		for _, e := range els {
			fmt.Fprintf(&b, "add %s %s timeout %s\n", t.sets[f], e.Addr, ipsetTimeout(e.Timeout))
		}
		if _, err := t.host.run(ctx, b.String(), "ipset", "-exist", "restore"); err != nil {
			return fmt.Errorf("iptables: %w", err)
		}
		return nil
	}
	rule := func(a netip.Addr) []string {
		return append([]string{"-s", hostAddr(a), "-j"}, t.blockType(f)...)
	}
	if len(els) == 1 {
		r := rule(els[0].Addr)
		if _, err := t.host.run(ctx, "", append([]string{ipt, "-w", "-C", t.target}, r...)...); err == nil {
			return nil // banned already
		}
		if _, err := t.host.run(ctx, "", append([]string{ipt, "-w", "-I", t.target, "1"}, r...)...); err != nil {
			return fmt.Errorf("iptables: %w", err)
		}
		return nil
	}
	have, err := t.bannedLocked(ctx, f)
	if err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("*filter\n")
	for _, e := range els {
		if !have[e.Addr] {
			have[e.Addr] = true
			fmt.Fprintf(&b, "-I %s 1 %s\n", t.target, strings.Join(rule(e.Addr), " "))
		}
	}
	b.WriteString("COMMIT\n")
	if _, err := t.host.run(ctx, b.String(), restore, "-w", "--noflush"); err != nil {
		return fmt.Errorf("iptables: %w", err)
	}
	return nil
}

// bannedLocked returns the addresses of family f that the jail's chain
// bans (without IPSet).
func (t *IPTables) bannedLocked(ctx context.Context, f Family) (map[netip.Addr]bool, error) {
	ipt, _ := commands(f)
	out, err := t.host.run(ctx, "", ipt, "-w", "-S", t.target)
	if err != nil {
		return nil, fmt.Errorf("iptables: %w", err)
	}
	have := map[netip.Addr]bool{}
	for _, line := range strings.Split(out, "\n") {
		w := strings.Fields(line)
		if len(w) > 4 && w[0] == "-A" && w[2] == "-s" {
			if p, err := netip.ParsePrefix(w[3]); err == nil && p.IsSingleIP() {
				have[p.Addr()] = true
			}
		}
	}
	return have, nil
}

// Remove lifts the bans of addrs. An address that was not banned is an
// error wrapping ErrNotFound; the others are lifted all the same.
func (t *IPTables) Remove(ctx context.Context, addrs []netip.Addr) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var missing []string
	var errs []error
	for _, a := range addrs {
		a = a.Unmap()
		f := FamilyOf(a)
		if !t.started[f] {
			missing = append(missing, a.String())
			continue
		}
		ipt, _ := commands(f)
		var err error
		if t.cfg.IPSet {
			_, err = t.host.run(ctx, "", "ipset", "del", t.sets[f], a.String())
		} else {
			_, err = t.host.run(ctx, "", append([]string{ipt, "-w", "-D", t.target, "-s", hostAddr(a), "-j"}, t.blockType(f)...)...)
		}
		var ce *CommandError
		if errors.As(err, &ce) && ce.Code == 1 {
			// ipset: "it's not added"; iptables: "Bad rule (does a
			// matching rule exist in that chain?)".
			missing = append(missing, a.String())
		} else if err != nil {
			errs = append(errs, fmt.Errorf("iptables: %w", err))
		}
	}
	if len(missing) > 0 {
		errs = append(errs, fmt.Errorf("iptables: %s: %w in the jail's %s", strings.Join(missing, ", "), ErrNotFound, t.target))
	}
	return errors.Join(errs...)
}

// Elements returns the addresses the jail bans, each with the time its
// ban has left (0: none), sorted.
func (t *IPTables) Elements(ctx context.Context) ([]Element, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Element
	for _, f := range []Family{IPv4, IPv6} {
		els, _, err := t.elementsLocked(ctx, f)
		if err != nil {
			return nil, err
		}
		out = append(out, els...)
	}
	slices.SortFunc(out, func(a, b Element) int { return a.Addr.Compare(b.Addr) })
	return out, nil
}

// elementsLocked returns family f's banned addresses, and whether its
// set or chain exists.
func (t *IPTables) elementsLocked(ctx context.Context, f Family) ([]Element, bool, error) {
	var out []Element
	if !t.cfg.IPSet {
		ipt, _ := commands(f)
		if _, err := t.host.run(ctx, "", ipt, "-w", "-S", t.target); err != nil {
			return nil, false, nil
		}
		have, err := t.bannedLocked(ctx, f)
		if err != nil {
			return nil, true, err
		}
		for a := range have {
			out = append(out, Element{Addr: a})
		}
		return out, true, nil
	}
	text, err := t.host.run(ctx, "", "ipset", "save", t.sets[f])
	if err != nil {
		return nil, false, nil // no such set
	}
	for _, line := range strings.Split(text, "\n") {
		w := strings.Fields(line)
		if len(w) < 3 || w[0] != "add" {
			continue
		}
		a, err := netip.ParseAddr(w[2])
		if err != nil {
			continue
		}
		e := Element{Addr: a}
		if len(w) >= 5 && w[3] == "timeout" {
			if s, err := strconv.Atoi(w[4]); err == nil {
				e.Timeout = time.Duration(s) * time.Second
			}
		}
		out = append(out, e)
	}
	return out, true, nil
}

// Sync makes the jail ban elems and nothing else. With IPSet, one ipset
// restore adds what is missing, gives each address its time left, and
// removes what is no longer banned; without, one iptables-restore
// writes the jail's chain anew, at once. A family with no ban whose set
// or chain a killed daemon left behind is stopped. No address of elems
// is unbanned on the way.
func (t *IPTables) Sync(ctx context.Context, elems []Element) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	by := byFamily(elems)
	for _, f := range []Family{IPv4, IPv6} {
		have, exists, err := t.elementsLocked(ctx, f)
		if err != nil {
			return err
		}
		want := by[f]
		if len(want) == 0 {
			if exists {
				if err := t.stopLocked(ctx, f); err != nil {
					return err
				}
			}
			continue
		}
		if err := t.ensureLocked(ctx, f); err != nil {
			return err
		}
		if t.cfg.IPSet {
			keep := map[netip.Addr]bool{}
			var b strings.Builder
			for _, e := range want {
				keep[e.Addr] = true
				fmt.Fprintf(&b, "add %s %s timeout %s\n", t.sets[f], e.Addr, ipsetTimeout(e.Timeout))
			}
			for _, e := range have {
				if !keep[e.Addr] {
					fmt.Fprintf(&b, "del %s %s\n", t.sets[f], e.Addr)
				}
			}
			if _, err := t.host.run(ctx, b.String(), "ipset", "-exist", "restore"); err != nil {
				return fmt.Errorf("iptables: %w", err)
			}
			continue
		}
		// Declaring the chain in iptables-restore --noflush empties it,
		// and the whole table is committed at once.
		_, restore := commands(f)
		var b strings.Builder
		fmt.Fprintf(&b, "*filter\n:%s - [0:0]\n", t.target)
		for _, e := range want {
			fmt.Fprintf(&b, "-A %s -s %s -j %s\n", t.target, hostAddr(e.Addr), strings.Join(t.blockType(f), " "))
		}
		fmt.Fprintf(&b, "-A %s -j %s\nCOMMIT\n", t.target, t.cfg.ReturnType)
		if _, err := t.host.run(ctx, b.String(), restore, "-w", "--noflush"); err != nil {
			return fmt.Errorf("iptables: %w", err)
		}
	}
	return nil
}

// Stop removes the jail's rules, chain and sets, as fail2ban's
// actionstop does: its bans are lifted.
func (t *IPTables) Stop(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var errs []error
	for _, f := range []Family{IPv4, IPv6} {
		if t.started[f] {
			errs = append(errs, t.stopLocked(ctx, f))
		}
	}
	return errors.Join(errs...)
}

// stopLocked removes family f's rules, chain and set.
func (t *IPTables) stopLocked(ctx context.Context, f Family) error {
	ipt, _ := commands(f)
	for _, chain := range t.cfg.Chains {
		rules, err := t.rulesOf(ctx, f, chain)
		if err != nil {
			return err
		}
		for _, r := range rules {
			if _, err := t.host.run(ctx, "", append([]string{ipt, "-w", "-D", chain}, r...)...); err != nil {
				return fmt.Errorf("iptables: %w", err)
			}
		}
	}
	if t.cfg.IPSet {
		var err error
		// The kernel may hold the set a moment after its rule went, as
		// fail2ban's actionstop knows.
		for i := 0; i < 20; i++ {
			if _, err = t.host.run(ctx, "", "ipset", "destroy", t.sets[f]); err == nil {
				break
			}
			if _, lerr := t.host.run(ctx, "", "ipset", "list", "-n", t.sets[f]); lerr != nil {
				err = nil // gone
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			return fmt.Errorf("iptables: %w", err)
		}
	} else if _, err := t.host.run(ctx, "", ipt, "-w", "-S", t.target); err == nil {
		if _, err := t.host.run(ctx, "", ipt, "-w", "-F", t.target); err != nil {
			return fmt.Errorf("iptables: %w", err)
		}
		if _, err := t.host.run(ctx, "", ipt, "-w", "-X", t.target); err != nil {
			return fmt.Errorf("iptables: %w", err)
		}
	}
	delete(t.started, f)
	return nil
}

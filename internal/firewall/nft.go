package firewall

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// NFTConfig says where and how a jail bans with nftables, as the
// parameters of fail2ban's nftables action do (their names follow each
// field).
type NFTConfig struct {
	Table       string // table: "f2b-table"
	TableFamily string // table_family: "inet", "ip" or "ip6"
	Chain       string // chain: "f2b-chain", shared by the jails
	ChainType   string // chain_type: "filter" (the only type supported)
	Hook        string // chain_hook: "input", "forward", "prerouting"...
	Priority    int32  // chain_priority: -1
	// Sets names the jail's set of each address family it bans
	// (addr_set: addr-set-NAME and addr6-set-NAME); an "ip" or "ip6"
	// table holds the one of its family only.
	Sets      map[Family]string
	Protocols []Protocol // protocol: nil for all of them
	Ports     Ports      // port: nil for every port (allports)
	// BlockType is what the rules do with a banned address's packets:
	// "reject" (ICMP port unreachable), "drop", "reject with icmpx
	// admin-prohibited", "reject with tcp reset", "accept", "return",
	// "continue", each optionally after "counter".
	BlockType string
}

// NFTables is the nftables side of one jail's bans: in a table shared
// with the other jails (fail2ban's f2b-table), a chain hooked into the
// packet path (shared too), and the jail's own sets, one per address
// family, and the rules that match a packet's source address against
// them. Each set has the timeout flag: an element carries the time its
// ban has left, so the kernel lifts it on time even when no daemon is
// running. A ban or an unban is one change of one set, one netlink
// message; many are sent together in a batch.
//
// NFTables is safe for concurrent use.
type NFTables struct {
	host    *Host
	cfg     NFTConfig
	family  nftables.TableFamily
	verdict []expr.Any
	table   *nftables.Table
	sets    map[Family]*nftables.Set // the jail's sets

	mu   sync.Mutex // guards conn, and orders the netlink exchanges
	conn *nftables.Conn
}

// setChunk is how many elements one batch carries: a netlink attribute
// holds at most 64 KiB, and a batch must fit the socket's buffer.
const setChunk = 512

// NewNFTables checks cfg and returns the jail's nftables side in host;
// nothing changes in the kernel until Start.
func NewNFTables(host *Host, cfg NFTConfig) (*NFTables, error) {
	n := &NFTables{host: host, cfg: cfg, sets: map[Family]*nftables.Set{}}
	for opt, v := range map[string]string{"table": cfg.Table, "chain": cfg.Chain} {
		if err := checkName(v); err != nil {
			return nil, fmt.Errorf("%s: %w", opt, err)
		}
	}
	families := map[string]struct {
		family nftables.TableFamily
		addrs  []Family
	}{
		"inet": {nftables.TableFamilyINet, []Family{IPv4, IPv6}},
		"ip":   {nftables.TableFamilyIPv4, []Family{IPv4}},
		"ip6":  {nftables.TableFamilyIPv6, []Family{IPv6}},
	}
	tf, ok := families[cfg.TableFamily]
	if !ok {
		return nil, fmt.Errorf("table_family %q: not inet, ip or ip6", cfg.TableFamily)
	}
	n.family = tf.family
	n.table = &nftables.Table{Name: cfg.Table, Family: tf.family}
	if cfg.ChainType != "filter" {
		return nil, fmt.Errorf("chain_type %q: only filter chains are supported natively (native=false runs the action.d file)", cfg.ChainType)
	}
	if _, err := hookNum(cfg.Hook); err != nil {
		return nil, err
	}
	for f, name := range cfg.Sets {
		if err := checkName(name); err != nil {
			return nil, fmt.Errorf("addr_set: %w", err)
		}
		if !slices.Contains(tf.addrs, f) {
			continue // an ip table has no IPv6 set, as in fail2ban
		}
		key, id := nftables.TypeIPAddr, uint32(1)
		if f == IPv6 {
			key, id = nftables.TypeIP6Addr, 2
		}
		// The ID names the set within a batch that creates it, for the
		// rules that look it up; the anonymous sets come after.
		n.sets[f] = &nftables.Set{Table: n.table, Name: name, ID: id, KeyType: key, HasTimeout: true,
			KeyByteOrder: binaryutil.BigEndian}
	}
	if len(n.sets) == 0 {
		return nil, fmt.Errorf("table %s %s: no set for its address family", cfg.TableFamily, cfg.Table)
	}
	v, err := parseNFTBlockType(cfg.BlockType, n.sets)
	if err != nil {
		return nil, err
	}
	n.verdict = v
	if cfg.Ports.All() {
		n.cfg.Ports = nil
	}
	return n, nil
}

// Config returns the jail's configuration, its ports as they are
// matched (nil for every port).
func (n *NFTables) Config() NFTConfig { return n.cfg }

// checkName checks an nftables object name: what nft accepts unquoted.
func checkName(s string) error {
	if s == "" || len(s) > 255 {
		return fmt.Errorf("%q is not a name of 1 to 255 characters", s)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-./", r)) {
			return fmt.Errorf("%q: a name holds letters, digits and _-./ only", s)
		}
	}
	return nil
}

func hookNum(h string) (*nftables.ChainHook, error) {
	switch h {
	case "prerouting":
		return nftables.ChainHookPrerouting, nil
	case "input":
		return nftables.ChainHookInput, nil
	case "forward":
		return nftables.ChainHookForward, nil
	case "output":
		return nftables.ChainHookOutput, nil
	case "postrouting":
		return nftables.ChainHookPostrouting, nil
	}
	return nil, fmt.Errorf("chain_hook %q: not prerouting, input, forward, output or postrouting", h)
}

// ICMP codes a rule can reject with, by nft's names.
var (
	icmpxCodes = map[string]uint8{"no-route": unix.NFT_REJECT_ICMPX_NO_ROUTE, "port-unreachable": unix.NFT_REJECT_ICMPX_PORT_UNREACH,
		"host-unreachable": unix.NFT_REJECT_ICMPX_HOST_UNREACH, "admin-prohibited": unix.NFT_REJECT_ICMPX_ADMIN_PROHIBITED}
	icmpCodes = map[string]uint8{"net-unreachable": 0, "host-unreachable": 1, "prot-unreachable": 2, "port-unreachable": 3,
		"net-prohibited": 9, "host-prohibited": 10, "admin-prohibited": 13}
	icmpv6Codes = map[string]uint8{"no-route": 0, "admin-prohibited": 1, "addr-unreachable": 3, "port-unreachable": 4,
		"policy-fail": 5, "reject-route": 6}
)

// parseNFTBlockType reads fail2ban's blocktype for nftables into the
// expressions that end a rule.
func parseNFTBlockType(s string, sets map[Family]*nftables.Set) ([]expr.Any, error) {
	bad := func(why string) error {
		return fmt.Errorf("blocktype %q: %s (native=false runs the action.d file with any nft statement)", s, why)
	}
	words := strings.Fields(strings.ToLower(s))
	var out []expr.Any
	if len(words) > 0 && words[0] == "counter" {
		out, words = append(out, &expr.Counter{}), words[1:]
	}
	if len(words) == 0 {
		return nil, bad("no verdict")
	}
	verdicts := map[string]expr.VerdictKind{"drop": expr.VerdictDrop, "accept": expr.VerdictAccept,
		"return": expr.VerdictReturn, "continue": expr.VerdictContinue}
	if k, ok := verdicts[words[0]]; ok {
		if len(words) > 1 {
			return nil, bad("unexpected words after " + words[0])
		}
		return append(out, &expr.Verdict{Kind: k}), nil
	}
	if words[0] != "reject" {
		return nil, bad("not drop, reject, accept, return or continue")
	}
	words = words[1:]
	if len(words) == 0 {
		return append(out, &expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_PORT_UNREACH}), nil
	}
	if words[0] != "with" || len(words) < 2 {
		return nil, bad("reject is followed by with icmpx, icmp, icmpv6 or tcp reset")
	}
	kind, rest := words[1], words[2:]
	if len(rest) > 0 && rest[0] == "type" {
		rest = rest[1:]
	}
	if kind == "tcp" {
		if len(rest) != 1 || rest[0] != "reset" {
			return nil, bad("tcp is followed by reset")
		}
		return append(out, &expr.Reject{Type: unix.NFT_REJECT_TCP_RST}), nil
	}
	if len(rest) != 1 {
		return nil, bad("a type of ICMP message is expected")
	}
	codes, typ, only := icmpxCodes, uint32(unix.NFT_REJECT_ICMPX_UNREACH), Family(0)
	switch kind {
	case "icmpx":
	case "icmp":
		codes, typ, only = icmpCodes, unix.NFT_REJECT_ICMP_UNREACH, IPv4
	case "icmpv6":
		codes, typ, only = icmpv6Codes, unix.NFT_REJECT_ICMP_UNREACH, IPv6
	default:
		return nil, bad("not icmpx, icmp, icmpv6 or tcp")
	}
	code, ok := codes[rest[0]]
	if !ok {
		return nil, bad(fmt.Sprintf("unknown %s type %q", kind, rest[0]))
	}
	if only != 0 {
		for f := range sets {
			if f != only {
				return nil, bad(fmt.Sprintf("%s answers %s only, and the jail bans %s too: use icmpx", kind, only, f))
			}
		}
	}
	return append(out, &expr.Reject{Type: typ, Code: code}), nil
}

// connLocked returns the netlink connection, opened on first use.
func (n *NFTables) connLocked() (*nftables.Conn, error) {
	if n.conn == nil {
		c, err := n.host.dial()
		if err != nil {
			return nil, fmt.Errorf("nftables: %w", err)
		}
		n.conn = c
	}
	return n.conn, nil
}

// flushLocked sends c's batch; after a failure the connection is
// dropped, so that no answer left on it is read as the next one's.
func (n *NFTables) flushLocked(c *nftables.Conn) error {
	err := c.Flush()
	if err != nil {
		c.CloseLasting()
		n.conn = nil
		if errors.Is(err, unix.ENOENT) {
			err = fmt.Errorf("%w: %w", ErrNotFound, err)
		}
	}
	return err
}

// Close closes the netlink connection; the kernel's objects stay.
func (n *NFTables) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		return nil
	}
	err := n.conn.CloseLasting()
	n.conn = nil
	return err
}

// state is what the kernel holds of a jail's table.
type state struct {
	table bool                        // the table exists
	chain *nftables.Chain             // the chain, if it exists
	sets  map[string]*nftables.Set    // the table's named sets
	rules map[string][]*nftables.Rule // the chain's rules, by the set they look up ("" for others)
}

// stateLocked reads the kernel's state of the jail's table.
func (n *NFTables) stateLocked(c *nftables.Conn) (*state, error) {
	st := &state{sets: map[string]*nftables.Set{}, rules: map[string][]*nftables.Rule{}}
	tables, err := c.ListTablesOfFamily(n.family)
	if err != nil {
		return nil, fmt.Errorf("nftables: list tables: %w", err)
	}
	for _, t := range tables {
		st.table = st.table || t.Name == n.cfg.Table
	}
	if !st.table {
		return st, nil
	}
	sets, err := c.GetSets(n.table)
	if err != nil {
		return nil, fmt.Errorf("nftables: table %s: list sets: %w", n.cfg.Table, err)
	}
	for _, s := range sets {
		if !s.Anonymous {
			st.sets[s.Name] = s
		}
	}
	chains, err := c.ListChainsOfTableFamily(n.family)
	if err != nil {
		return nil, fmt.Errorf("nftables: list chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table.Name == n.cfg.Table && ch.Name == n.cfg.Chain {
			st.chain = ch
		}
	}
	if st.chain == nil {
		return st, nil
	}
	rules, err := c.GetRules(n.table, st.chain)
	if err != nil {
		return nil, fmt.Errorf("nftables: chain %s: list rules: %w", n.cfg.Chain, err)
	}
	for _, r := range rules {
		r.Table, r.Chain = n.table, st.chain
		set := ""
		for _, e := range r.Exprs {
			if l, ok := e.(*expr.Lookup); ok && !strings.HasPrefix(l.SetName, "__") {
				set = l.SetName
			}
		}
		st.rules[set] = append(st.rules[set], r)
	}
	return st, nil
}

// compatible reports whether the kernel's set s can hold the jail's
// set want: same key, the timeout flag, no intervals, not a map.
func compatible(s, want *nftables.Set) bool {
	return s.KeyType.Name == want.KeyType.Name && s.HasTimeout && !s.Interval && !s.IsMap && !s.Constant
}

// Start creates what the jail needs, in one batch, keeping what is
// there already: the table, the chain, the jail's sets with their
// elements (bans that outlived a killed daemon stay banned until Sync),
// and its rules, which replace the jail's previous rules in the same
// batch, so that no packet finds them missing. A set of the jail's name
// that cannot hold timeouts, as fail2ban's shell action makes it, is
// replaced by an empty one. Start can be called again to repair what
// was removed behind the action's back.
func (n *NFTables) Start(ctx context.Context) error {
	n.host.mu.Lock()
	defer n.host.mu.Unlock()
	n.mu.Lock()
	defer n.mu.Unlock()
	c, err := n.connLocked()
	if err != nil {
		return err
	}
	st, err := n.stateLocked(c)
	if err != nil {
		n.dropLocked()
		return err
	}
	c.AddTable(n.table)
	if st.chain == nil {
		hook, _ := hookNum(n.cfg.Hook)
		prio := nftables.ChainPriority(n.cfg.Priority)
		c.AddChain(&nftables.Chain{Table: n.table, Name: n.cfg.Chain, Type: nftables.ChainTypeFilter,
			Hooknum: hook, Priority: &prio})
	} else if err := n.checkChain(st.chain); err != nil {
		n.dropLocked()
		return err
	}
	ids := uint32(3) // after the jail's sets' IDs
	for _, f := range []Family{IPv4, IPv6} {
		set, ok := n.sets[f]
		if !ok {
			continue
		}
		for _, r := range st.rules[set.Name] {
			if err := c.DelRule(r); err != nil {
				n.dropLocked()
				return fmt.Errorf("nftables: %w", err)
			}
		}
		old, exists := st.sets[set.Name]
		if exists && !compatible(old, set) {
			c.DelSet(old)
			exists = false
		}
		if !exists {
			if err := c.AddSet(set, nil); err != nil {
				n.dropLocked()
				return fmt.Errorf("nftables: set %s: %w", set.Name, err)
			}
		}
	}
	for _, f := range []Family{IPv4, IPv6} {
		set, ok := n.sets[f]
		if !ok {
			continue
		}
		protos := n.cfg.Protocols
		if protos == nil {
			protos = []Protocol{{}}
		}
		for _, p := range protos {
			exprs, err := n.ruleExprs(c, f, set, p, &ids)
			if err != nil {
				n.dropLocked()
				return err
			}
			c.AddRule(&nftables.Rule{Table: n.table, Chain: &nftables.Chain{Name: n.cfg.Chain, Table: n.table}, Exprs: exprs})
		}
	}
	if err := n.flushLocked(c); err != nil {
		return fmt.Errorf("nftables: start table %s %s: %w", n.cfg.TableFamily, n.cfg.Table, err)
	}
	return nil
}

// dropLocked discards what was queued on the connection.
func (n *NFTables) dropLocked() {
	if n.conn != nil {
		n.conn.CloseLasting()
		n.conn = nil
	}
}

// checkChain refuses an existing chain of the jail's name that is not
// the base chain the jail would have made.
func (n *NFTables) checkChain(ch *nftables.Chain) error {
	hook, _ := hookNum(n.cfg.Hook)
	if ch.Hooknum == nil || *ch.Hooknum != *hook || ch.Type != nftables.ChainTypeFilter {
		return fmt.Errorf("nftables: chain %s in table %s exists, but is not a filter chain hooked at %s",
			n.cfg.Chain, n.cfg.Table, n.cfg.Hook)
	}
	return nil
}

// ruleExprs returns the expressions of the rule that blocks family f's
// addresses in set for protocol p (all protocols when p is zero), and
// queues the anonymous set of ports it looks up, if any.
func (n *NFTables) ruleExprs(c *nftables.Conn, f Family, set *nftables.Set, p Protocol, ids *uint32) ([]expr.Any, error) {
	var exprs []expr.Any
	if n.family == nftables.TableFamilyINet {
		proto := byte(unix.NFPROTO_IPV4)
		if f == IPv6 {
			proto = unix.NFPROTO_IPV6
		}
		exprs = append(exprs, &expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}})
	}
	offset, size := uint32(12), uint32(4) // ip saddr
	if f == IPv6 {
		offset, size = 8, 16 // ip6 saddr
	}
	exprs = append(exprs, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: size},
		&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID})
	if p.Name != "" {
		exprs = append(exprs, &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p.Number}})
	}
	if ports := n.cfg.Ports; ports != nil {
		exprs = append(exprs, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2})
		if len(ports) == 1 && ports[0].First == ports[0].Last {
			exprs = append(exprs, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(ports[0].First)})
		} else {
			anon := &nftables.Set{Table: n.table, ID: *ids, Name: fmt.Sprintf("__set%d", *ids), Anonymous: true,
				Constant: true, Interval: true, KeyType: nftables.TypeInetService, KeyByteOrder: binaryutil.BigEndian}
			*ids++
			var elems []nftables.SetElement
			for _, r := range ports {
				elems = append(elems, nftables.SetElement{Key: binaryutil.BigEndian.PutUint16(r.First)})
				if r.Last < 65535 {
					elems = append(elems, nftables.SetElement{Key: binaryutil.BigEndian.PutUint16(r.Last + 1), IntervalEnd: true})
				}
			}
			if err := c.AddSet(anon, elems); err != nil {
				return nil, fmt.Errorf("nftables: the set of ports %s: %w", ports, err)
			}
			exprs = append(exprs, &expr.Lookup{SourceRegister: 1, SetName: anon.Name, SetID: anon.ID})
		}
	}
	return append(exprs, n.verdict...), nil
}

// Stop removes the jail's rules and sets, as fail2ban's actionstop
// does: its bans are lifted. The table goes too once no set is left in
// it.
func (n *NFTables) Stop(ctx context.Context) error {
	n.host.mu.Lock()
	defer n.host.mu.Unlock()
	n.mu.Lock()
	defer n.mu.Unlock()
	c, err := n.connLocked()
	if err != nil {
		return err
	}
	st, err := n.stateLocked(c)
	if err != nil {
		n.dropLocked()
		return err
	}
	if !st.table {
		return nil
	}
	left := len(st.sets)
	for _, set := range n.sets {
		for _, r := range st.rules[set.Name] {
			if err := c.DelRule(r); err != nil {
				n.dropLocked()
				return fmt.Errorf("nftables: %w", err)
			}
		}
		if old, ok := st.sets[set.Name]; ok {
			c.DelSet(old)
			left--
		}
	}
	if left == 0 {
		c.DelTable(n.table)
	}
	if err := n.flushLocked(c); err != nil {
		return fmt.Errorf("nftables: stop table %s %s: %w", n.cfg.TableFamily, n.cfg.Table, err)
	}
	return nil
}

// key returns a's bytes as a set of its family holds them.
func key(a netip.Addr) []byte {
	if a = a.Unmap(); a.Is4() {
		b := a.As4()
		return b[:]
	}
	b := a.As16()
	return b[:]
}

// timeout is an element's timeout as the kernel takes it, in whole
// milliseconds: 0 is none, so a timeout under a millisecond is one.
func timeout(d time.Duration) time.Duration {
	if d > 0 && d < time.Millisecond {
		return time.Millisecond
	}
	return d
}

// setFor returns the jail's set for a's family.
func (n *NFTables) setFor(a netip.Addr) (*nftables.Set, error) {
	s, ok := n.sets[FamilyOf(a)]
	if !ok {
		return nil, fmt.Errorf("nftables: table %s %s has no set for %s addresses", n.cfg.TableFamily, n.cfg.Table, FamilyOf(a))
	}
	return s, nil
}

// elementsBySet sorts elems into the sets of their families, as the
// kernel's set elements.
func (n *NFTables) elementsBySet(elems []Element) (map[*nftables.Set][]nftables.SetElement, error) {
	bySet := map[*nftables.Set][]nftables.SetElement{}
	for _, e := range elems {
		s, err := n.setFor(e.Addr)
		if err != nil {
			return nil, err
		}
		bySet[s] = append(bySet[s], nftables.SetElement{Key: key(e.Addr), Timeout: timeout(e.Timeout)})
	}
	return bySet, nil
}

// Add bans elems: each address is put in its family's set with its
// timeout. An address already there gets the new timeout: it is added
// (nothing if it is there), removed and added again in one batch, which
// the kernel applies at once, so that it is never missing. Many
// elements go in batches of setChunk.
func (n *NFTables) Add(ctx context.Context, elems []Element) error {
	bySet, err := n.elementsBySet(elems)
	if err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for s, els := range bySet {
		for chunk := range slices.Chunk(els, setChunk) {
			if err := n.replaceLocked(ctx, s, chunk); err != nil {
				return err
			}
		}
	}
	return nil
}

// replaceLocked sets els in s, as Add says, in one batch.
func (n *NFTables) replaceLocked(ctx context.Context, s *nftables.Set, els []nftables.SetElement) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c, err := n.connLocked()
	if err != nil {
		return err
	}
	plain := make([]nftables.SetElement, len(els))
	for i, e := range els {
		plain[i] = nftables.SetElement{Key: e.Key}
	}
	for _, step := range []func() error{
		func() error { return c.SetAddElements(s, plain) },
		func() error { return c.SetDeleteElements(s, plain) },
		func() error { return c.SetAddElements(s, els) },
	} {
		if err := step(); err != nil {
			n.dropLocked()
			return fmt.Errorf("nftables: set %s: %w", s.Name, err)
		}
	}
	if err := n.flushLocked(c); err != nil {
		return fmt.Errorf("nftables: add to set %s: %w", s.Name, err)
	}
	return nil
}

// Remove lifts the bans of addrs, in batches of setChunk. An address
// that is not in its set is an error wrapping ErrNotFound, naming it;
// the others are removed all the same.
func (n *NFTables) Remove(ctx context.Context, addrs []netip.Addr) error {
	bySet := map[*nftables.Set][]netip.Addr{}
	for _, a := range addrs {
		s, err := n.setFor(a)
		if err != nil {
			return err
		}
		bySet[s] = append(bySet[s], a)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var missing []string
	for s, as := range bySet {
		for chunk := range slices.Chunk(as, setChunk) {
			err := n.removeLocked(ctx, s, chunk)
			if errors.Is(err, ErrNotFound) && len(chunk) > 1 {
				// One missing address fails its batch: the others go
				// one by one.
				err = nil
				for _, a := range chunk {
					if e := n.removeLocked(ctx, s, []netip.Addr{a}); errors.Is(e, ErrNotFound) {
						missing = append(missing, a.String())
					} else if e != nil {
						return e
					}
				}
			} else if errors.Is(err, ErrNotFound) {
				missing, err = append(missing, chunk[0].String()), nil
			}
			if err != nil {
				return err
			}
		}
	}
	if len(missing) > 0 {
		if len(missing) > 5 {
			missing = append(missing[:5], fmt.Sprintf("and %d more", len(missing)-5))
		}
		return fmt.Errorf("nftables: %s: %w in the jail's set", strings.Join(missing, ", "), ErrNotFound)
	}
	return nil
}

func (n *NFTables) removeLocked(ctx context.Context, s *nftables.Set, addrs []netip.Addr) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c, err := n.connLocked()
	if err != nil {
		return err
	}
	els := make([]nftables.SetElement, len(addrs))
	for i, a := range addrs {
		els[i] = nftables.SetElement{Key: key(a)}
	}
	if err := c.SetDeleteElements(s, els); err != nil {
		n.dropLocked()
		return fmt.Errorf("nftables: set %s: %w", s.Name, err)
	}
	if err := n.flushLocked(c); err != nil {
		return fmt.Errorf("nftables: remove from set %s: %w", s.Name, err)
	}
	return nil
}

// Elements returns the addresses in the jail's sets, each with the
// time its ban has left (0: no timeout), sorted.
func (n *NFTables) Elements(ctx context.Context) ([]Element, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []Element
	for _, f := range []Family{IPv4, IPv6} {
		s, ok := n.sets[f]
		if !ok {
			continue
		}
		els, err := n.elementsLocked(s)
		if err != nil {
			return nil, err
		}
		out = append(out, els...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr.Less(out[j].Addr) })
	return out, nil
}

func (n *NFTables) elementsLocked(s *nftables.Set) ([]Element, error) {
	c, err := n.connLocked()
	if err != nil {
		return nil, err
	}
	els, err := c.GetSetElements(s)
	if err != nil {
		n.dropLocked()
		return nil, fmt.Errorf("nftables: set %s: list elements: %w", s.Name, err)
	}
	out := make([]Element, 0, len(els))
	for _, e := range els {
		a, ok := netip.AddrFromSlice(e.Key)
		if !ok {
			continue
		}
		out = append(out, Element{Addr: a, Timeout: e.Expires})
	}
	return out, nil
}

// Sync makes the jail's sets hold elems and nothing else, each with
// its time left: in one batch, which the kernel applies at once, it
// empties each set and fills it again. So what a killed daemon left
// behind and is no longer banned goes, and no element of elems is ever
// missing on the way. The batch's size is bounded by the socket's send
// buffer (see sendBuffer): a million bans or so.
func (n *NFTables) Sync(ctx context.Context, elems []Element) error {
	want, err := n.elementsBySet(elems)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	c, err := n.connLocked()
	if err != nil {
		return err
	}
	for _, f := range []Family{IPv4, IPv6} {
		s, ok := n.sets[f]
		if !ok {
			continue
		}
		c.FlushSet(s)
		for chunk := range slices.Chunk(want[s], setChunk) {
			if err := c.SetAddElements(s, chunk); err != nil {
				n.dropLocked()
				return fmt.Errorf("nftables: set %s: %w", s.Name, err)
			}
		}
	}
	if err := n.flushLocked(c); err != nil {
		return fmt.Errorf("nftables: sync %d elements: %w", len(elems), err)
	}
	return nil
}

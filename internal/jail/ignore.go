package jail

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
)

// IgnoreList is a jail's ignoreip: addresses, networks (CIDR or netmask),
// host names, failure ids that are not addresses, and file: lists of
// those, one or more per line. A lookup costs one map probe per prefix
// length in the list, however long the list.
type IgnoreList struct {
	byBits map[int]map[netip.Prefix]bool
	bits   []int // the prefix lengths present, longest first
	ids    map[string]bool
	names  []string // host names, resolved when an address is checked
}

// ParseIgnoreIP reads an ignoreip value: entries separated by spaces or
// commas, each an address, a network (192.0.2.0/24, 192.0.2.0/255.255.255.0,
// 2001:db8::/32), a host name, or file:PATH naming a file of such entries
// (# starts a comment).
func ParseIgnoreIP(value string) (*IgnoreList, error) {
	l := &IgnoreList{byBits: map[int]map[netip.Prefix]bool{}, ids: map[string]bool{}}
	if err := l.add(value, 0); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *IgnoreList) add(value string, depth int) error {
	for _, e := range strings.FieldsFunc(value, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' }) {
		if path, ok := strings.CutPrefix(e, "file:"); ok {
			if depth > 0 {
				return fmt.Errorf("ignoreip file %s: a list may not name another file", path)
			}
			if err := l.addFile(path); err != nil {
				return err
			}
			continue
		}
		if err := l.addEntry(e); err != nil {
			return err
		}
	}
	return nil
}

func (l *IgnoreList) addFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("ignoreip: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if err := l.add(line, 1); err != nil {
			return fmt.Errorf("%s:%d: %w", path, n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("ignoreip %s: %w", path, err)
	}
	return nil
}

func (l *IgnoreList) addEntry(e string) error {
	if a, err := netip.ParseAddr(e); err == nil {
		a = a.Unmap().WithZone("")
		l.addPrefix(netip.PrefixFrom(a, a.BitLen()))
		return nil
	}
	if addr, mask, ok := strings.Cut(e, "/"); ok {
		if p, err := netip.ParsePrefix(e); err == nil {
			if p.Addr().Is4In6() && p.Bits() >= 96 {
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			l.addPrefix(p.Masked())
			return nil
		}
		a, err1 := netip.ParseAddr(addr)
		m, err2 := netip.ParseAddr(mask)
		if err1 == nil && err2 == nil && a.Is4() && m.Is4() {
			ones, bits := net.IPMask(m.AsSlice()).Size()
			if bits == 0 {
				return fmt.Errorf("ignoreip %q: %s is not a netmask", e, mask)
			}
			l.addPrefix(netip.PrefixFrom(a, ones).Masked())
			return nil
		}
		return fmt.Errorf("ignoreip %q: not an address, a network or a host name", e)
	}
	if isHostName(e) {
		l.names = append(l.names, e)
	}
	// fail2ban also compares failure ids that are not addresses as text.
	l.ids[e] = true
	return nil
}

func (l *IgnoreList) addPrefix(p netip.Prefix) {
	m := l.byBits[p.Bits()]
	if m == nil {
		m = map[netip.Prefix]bool{}
		l.byBits[p.Bits()] = m
		l.bits = append(l.bits, p.Bits())
		slices.SortFunc(l.bits, func(a, b int) int { return b - a })
	}
	m[p] = true
}

// isHostName reports whether s may be a DNS name.
func isHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, r := range s {
		if !(r == '.' || r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return strings.ContainsAny(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
}

// Resolver looks host names up; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Contains reports whether id, a failure id (usually an address), is
// ignored. Host names in the list are resolved with r (nil: they match
// only as text); a name that does not resolve matches nothing.
func (l *IgnoreList) Contains(ctx context.Context, id string, r Resolver) bool {
	if l.ids[id] {
		return true
	}
	a, err := netip.ParseAddr(id)
	if err != nil {
		return false
	}
	a = a.Unmap().WithZone("")
	for _, bits := range l.bits {
		if bits > a.BitLen() {
			continue
		}
		p, err := a.Prefix(bits)
		if err == nil && l.byBits[bits][p] {
			return true
		}
	}
	if r == nil {
		return false
	}
	for _, name := range l.names {
		addrs, err := r.LookupNetIP(ctx, "ip", name)
		if err != nil {
			continue
		}
		for _, x := range addrs {
			if x.Unmap() == a {
				return true
			}
		}
	}
	return false
}

// Len is the number of entries.
func (l *IgnoreList) Len() int {
	n := len(l.ids)
	for _, m := range l.byBits {
		n += len(m)
	}
	return n
}

package firewall

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Family is an address family of banned addresses.
type Family uint8

// The address families, named as fail2ban's <family> tag names them.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string {
	if f == IPv6 {
		return "inet6"
	}
	return "inet4"
}

// FamilyOf returns the family of a, an IPv4-mapped IPv6 address being
// IPv4.
func FamilyOf(a netip.Addr) Family {
	if a.Unmap().Is4() {
		return IPv4
	}
	return IPv6
}

// Element is a banned address and how long its ban has left.
type Element struct {
	Addr netip.Addr
	// Timeout is how long the kernel keeps the address banned; 0 keeps
	// it until it is removed.
	Timeout time.Duration
}

// ParseAddr reads a banned address: an IPv4 or IPv6 address (an
// IPv4-mapped IPv6 address is its IPv4 address), without a zone. A
// network (CIDR) is refused: the sets hold addresses.
func ParseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		if _, perr := netip.ParsePrefix(s); perr == nil {
			return netip.Addr{}, fmt.Errorf("%q is a network: the firewall actions ban addresses", s)
		}
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q: an address with a zone cannot be banned", s)
	}
	return a.Unmap(), nil
}

// ErrNotFound is wrapped by the error of a removal of an address that
// was not banned, and of an operation on a set or table that does not
// exist.
var ErrNotFound = errors.New("not found")

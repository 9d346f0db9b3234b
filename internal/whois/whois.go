// Package whois looks IP addresses up in the whois databases, as the
// whois program does for fail2ban's mail actions: an RFC 3912 query on
// TCP port 43, first to IANA, then along the referrals each answer gives
// to the registry that holds the address, within a deadline and with a
// bound on the size of each answer; and a summary of what the answer
// says (network, name, organisation, country, abuse contact).
//
// What a whois server answers is written by whoever holds the network,
// an attacker included: callers must treat the text, and the summary, as
// untrusted.
package whois

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"unicode/utf8"
)

// Defaults of a Client.
const (
	DefaultServer       = "whois.iana.org:43"
	DefaultMaxReferrals = 3
	DefaultMaxAnswer    = 64 << 10
)

// Client looks addresses up. Its zero value starts at IANA.
type Client struct {
	// Server is the first server's host[:port] (port 43 when absent);
	// "" is DefaultServer.
	Server string
	// MaxReferrals bounds the referrals followed after the first
	// answer; 0 is DefaultMaxReferrals, < 0 follows none.
	MaxReferrals int
	// MaxAnswer bounds an answer, in bytes; the rest is not read. 0 is
	// DefaultMaxAnswer.
	MaxAnswer int
}

// Answer is one server's answer.
type Answer struct {
	Server string // host:port
	// Text is the answer as UTF-8: read as UTF-8 when it is, else as
	// Latin-1, as most registries that are not UTF-8 write.
	Text string
	// Truncated says that the answer was longer than MaxAnswer.
	Truncated bool
	// Referral is the server the answer refers to, followed or not,
	// "" for none.
	Referral string
}

// Result is what a Lookup found: every answer, in the order asked.
type Result struct {
	Answers []Answer
}

// Last returns the last answer, the most specific one; ok is false when
// there is none.
func (r *Result) Last() (a Answer, ok bool) {
	if r == nil || len(r.Answers) == 0 {
		return Answer{}, false
	}
	return r.Answers[len(r.Answers)-1], true
}

// Summary summarizes the last answer that describes a network (the most
// specific one: IANA's describes a registry's block), or the last answer
// if none does.
func (r *Result) Summary() Summary {
	last, ok := r.Last()
	if !ok {
		return Summary{}
	}
	for i := len(r.Answers) - 1; i >= 0; i-- {
		if s := Summarize(r.Answers[i].Text); s.Range != "" {
			s.Server = r.Answers[i].Server
			return s
		}
	}
	s := Summarize(last.Text)
	s.Server = last.Server
	return s
}

// Lookup asks about addr: the first server, then each server an answer
// refers to (see Referral), up to MaxReferrals, never one server twice.
// ctx bounds the whole lookup. The result is never nil: with an error,
// it holds the answers received before it.
//
// A referral from a server on a public address to a loopback, private
// or link-local address is refused: what a registry's answer says is
// written by the network's holder, who must not make edgeban connect to
// the machines of its own network. A first server on such an address
// (a test's, or a local mirror) may refer anywhere.
func (c *Client) Lookup(ctx context.Context, addr netip.Addr) (*Result, error) {
	server, err := ParseServer(c.Server)
	if err != nil {
		return &Result{}, err
	}
	maxRefs := c.MaxReferrals
	if maxRefs == 0 {
		maxRefs = DefaultMaxReferrals
	}
	res := &Result{}
	seen := map[string]bool{}
	restrict := false
	for {
		seen[server] = true
		a, remote, err := c.query(ctx, server, addr, restrict)
		if err != nil {
			return res, fmt.Errorf("whois %s: %w", server, err)
		}
		if len(res.Answers) == 0 {
			restrict = isPublic(remote)
		}
		next, ok := Referral(a.Text)
		if ok {
			a.Referral = next
		}
		res.Answers = append(res.Answers, a)
		if !ok || seen[next] || len(res.Answers) > maxRefs {
			return res, nil
		}
		server = next
	}
}

// ParseServer returns s, a whois server's host or host:port, as
// host:port (port 43 when absent); "" is DefaultServer.
func ParseServer(s string) (string, error) {
	if s == "" {
		return DefaultServer, nil
	}
	if n, ok := serverAddr(s); ok {
		return n, nil
	}
	return "", fmt.Errorf("whois: invalid server %q (want host or host:port)", s)
}

// errRestricted is returned for a referral to a private address.
var errRestricted = errors.New("a referral from a public server to a loopback, private or link-local address is not followed")

// query sends addr's query to server and reads its answer.
func (c *Client) query(ctx context.Context, server string, addr netip.Addr, restrict bool) (Answer, netip.Addr, error) {
	d := net.Dialer{ControlContext: func(_ context.Context, _, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return err
		}
		if restrict && !isPublic(ap.Addr()) {
			return errRestricted
		}
		return nil
	}}
	conn, err := d.DialContext(ctx, "tcp", server)
	if err != nil {
		return Answer{}, netip.Addr{}, err
	}
	defer conn.Close()
	remote := conn.RemoteAddr().(*net.TCPAddr).AddrPort().Addr()
	// ctx's end (its deadline too) cuts the connection, and then
	// ctx.Err() tells why.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if _, err := io.WriteString(conn, queryText(server, addr)+"\r\n"); err != nil {
		return Answer{}, remote, withCtx(ctx, err)
	}
	max := c.MaxAnswer
	if max <= 0 {
		max = DefaultMaxAnswer
	}
	raw, err := io.ReadAll(io.LimitReader(conn, int64(max)+1))
	if err != nil {
		return Answer{}, remote, withCtx(ctx, err)
	}
	a := Answer{Server: server}
	if len(raw) > max {
		raw, a.Truncated = raw[:max], true
	}
	a.Text = decode(raw)
	return a, remote, nil
}

// withCtx says that ctx's end cut the exchange, when it did.
func withCtx(ctx context.Context, err error) error {
	if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		return fmt.Errorf("%w: %w", ctx.Err(), err)
	}
	return err
}

// queryText is the query for addr at server: ARIN's whois answers a bare
// address with every record that names it, "n + ADDR" with its
// networks only; the other registries answer a bare address.
func queryText(server string, addr netip.Addr) string {
	host, _, _ := net.SplitHostPort(server)
	if strings.EqualFold(host, "whois.arin.net") {
		return "n + " + addr.String()
	}
	return addr.String()
}

// isPublic reports whether a is a global unicast address outside the
// private ranges.
func isPublic(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsGlobalUnicast() && !a.IsPrivate()
}

// decode returns raw as UTF-8 text: as it is when it is UTF-8, else read
// as Latin-1.
func decode(raw []byte) string {
	if utf8.Valid(raw) {
		return string(raw)
	}
	var b strings.Builder
	for _, c := range raw {
		b.WriteRune(rune(c))
	}
	return b.String()
}

// Referral returns the server that a whois answer refers to, as
// host:port, from the first line that names one: IANA's "refer:" (or
// "whois:"), or ARIN's "ReferralServer: whois://host[:port]". A referral
// to rwhois (another protocol), to anything but a host name or an IP
// address, or to an invalid port, is not one.
func Referral(text string) (server string, ok bool) {
	for line := range strings.Lines(text) {
		key, value, found := strings.Cut(line, ":")
		if !found {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(key)) {
		case "refer", "whois", "referralserver":
		default:
			continue
		}
		value = strings.TrimSpace(value)
		if scheme, rest, ok := strings.Cut(value, "://"); ok {
			if !strings.EqualFold(scheme, "whois") {
				continue
			}
			value = rest
		}
		value, _, _ = strings.Cut(value, "/")
		if s, ok := serverAddr(value); ok {
			return s, true
		}
	}
	return "", false
}

// serverAddr returns s, "host", "host:port" or "[v6]:port", as
// host:port, and whether it is one: a host name or an IP address, and a
// port from 1 to 65535 (43 when absent).
func serverAddr(s string) (string, bool) {
	host, port := s, "43"
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
	} else if strings.Count(s, ":") > 1 {
		// a bare IPv6 address
	} else if strings.Contains(s, ":") {
		return "", false
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || port[0] == '0' || port[0] == '+' {
		return "", false
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return "", false
		}
		return net.JoinHostPort(a.String(), port), true
	}
	if !hostName(host) {
		return "", false
	}
	return net.JoinHostPort(strings.ToLower(host), port), true
}

// hostName reports whether s is a DNS host name.
func hostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

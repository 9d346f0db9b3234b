package firewall

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// PortRange is a range of ports, First to Last included.
type PortRange struct{ First, Last uint16 }

func (r PortRange) String() string {
	if r.First == r.Last {
		return strconv.Itoa(int(r.First))
	}
	return fmt.Sprintf("%d:%d", r.First, r.Last)
}

// Ports are the ports a ban covers; nil covers every port.
type Ports []PortRange

// All reports whether ps covers every port, as nil and 0:65535 do.
func (ps Ports) All() bool {
	if len(ps) == 0 {
		return true
	}
	next := 0
	for _, r := range normalize(ps) {
		if int(r.First) > next {
			return false
		}
		next = max(next, int(r.Last)+1)
	}
	return next > 65535
}

// normalize returns ps sorted by first port, overlapping and adjacent
// ranges merged.
func normalize(ps Ports) Ports {
	out := make(Ports, 0, len(ps))
	for _, r := range ps {
		i := 0
		for i < len(out) && out[i].First < r.First {
			i++
		}
		out = append(out[:i], append(Ports{r}, out[i:]...)...)
	}
	merged := out[:0]
	for _, r := range out {
		if n := len(merged); n > 0 && int(r.First) <= int(merged[n-1].Last)+1 {
			merged[n-1].Last = max(merged[n-1].Last, r.Last)
			continue
		}
		merged = append(merged, r)
	}
	return merged
}

func (ps Ports) String() string {
	s := make([]string, len(ps))
	for i, r := range ps {
		s[i] = r.String()
	}
	return strings.Join(s, ",")
}

// ServicesFile is where service names are looked up.
const ServicesFile = "/etc/services"

// ParsePorts reads fail2ban's port option: ports, service names and
// ranges ("a:b", or "a-b" as nft writes them) separated by commas or
// spaces, such as "ssh", "http,https", "smtp,465,submission" or
// "0:65535". Names are looked up in services (see LoadServices), else
// in a table of the names jail.conf uses; with services nil, only
// numbers are accepted. The ranges come out sorted and merged.
func ParsePorts(s string, services map[string]uint16) (Ports, error) {
	var out Ports
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		lo, hi, isRange := strings.Cut(f, ":")
		if !isRange {
			lo, hi, isRange = strings.Cut(f, "-")
			if isRange {
				// A service name may hold "-" (ftp-data): a name is
				// not a range.
				if _, err := port(lo, nil); err != nil {
					lo, hi, isRange = f, "", false
				}
			}
		}
		first, err := port(lo, services)
		if err != nil {
			return nil, err
		}
		last := first
		if isRange {
			if last, err = port(hi, services); err != nil {
				return nil, err
			}
			if last < first {
				return nil, fmt.Errorf("port range %q: %d is above %d", f, first, last)
			}
		}
		out = append(out, PortRange{first, last})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("port %q: no port", s)
	}
	return normalize(out), nil
}

// port reads a port number or a service name.
func port(s string, services map[string]uint16) (uint16, error) {
	if s == "" {
		return 0, fmt.Errorf("port: an empty name")
	}
	if s[0] >= '0' && s[0] <= '9' {
		n, err := strconv.ParseUint(s, 10, 16)
		if err != nil {
			return 0, fmt.Errorf("port %q is not a port number (0 to 65535)", s)
		}
		return uint16(n), nil
	}
	if services == nil {
		return 0, fmt.Errorf("port %q is not a number", s)
	}
	if p, ok := services[s]; ok {
		return p, nil
	}
	if p, ok := wellKnown[s]; ok {
		return p, nil
	}
	return 0, fmt.Errorf("port %q: no such service (%s, or a number)", s, ServicesFile)
}

// wellKnown are the service names that jail.conf's jails use, for a
// host whose services file lacks them.
var wellKnown = map[string]uint16{
	"ftp-data": 20, "ftp": 21, "ssh": 22, "telnet": 23, "smtp": 25, "domain": 53,
	"http": 80, "www": 80, "pop3": 110, "imap": 143, "imap2": 143, "ldap": 389,
	"https": 443, "smtps": 465, "ssmtp": 465, "submissions": 465, "submission": 587,
	"ldaps": 636, "ftps-data": 989, "ftps": 990, "imaps": 993, "pop3s": 995,
	"socks": 1080, "openvpn": 1194, "ms-sql-s": 1433, "mysql": 3306, "rdp": 3389,
	"ms-wbt-server": 3389, "sieve": 4190, "sip": 5060, "sip-tls": 5061,
	"xmpp-client": 5222, "postgresql": 5432, "http-alt": 8080, "webcache": 8080,
}

// LoadServices reads the service names and ports of a services(5)
// file; a file that cannot be read gives none, and ParsePorts falls
// back on its own table.
func LoadServices(path string) map[string]uint16 {
	m := map[string]uint16{}
	f, err := os.Open(path)
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		num, _, ok := strings.Cut(fields[1], "/")
		if !ok {
			continue
		}
		p, err := strconv.ParseUint(num, 10, 16)
		if err != nil {
			continue
		}
		for _, name := range append(fields[:1:1], fields[2:]...) {
			if _, seen := m[name]; !seen {
				m[name] = uint16(p)
			}
		}
	}
	return m
}

// Protocol is a transport protocol a ban can be limited to.
type Protocol struct {
	Name   string // as iptables and nft name it: "tcp"
	Number uint8  // its IP protocol number
}

var protocols = map[string]uint8{"tcp": 6, "udp": 17, "dccp": 33, "sctp": 132, "udplite": 136}

// ParseProtocols reads fail2ban's protocol option: "tcp", "udp",
// "tcp,udp"..., or "all" for every protocol (nil).
func ParseProtocols(s string) ([]Protocol, error) {
	var out []Protocol
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		f = strings.ToLower(f)
		if f == "all" {
			return nil, nil
		}
		n, ok := protocols[f]
		if !ok {
			return nil, fmt.Errorf("protocol %q: not tcp, udp, sctp, dccp, udplite or all", f)
		}
		if !hasProtocol(out, f) {
			out = append(out, Protocol{f, n})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("protocol %q: no protocol", s)
	}
	return out, nil
}

func hasProtocol(ps []Protocol, name string) bool {
	for _, p := range ps {
		if p.Name == name {
			return true
		}
	}
	return false
}

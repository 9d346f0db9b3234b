package mail

import (
	"context"
	"net"
	"os"
	"strings"
)

// FQDN returns the machine's fully qualified name, as fail2ban's
// <fq-hostname> (Python's socket.getfqdn): the host name if it has a
// dot, else the first name with a dot that the addresses of the host
// name resolve back to, else the host name. r nil is
// net.DefaultResolver; ctx bounds the lookups.
func FQDN(ctx context.Context, r *net.Resolver) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		return "localhost"
	}
	if strings.Contains(host, ".") {
		return host
	}
	if r == nil {
		r = net.DefaultResolver
	}
	if cname, err := r.LookupCNAME(ctx, host); err == nil {
		if n := strings.TrimSuffix(cname, "."); strings.Contains(n, ".") {
			return n
		}
	}
	addrs, err := r.LookupHost(ctx, host)
	if err != nil {
		return host
	}
	for _, a := range addrs {
		names, err := r.LookupAddr(ctx, a)
		if err != nil {
			continue
		}
		for _, n := range names {
			if n = strings.TrimSuffix(n, "."); strings.Contains(n, ".") {
				return n
			}
		}
	}
	return host
}

// Package firewall drives the kernel's packet filter for the ban
// actions: nftables through netlink (a table shared by the jails, a set
// per jail and address family whose elements carry the bans' timeouts,
// and the rules that match them), and, for hosts without nftables,
// ipset with iptables and ip6tables through their commands, run with an
// argument vector, never a shell.
//
// Banned addresses are netip.Addr values: the text of a log line never
// reaches a command or a netlink message, only the address parsed out
// of it.
package firewall

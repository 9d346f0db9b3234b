package firewall

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The tests of this package change a kernel's packet filter: each runs
// in network namespaces it creates (ip netns add), and skips, saying
// what is missing, without root, the ip command or namespaces.

var netnsCount atomic.Int64

// newNetNS creates a network namespace with its loopback up, deleted
// when the test ends, and returns its name.
func newNetNS(tb testing.TB) string {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root: the test creates network namespaces (ip netns add) and changes their packet filter")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		tb.Skip("needs the ip command (iproute2) to create network namespaces")
	}
	name := fmt.Sprintf("edgeban-fw%d-%d", os.Getpid(), netnsCount.Add(1))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		tb.Skipf("cannot create a network namespace: ip netns add: %v: %s", err, out)
	}
	tb.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			tb.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	mustIP(tb, "-n", name, "link", "set", "lo", "up")
	return name
}

// mustIP runs the ip command with args.
func mustIP(tb testing.TB, args ...string) {
	tb.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		tb.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// needCommand skips the test when the command name is missing.
func needCommand(tb testing.TB, name, pkg string) {
	tb.Helper()
	if _, err := exec.LookPath(name); err != nil {
		tb.Skipf("needs the %s command (Debian package %s)", name, pkg)
	}
}

// inNetNS runs f on a thread in the network namespace ns: the sockets
// f makes stay in it.
func inNetNS(tb testing.TB, ns string, f func()) {
	tb.Helper()
	runtime.LockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		tb.Fatal(err)
	}
	defer self.Close()
	target, err := os.Open(filepath.Join("/run/netns", ns))
	if err != nil {
		runtime.UnlockOSThread()
		tb.Fatal(err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		tb.Fatalf("setns %s: %v", ns, err)
	}
	defer func() {
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			// The thread stays locked, and ends with its goroutine.
			tb.Errorf("setns back: %v", err)
			return
		}
		runtime.UnlockOSThread()
	}()
	f()
}

// link is a server namespace and a client namespace joined by a veth
// pair: the server has serverV4 and serverV6; the client has two
// addresses of each family, to ban one and not the other.
type link struct {
	server, client string
}

var (
	serverV4   = netip.MustParseAddr("10.99.0.1")
	serverV6   = netip.MustParseAddr("fd99::1")
	clientsV4  = []netip.Addr{netip.MustParseAddr("10.99.0.2"), netip.MustParseAddr("10.99.0.3")}
	clientsV6  = []netip.Addr{netip.MustParseAddr("fd99::2"), netip.MustParseAddr("fd99::3")}
	allClients = append(append([]netip.Addr(nil), clientsV4...), clientsV6...)
)

// newLink creates the server and client namespaces and the veth pair.
func newLink(tb testing.TB) link {
	tb.Helper()
	l := link{server: newNetNS(tb), client: newNetNS(tb)}
	mustIP(tb, "-n", l.server, "link", "add", "veth-s", "type", "veth", "peer", "name", "veth-c", "netns", l.client)
	mustIP(tb, "-n", l.server, "addr", "add", serverV4.String()+"/24", "dev", "veth-s")
	mustIP(tb, "-n", l.server, "addr", "add", serverV6.String()+"/64", "dev", "veth-s", "nodad")
	for _, a := range clientsV4 {
		mustIP(tb, "-n", l.client, "addr", "add", a.String()+"/24", "dev", "veth-c")
	}
	for _, a := range clientsV6 {
		mustIP(tb, "-n", l.client, "addr", "add", a.String()+"/64", "dev", "veth-c", "nodad")
	}
	mustIP(tb, "-n", l.server, "link", "set", "veth-s", "up")
	mustIP(tb, "-n", l.client, "link", "set", "veth-c", "up")
	return l
}

// listen serves TCP on port in the server namespace (both families),
// accepting and closing connections, until the test ends.
func (l link) listen(tb testing.TB, port int) {
	tb.Helper()
	var ln net.Listener
	inNetNS(tb, l.server, func() {
		var err error
		if ln, err = net.Listen("tcp", fmt.Sprintf("[::]:%d", port)); err != nil {
			tb.Fatal(err)
		}
	})
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

// dial connects from the client namespace, from address from, to the
// server's address of its family on port, and returns the error.
func (l link) dial(tb testing.TB, from netip.Addr, port int) error {
	tb.Helper()
	to := serverV4
	if from.Is6() {
		to = serverV6
	}
	var err error
	inNetNS(tb, l.client, func() {
		// Over a veth pair, the server's ICMP error for the first SYN
		// can come back while connect still holds its socket, which
		// then ignores it; the SYN sent again after a second gets it.
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: from.AsSlice()}, Timeout: 1500 * time.Millisecond}
		var c net.Conn
		if c, err = d.DialContext(context.Background(), "tcp", netip.AddrPortFrom(to, uint16(port)).String()); err == nil {
			c.Close()
		}
	})
	return err
}

// refused reports whether err is a connection the server's host refused
// (an ICMP port unreachable or a TCP reset), as a reject rule does.
func refused(err error) bool {
	return errors.Is(err, unix.ECONNREFUSED)
}

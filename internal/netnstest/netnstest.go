// Package netnstest gives tests network namespaces of their own (ip
// netns add), so that they can change a kernel's packet filter and send
// packets through it without touching the machine's: a namespace, a
// veth pair between a server and a client namespace, a TCP server and
// connections from a chosen source address. Without root, the ip
// command or namespaces, a test skips, saying what is missing.
package netnstest

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

var netnsCount atomic.Int64

// New creates a network namespace with its loopback up, deleted when
// the test ends, and returns its name.
func New(tb testing.TB) string {
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

// NeedCommand skips the test when the command name is missing, naming
// the Debian package that has it.
func NeedCommand(tb testing.TB, name, pkg string) {
	tb.Helper()
	if _, err := exec.LookPath(name); err != nil {
		tb.Skipf("needs the %s command (Debian package %s)", name, pkg)
	}
}

// Run runs f on a thread in the network namespace ns: the sockets f
// makes stay in it, and the processes it starts run in it.
func Run(tb testing.TB, ns string, f func()) {
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

// Link is a server namespace and a client namespace joined by a veth
// pair: the server has ServerV4 and ServerV6; the client has the
// addresses of ClientsV4 and ClientsV6, to ban one of each and not the
// other.
type Link struct {
	Server, Client string // the namespaces' names
}

// The addresses on a Link.
var (
	ServerV4   = netip.MustParseAddr("10.99.0.1")
	ServerV6   = netip.MustParseAddr("fd99::1")
	ClientsV4  = []netip.Addr{netip.MustParseAddr("10.99.0.2"), netip.MustParseAddr("10.99.0.3")}
	ClientsV6  = []netip.Addr{netip.MustParseAddr("fd99::2"), netip.MustParseAddr("fd99::3")}
	AllClients = append(append([]netip.Addr(nil), ClientsV4...), ClientsV6...)
)

// NewLink creates the server and client namespaces and the veth pair.
func NewLink(tb testing.TB) Link {
	tb.Helper()
	l := Link{Server: New(tb), Client: New(tb)}
	mustIP(tb, "-n", l.Server, "link", "add", "veth-s", "type", "veth", "peer", "name", "veth-c", "netns", l.Client)
	mustIP(tb, "-n", l.Server, "addr", "add", ServerV4.String()+"/24", "dev", "veth-s")
	mustIP(tb, "-n", l.Server, "addr", "add", ServerV6.String()+"/64", "dev", "veth-s", "nodad")
	for _, a := range ClientsV4 {
		mustIP(tb, "-n", l.Client, "addr", "add", a.String()+"/24", "dev", "veth-c")
	}
	for _, a := range ClientsV6 {
		mustIP(tb, "-n", l.Client, "addr", "add", a.String()+"/64", "dev", "veth-c", "nodad")
	}
	mustIP(tb, "-n", l.Server, "link", "set", "veth-s", "up")
	mustIP(tb, "-n", l.Client, "link", "set", "veth-c", "up")
	return l
}

// Listen serves TCP on port in the server namespace (both families),
// accepting and closing connections, until the test ends.
func (l Link) Listen(tb testing.TB, port int) {
	tb.Helper()
	var ln net.Listener
	Run(tb, l.Server, func() {
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

// Dial connects from the client namespace, from address from, to the
// server's address of its family on port, and returns the error: nil
// when the connection was made.
func (l Link) Dial(tb testing.TB, from netip.Addr, port int) error {
	tb.Helper()
	to := ServerV4
	if from.Is6() {
		to = ServerV6
	}
	var err error
	Run(tb, l.Client, func() {
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

// Refused reports whether err is a connection the server's host
// refused (an ICMP port unreachable or a TCP reset), as a reject rule
// does.
func Refused(err error) bool {
	return errors.Is(err, unix.ECONNREFUSED)
}

// Exec runs the command argv in namespace ns (ip netns exec) and
// returns its output, failing the test if it fails.
func Exec(tb testing.TB, ns string, argv ...string) string {
	tb.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s: %v: %s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

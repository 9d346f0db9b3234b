package firewall

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Host is the packet filter of one network namespace, shared by the
// firewall actions of a daemon. The jails' nftables actions share one
// table, which a jail creates when it starts and deletes when it stops
// as the last one; the Host runs those changes one at a time, so that a
// jail stopping never deletes the table under one starting.
type Host struct {
	netns string
	mu    sync.Mutex // held by a change of a table's chains, sets and rules
}

// NewHost returns the packet filter of the network namespace named
// netns, as ip-netns(8) names them (/run/netns/NAME), or with netns ""
// of the process's own.
func NewHost(netns string) *Host { return &Host{netns: netns} }

// Namespace is the name of the host's network namespace, "" for the
// process's own.
func (h *Host) Namespace() string { return h.netns }

// sendBuffer bounds a batch of changes sent at once: Sync replaces a
// set's elements in one batch, 50 bytes or so each. The kernel counts
// what a batch uses, not the bound.
const sendBuffer = 64 << 20

// dial opens a netlink connection to nftables in the host's namespace.
func (h *Host) dial() (*nftables.Conn, error) {
	opts := []nftables.ConnOption{nftables.AsLasting(), nftables.WithSockOptions(sockOptions)}
	if h.netns != "" {
		f, err := os.Open(filepath.Join("/run/netns", h.netns))
		if err != nil {
			return nil, fmt.Errorf("network namespace %s: %w", h.netns, err)
		}
		defer f.Close() // the socket, once made, stays in the namespace
		opts = append(opts, nftables.WithNetNSFd(int(f.Fd())))
	}
	return nftables.New(opts...)
}

// sockOptions sizes the netlink socket for large batches: its send
// buffer beyond net.core.wmem_max (SO_SNDBUFFORCE, which root may set,
// as nft does), and acknowledgements without a copy of the message
// acknowledged, so that the errors of a large batch fit the receive
// buffer.
func sockOptions(c *netlink.Conn) error {
	if err := c.SetOption(netlink.CapAcknowledge, true); err != nil {
		return fmt.Errorf("netlink: NETLINK_CAP_ACK: %w", err)
	}
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, sendBuffer)
	}); err != nil {
		return err
	}
	if serr != nil {
		// Without the privilege, what wmem_max allows: smaller
		// batches only.
		return c.SetWriteBuffer(sendBuffer)
	}
	return nil
}

// run runs the command argv in the host's namespace (through ip netns
// exec), with stdin, and returns its standard output. A failure is an
// error with what the command wrote to its standard error.
func (h *Host) run(ctx context.Context, stdin string, argv ...string) (string, error) {
	if h.netns != "" {
		argv = append([]string{"ip", "netns", "exec", h.netns}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		var ee *exec.ExitError
		if errors.As(err, &ee) && msg != "" {
			return stdout.String(), &CommandError{Argv: argv, Code: ee.ExitCode(), Stderr: msg}
		}
		return stdout.String(), fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	return stdout.String(), nil
}

// CommandError is a command that exited with a failure.
type CommandError struct {
	Argv   []string
	Code   int
	Stderr string // what it wrote to its standard error, trimmed
}

func (e *CommandError) Error() string {
	name := strings.Join(e.Argv, " ")
	if len(name) > 120 {
		name = name[:120] + "..."
	}
	return fmt.Sprintf("%s: exit status %d: %s", name, e.Code, e.Stderr)
}

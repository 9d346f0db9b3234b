package mail

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// DefaultSendmail is where the sendmail program is, as in fail2ban's
// sendmail actions.
const DefaultSendmail = "/usr/sbin/sendmail"

// Sendmail sends messages through the local sendmail program (Postfix's,
// Exim's, msmtp's... all take these arguments).
type Sendmail struct {
	// Path is the program; "" is DefaultSendmail.
	Path string
	// Args are extra arguments, given before edgeban's own.
	Args []string
}

// Send runs `sendmail [Args...] -i -f FROM -- TO...` with msg on its
// standard input, without a shell, and waits for it within ctx. -i keeps
// a line that is a lone "." from ending the message; "--" keeps a
// recipient from being read as an option.
func (s *Sendmail) Send(ctx context.Context, from string, to []string, msg []byte) error {
	path := s.Path
	if path == "" {
		path = DefaultSendmail
	}
	args := append(append([]string(nil), s.Args...), "-i", "-f", from, "--")
	cmd := exec.CommandContext(ctx, path, append(args, to...)...)
	cmd.Stdin = bytes.NewReader(msg)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		if said := strings.TrimSpace(out.String()); said != "" {
			const max = 500
			if len(said) > max {
				said = said[:max] + "..."
			}
			return fmt.Errorf("sendmail %s: %w: %q", path, err, said)
		}
		return fmt.Errorf("sendmail %s: %w", path, err)
	}
	return nil
}

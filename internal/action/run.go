package action

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// DefaultTimeout bounds one command when the action sets no timeout, as
// in fail2ban.
const DefaultTimeout = 60 * time.Second

var (
	// tagRE finds a tag in a command, as fail2ban's TAG_CRE.
	tagRE = regexp.MustCompile(`<([^ <>]+)>`)
	// fieldTagRE finds a filter's capture group tag, such as <F-USER>.
	fieldTagRE = regexp.MustCompile(`<F-([A-Z0-9_\-]+)>`)
	// unsafeRE finds a character that the shell could read as more than
	// text: a value holding one is passed as an argument, not as text.
	unsafeRE = regexp.MustCompile("[\\\\#&;`|*?~<>^()\\[\\]{}$'\"\n\r]")
	// nonWordRE finds what a shell variable name cannot hold.
	nonWordRE = regexp.MustCompile(`\W`)
)

// Script is a command ready to run: the shell script and the values it
// reads as its positional parameters, $1, $2...
type Script struct {
	Text string
	Args []string
}

// Argv returns the command line that runs the script with sh ($0 is
// "sh").
func (s Script) Argv() []string {
	return append([]string{"/bin/sh", "-c", s.Text, "sh"}, s.Args...)
}

// Prepare replaces the tags of command with a ban's values, as fail2ban
// does before it runs a command: a <tag> takes values[tag] (<br> and
// <sp> stand for a newline and a space), then a capture group tag such
// as <F-USER> takes fields["user"] (fields by fail2ban's group names:
// "fid" for <F-ID>), or nothing. A tag with no value is left as it is.
//
// A value that holds a character the shell treats specially, which a
// value taken from a log line may (a user name such as
// `$(touch /tmp/pwned);'"`), is never written into the script: the
// script reads it from a positional argument into a variable, f2bV_TAG,
// and uses $f2bV_TAG in its place, as fail2ban does.
func Prepare(command string, values, fields map[string]string) Script {
	var names, args []string
	escape := func(tag, v string) string {
		if !unsafeRE.MatchString(v) {
			return v
		}
		name := "f2bV_" + nonWordRE.ReplaceAllString(tag, "_")
		for i, n := range names {
			if n == name {
				args[i] = v
				return "$" + name
			}
		}
		names, args = append(names, name), append(args, v)
		return "$" + name
	}
	text := tagRE.ReplaceAllStringFunc(command, func(m string) string {
		tag := m[1 : len(m)-1]
		if v, ok := values[tag]; ok {
			return escape(tag, v)
		}
		switch tag {
		case "br":
			return "\n"
		case "sp":
			return " "
		}
		return m
	})
	if strings.Contains(text, "<") {
		text = fieldTagRE.ReplaceAllStringFunc(text, func(m string) string {
			name := fieldName(m[3 : len(m)-1])
			v, ok := fields[name]
			if !ok {
				return ""
			}
			return escape("F_"+name, v)
		})
	}
	if len(names) > 0 {
		var b strings.Builder
		for i, n := range names {
			fmt.Fprintf(&b, "%s=$%d ", n, i+1)
		}
		b.WriteString("\n")
		b.WriteString(text)
		text = b.String()
	}
	return Script{Text: text, Args: args}
}

// fieldName is fail2ban's group name for the capture group tag F-NAME.
func fieldName(tag string) string {
	switch tag = strings.ToLower(tag); tag {
	case "id":
		return "fid"
	case "port":
		return "fport"
	}
	return tag
}

// ExitError is a command that ran and failed.
type ExitError struct {
	Code   int    // the exit status, -1 when killed
	Stderr string // what it wrote to stderr, trimmed
}

func (e *ExitError) Error() string {
	if e.Stderr == "" {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return fmt.Sprintf("exit status %d: %s", e.Code, e.Stderr)
}

// Run runs s with /bin/sh and waits at most timeout (DefaultTimeout when
// 0) or until ctx ends; on either it kills the whole process group, so
// that a command's children do not outlive it. It returns the command's
// stdout, and an *ExitError when it exits non-zero.
func Run(ctx context.Context, s Script, timeout time.Duration) (string, error) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	argv := s.Argv()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	return result(ctx, timeout, cmd.Run(), &stdout, &stderr)
}

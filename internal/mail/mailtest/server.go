// Package mailtest runs an SMTP server on loopback for tests, as
// net/http/httptest does for HTTP: it takes every message it is given
// and hands it to the test as it arrived, dot-unstuffed.
//
// It is strict where a real MTA is: a bare CR or LF in DATA is refused
// (as Postfix and Exim refuse them since the SMTP smuggling reports), as
// are commands out of order, and AUTH before TLS unless the server has
// no TLS.
package mailtest

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeban/edgeban/internal/tcptest"
)

// Message is one message the server took.
type Message struct {
	Hello string   // the EHLO or HELO name
	From  string   // MAIL FROM, without the angle brackets
	To    []string // RCPT TO, in order
	Data  []byte   // the content, dot-unstuffed, CRLF line breaks
	TLS   bool     // whether it came over TLS (STARTTLS)
	User  string   // the AUTH PLAIN user, "" for none
}

// Server is an SMTP server on 127.0.0.1.
type Server struct {
	*tcptest.Server

	tls      *tls.Config
	users    map[string]string
	messages chan Message
	quit     chan struct{} // closed by Close
	once     sync.Once
}

// Options configure a Server.
type Options struct {
	// TLS, when set, makes the server offer STARTTLS with it.
	TLS *tls.Config
	// Users, when set, are the AUTH PLAIN users and passwords the server
	// offers and requires.
	Users map[string]string
}

// NewServer starts a server, stopped when the test ends.
func NewServer(t testing.TB, opts Options) *Server {
	t.Helper()
	s := &Server{tls: opts.TLS, users: opts.Users, messages: make(chan Message, 100), quit: make(chan struct{})}
	s.Server = tcptest.Start(t, s.session)
	t.Cleanup(s.Close)
	return s
}

// Close stops the server and waits for its connections to end.
func (s *Server) Close() {
	s.once.Do(func() { close(s.quit) })
	s.Server.Close()
}

// Messages delivers the messages the server takes, in order. The
// server holds up to 100 not yet received; beyond that, a client waits.
func (s *Server) Messages() <-chan Message { return s.messages }

// Next returns the next message the server takes, failing the test if
// none comes within wait.
func (s *Server) Next(t testing.TB, wait time.Duration) Message {
	t.Helper()
	select {
	case m := <-s.messages:
		return m
	case <-time.After(wait):
		t.Fatalf("mailtest: no message within %v", wait)
		return Message{}
	}
}

// None fails the test if a message comes within wait.
func (s *Server) None(t testing.TB, wait time.Duration) {
	t.Helper()
	select {
	case m := <-s.messages:
		t.Fatalf("mailtest: unexpected message:\n%s", m.Data)
	case <-time.After(wait):
	}
}

// session is one SMTP conversation.
type session struct {
	s    *Server
	c    net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	msg  Message
	tls  bool
	user string
}

func (s *Server) session(c net.Conn) {
	c.SetDeadline(time.Now().Add(30 * time.Second))
	ss := &session{s: s, c: c, r: bufio.NewReader(c), w: bufio.NewWriter(c)}
	ss.reply("220 mailtest ESMTP")
	for {
		line, err := ss.line()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO", "HELO":
			ss.msg = Message{Hello: arg, TLS: ss.tls, User: ss.user}
			ext := []string{"250-mailtest", "250-8BITMIME"}
			if s.tls != nil && !ss.tls {
				ext = append(ext, "250-STARTTLS")
			}
			if s.users != nil && (ss.tls || s.tls == nil) {
				ext = append(ext, "250-AUTH PLAIN")
			}
			ss.reply(append(ext, "250 HELP")...)
		case "STARTTLS":
			if s.tls == nil || ss.tls {
				ss.reply("502 no TLS here")
				continue
			}
			ss.reply("220 go ahead")
			tc := tls.Server(c, s.tls)
			if err := tc.Handshake(); err != nil {
				return
			}
			ss.c, ss.r, ss.w, ss.tls = tc, bufio.NewReader(tc), bufio.NewWriter(tc), true
			ss.msg = Message{}
		case "AUTH":
			ss.auth(arg)
		case "MAIL":
			from, ok := path(arg, "FROM:")
			switch {
			case ss.msg.Hello == "":
				ss.reply("503 EHLO first")
			case s.users != nil && ss.user == "":
				ss.reply("530 authentication required")
			case !ok:
				ss.reply("501 syntax: MAIL FROM:<address>")
			default:
				ss.msg.From = from
				ss.reply("250 ok")
			}
		case "RCPT":
			to, ok := path(arg, "TO:")
			switch {
			case ss.msg.From == "":
				ss.reply("503 MAIL first")
			case !ok || to == "":
				ss.reply("501 syntax: RCPT TO:<address>")
			default:
				ss.msg.To = append(ss.msg.To, to)
				ss.reply("250 ok")
			}
		case "DATA":
			if len(ss.msg.To) == 0 {
				ss.reply("503 RCPT first")
				continue
			}
			ss.reply("354 end with <CRLF>.<CRLF>")
			data, err := ss.data()
			if errors.Is(err, errBareLineBreak) {
				ss.reply("550 bare CR or LF in the message")
				ss.msg = Message{Hello: ss.msg.Hello, TLS: ss.tls, User: ss.user}
				continue
			}
			if err != nil {
				return
			}
			m := ss.msg
			m.Data, m.TLS, m.User = data, ss.tls, ss.user
			select {
			case s.messages <- m:
			case <-s.quit:
				return
			}
			ss.msg = Message{Hello: m.Hello, TLS: ss.tls, User: ss.user}
			ss.reply("250 queued")
		case "RSET":
			ss.msg = Message{Hello: ss.msg.Hello, TLS: ss.tls, User: ss.user}
			ss.reply("250 ok")
		case "NOOP":
			ss.reply("250 ok")
		case "QUIT":
			ss.reply("221 bye")
			return
		default:
			ss.reply("500 unknown command")
		}
	}
}

func (ss *session) reply(lines ...string) {
	for _, l := range lines {
		ss.w.WriteString(l + "\r\n")
	}
	ss.w.Flush()
}

// line reads one command line, which must end with CRLF.
func (ss *session) line() (string, error) {
	l, err := ss.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	if !strings.HasSuffix(l, "\r\n") {
		return "", errBareLineBreak
	}
	return strings.TrimSuffix(l, "\r\n"), nil
}

// path returns the address of "FROM:<addr>" or "TO:<addr>" (ESMTP
// parameters after it are ignored).
func path(arg, prefix string) (string, bool) {
	if len(arg) < len(prefix) || !strings.EqualFold(arg[:len(prefix)], prefix) {
		return "", false
	}
	rest := strings.TrimSpace(arg[len(prefix):])
	if !strings.HasPrefix(rest, "<") {
		return "", false
	}
	addr, _, ok := strings.Cut(rest[1:], ">")
	return addr, ok
}

func (ss *session) auth(arg string) {
	mech, initial, _ := strings.Cut(arg, " ")
	if ss.s.users == nil || !strings.EqualFold(mech, "PLAIN") || (ss.s.tls != nil && !ss.tls) {
		ss.reply("504 no such mechanism here")
		return
	}
	if initial == "" {
		ss.reply("334 ")
		l, err := ss.line()
		if err != nil {
			return
		}
		initial = l
	}
	raw, err := base64.StdEncoding.DecodeString(initial)
	parts := strings.Split(string(raw), "\x00")
	if err != nil || len(parts) != 3 {
		ss.reply("501 bad AUTH PLAIN")
		return
	}
	if pw, ok := ss.s.users[parts[1]]; !ok || pw != parts[2] {
		ss.reply("535 authentication failed")
		return
	}
	ss.user = parts[1]
	ss.msg.User = parts[1]
	ss.reply("235 authenticated")
}

var errBareLineBreak = errors.New("bare CR or LF")

// maxData bounds a message.
const maxData = 10 << 20

// data reads DATA's content up to the lone ".", removing the dot
// stuffing. A line that does not end with CRLF, or that holds a CR,
// makes it read on to the end and return errBareLineBreak.
func (ss *session) data() ([]byte, error) {
	var b bytes.Buffer
	bare := false
	for {
		l, err := ss.r.ReadBytes('\n')
		if err != nil {
			return nil, err
		}
		if !bytes.HasSuffix(l, []byte("\r\n")) || bytes.IndexByte(l[:len(l)-2], '\r') >= 0 {
			bare = true
		}
		if string(l) == ".\r\n" {
			break
		}
		if l[0] == '.' {
			l = l[1:]
		}
		if b.Len()+len(l) > maxData {
			return nil, fmt.Errorf("message over %d bytes", maxData)
		}
		b.Write(l)
	}
	if bare {
		return nil, errBareLineBreak
	}
	return b.Bytes(), nil
}

// Text returns the message's Subject header as written and its body,
// quoted-printable decoded, with "\n" line breaks; it fails the test if
// the message does not parse.
func (m Message) Text(t testing.TB) (subject, body string) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		t.Fatalf("%v:\n%s", err, m.Data)
	}
	b, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatal(err)
	}
	return msg.Header.Get("Subject"), strings.ReplaceAll(string(b), "\r\n", "\n")
}

// Package whoistest runs whois servers (RFC 3912) on loopback for
// tests: each answers a query line with what the test says, and closes
// the connection, as a registry's server does.
package whoistest

import (
	"bufio"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeban/edgeban/internal/tcptest"
)

// Server is a whois server on 127.0.0.1.
type Server struct {
	*tcptest.Server

	answer func(query string) string
	mu     sync.Mutex
	qs     []string
}

// NewServer starts a server whose answer to a query (the line received,
// without its CRLF) is answer(query); it is stopped when the test ends.
// An answer of Silent is no answer at all: the connection stays open,
// unanswered, until the client gives up.
func NewServer(t testing.TB, answer func(query string) string) *Server {
	t.Helper()
	s := &Server{answer: answer}
	s.Server = tcptest.Start(t, s.serve)
	t.Cleanup(s.Close)
	return s
}

// Silent, as an answer, makes the server answer nothing.
const Silent = "\x00silent"

// Queries returns the queries received so far, in order.
func (s *Server) Queries() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.qs...)
}

// serve answers the query of one connection.
func (s *Server) serve(c net.Conn) {
	c.SetDeadline(time.Now().Add(30 * time.Second))
	q, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return
	}
	q = strings.TrimSuffix(strings.TrimSuffix(q, "\n"), "\r")
	s.mu.Lock()
	s.qs = append(s.qs, q)
	s.mu.Unlock()
	a := s.answer(q)
	if a == Silent {
		var b [1]byte
		c.Read(b[:]) // until the client closes, or Close
		return
	}
	c.Write([]byte(a))
}

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
)

// Server is a whois server on 127.0.0.1.
type Server struct {
	// Addr is the server's host:port.
	Addr string

	l      net.Listener
	answer func(query string) string
	wg     sync.WaitGroup
	mu     sync.Mutex
	qs     []string
	conns  map[net.Conn]bool
	closed bool
}

// NewServer starts a server whose answer to a query (the line received,
// without its CRLF) is answer(query); it is stopped when the test ends.
// An answer of Silent is no answer at all: the connection stays open,
// unanswered, until the client gives up.
func NewServer(t testing.TB, answer func(query string) string) *Server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("whoistest: %v", err)
	}
	s := &Server{Addr: l.Addr().String(), l: l, answer: answer, conns: map[net.Conn]bool{}}
	s.wg.Go(s.serve)
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

// Close stops the server and waits for its connections to end.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.l.Close()
	s.wg.Wait()
}

func (s *Server) serve() {
	for {
		c, err := s.l.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Go(func() {
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
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
		})
	}
}

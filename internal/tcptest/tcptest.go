// Package tcptest runs TCP servers on loopback for tests, as
// net/http/httptest does for HTTP: each connection is served on a
// goroutine of its own, and Close ends them all and waits for them. The
// protocol test servers (mailtest, whoistest) are built on it.
package tcptest

import (
	"net"
	"sync"
	"testing"
)

// Server accepts connections on 127.0.0.1.
type Server struct {
	// Addr is the server's host:port.
	Addr string

	l      net.Listener
	handle func(net.Conn)
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]bool
	closed bool
}

// Start listens on a free port of 127.0.0.1 and serves each connection
// with handle, which need not close it. The caller stops the server
// with Close.
func Start(tb testing.TB, handle func(net.Conn)) *Server {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("tcptest: %v", err)
	}
	s := &Server{Addr: l.Addr().String(), l: l, handle: handle, conns: map[net.Conn]bool{}}
	s.wg.Go(s.serve)
	return s
}

// Close stops the server: it closes the listener and the connections
// still open, and waits for their handlers to return. It may be called
// more than once.
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
			s.handle(c)
		})
	}
}

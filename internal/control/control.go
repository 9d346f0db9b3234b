// Package control is the daemon's control channel: a Unix socket, mode
// 0600, over which the edgeban CLI sends fail2ban-client's commands
// (["status", "sshd"], ["set", "sshd", "banip", "192.0.2.1"]) and reads
// the answers. The protocol is line-oriented JSON: one request object per
// line, one response object per line, any number per connection.
package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// MaxLine bounds a request or a response line.
const MaxLine = 16 << 20

// Request is one command, as fail2ban-client's words.
type Request struct {
	Args []string `json:"args"`
}

// Response answers a request: Result when OK, Error otherwise.
type Response struct {
	OK     bool            `json:"ok"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
}

// Handler runs a command and returns its result, marshalled to JSON.
type Handler func(ctx context.Context, args []string) (any, error)

// Server serves a Handler on a Unix socket.
type Server struct {
	ln      net.Listener
	path    string
	handler Handler
	log     *slog.Logger
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   map[net.Conn]bool
	closed  bool
}

// Listen creates the socket at path, readable and writable by its owner
// only. A socket left there by a daemon that died is replaced; one that a
// running daemon answers on is an error.
func Listen(path string, h Handler, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("control: %s: another daemon is listening there", path)
	} else if fi, statErr := os.Lstat(path); statErr == nil {
		if fi.Mode()&os.ModeSocket == 0 || !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("control: %s exists and is not a stale socket: %w", path, err)
		}
		// Gone meanwhile is as good as removed.
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("control: remove stale socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	// Close removes the path itself, before it closes the listener.
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Chmod(path, 0o600); err != nil {
		os.Remove(path)
		ln.Close()
		return nil, fmt.Errorf("control: %w", err)
	}
	return &Server{ln: ln, path: path, handler: h, log: log, conns: map[net.Conn]bool{}}, nil
}

// Serve accepts connections until ctx ends or Close is called, and waits
// for the requests in progress before it returns.
func (s *Server) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			s.wg.Wait()
			if s.isClosed() {
				return ctx.Err()
			}
			return fmt.Errorf("control: %w", err)
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			continue
		}
		s.conns[c] = true
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(ctx, c)
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close stops listening, removes the socket and closes the connections.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	// The path goes before the listener: Serve returns once the listener
	// is closed, and by then a new daemon may have a socket at the path.
	os.Remove(s.path)
	return s.ln.Close()
}

func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 0, 64<<10), MaxLine)
	enc := json.NewEncoder(c)
	for sc.Scan() {
		var req Request
		resp := Response{}
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			resp.Error = "bad request: " + err.Error()
		} else if len(req.Args) == 0 {
			resp.Error = "empty command"
		} else if v, err := s.handler(ctx, req.Args); err != nil {
			resp.Error = err.Error()
		} else if b, err := json.Marshal(v); err != nil {
			resp.Error = "encode result: " + err.Error()
		} else {
			resp.OK, resp.Result = true, b
		}
		if err := enc.Encode(resp); err != nil {
			return
		}
	}
	if err := sc.Err(); err != nil && !s.isClosed() {
		s.log.Warn("control connection", "err", err)
		enc.Encode(Response{Error: "request: " + err.Error()})
	}
}

// Call sends one command to the daemon listening at path and returns
// its result; a command the daemon refuses is an error with its reason.
func Call(ctx context.Context, path string, args ...string) (json.RawMessage, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the edgeban daemon at %s (is edgeban serve running?): %w", path, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	if err := json.NewEncoder(c).Encode(Request{Args: args}); err != nil {
		return nil, fmt.Errorf("control: send: %w", err)
	}
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 0, 64<<10), MaxLine)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("control: read answer: %w", err)
		}
		return nil, errors.New("control: the daemon closed the connection without an answer")
	}
	var resp Response
	if err := json.Unmarshal(sc.Bytes(), &resp); err != nil {
		return nil, fmt.Errorf("control: bad answer: %w", err)
	}
	if !resp.OK {
		return nil, errors.New(resp.Error)
	}
	return resp.Result, nil
}

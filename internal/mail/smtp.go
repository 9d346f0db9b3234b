package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"strings"
)

// TLS modes of an SMTP transport.
const (
	TLSNone     = "no"       // plain SMTP (a local MTA)
	TLSStartTLS = "starttls" // STARTTLS, required, with the server's certificate verified
	TLSImplicit = "tls"      // TLS from the start (port 465), certificate verified
)

// SMTP sends messages to an SMTP server.
type SMTP struct {
	// Addr is the server's host:port.
	Addr string
	// Hello is the name given in EHLO; "" is "localhost".
	Hello string
	// TLS is one of TLSNone (""), TLSStartTLS and TLSImplicit.
	TLS string
	// TLSConfig configures the TLS client; nil verifies the server's
	// certificate for the host of Addr against the system's roots.
	TLSConfig *tls.Config
	// Username and Password, when Username is set, authenticate with
	// AUTH PLAIN, which is refused on a connection that is neither
	// encrypted nor to localhost.
	Username, Password string
}

// Send sends msg from the envelope sender from to the recipients to,
// within ctx: its deadline bounds the whole exchange, and its end cuts
// the connection. Lines of msg that start with "." are dot-stuffed.
func (s *SMTP) Send(ctx context.Context, from string, to []string, msg []byte) error {
	if err := s.send(ctx, from, to, msg); err != nil {
		return fmt.Errorf("smtp %s: %w", s.Addr, err)
	}
	return nil
}

func (s *SMTP) send(ctx context.Context, from string, to []string, msg []byte) (err error) {
	host, _, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return err
	}
	tlsConfig := s.TLSConfig
	if tlsConfig == nil {
		tlsConfig = &tls.Config{}
	}
	if tlsConfig.ServerName == "" {
		tlsConfig = tlsConfig.Clone()
		tlsConfig.ServerName = host
	}
	var conn net.Conn
	switch s.TLS {
	case TLSNone, "", TLSStartTLS:
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", s.Addr)
	case TLSImplicit:
		d := tls.Dialer{Config: tlsConfig}
		conn, err = d.DialContext(ctx, "tcp", s.Addr)
	default:
		return fmt.Errorf("unknown TLS mode %q (want %s, %s or %s)", s.TLS, TLSNone, TLSStartTLS, TLSImplicit)
	}
	if err != nil {
		return err
	}
	defer conn.Close()
	// ctx's end (its deadline too) cuts the connection, and then
	// ctx.Err() tells why.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer func() {
		stop()
		// The deadline or the cancellation cut the exchange: say so, not
		// only what the cut connection reported.
		if err != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w: %w", ctx.Err(), err)
		}
	}()
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return err
	}
	defer c.Close()
	hello := s.Hello
	if hello == "" {
		hello = "localhost"
	}
	if err := c.Hello(hello); err != nil {
		return err
	}
	if s.TLS == TLSStartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return errors.New("the server offers no STARTTLS")
		}
		if err := c.StartTLS(tlsConfig); err != nil {
			return fmt.Errorf("STARTTLS: %w", err)
		}
	}
	if s.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", s.Username, s.Password, host)); err != nil {
			return fmt.Errorf("AUTH: %w", err)
		}
	}
	if err := c.Mail(from); err != nil {
		return fmt.Errorf("MAIL FROM:<%s>: %w", from, err)
	}
	for _, rcpt := range to {
		if err := c.Rcpt(rcpt); err != nil {
			return fmt.Errorf("RCPT TO:<%s>: %w", rcpt, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("end of DATA: %w", err)
	}
	return c.Quit()
}

// ParseTLS returns the TLS mode named by s: "no" (or ""), "starttls" or
// "tls", in any case.
func ParseTLS(s string) (string, error) {
	switch m := strings.ToLower(strings.TrimSpace(s)); m {
	case "", TLSNone:
		return TLSNone, nil
	case TLSStartTLS, TLSImplicit:
		return m, nil
	}
	return "", fmt.Errorf("%q is not a TLS mode (want %s, %s or %s)", s, TLSNone, TLSStartTLS, TLSImplicit)
}

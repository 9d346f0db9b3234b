package mail

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeban/edgeban/internal/mail/mailtest"
)

// testMessage is a message with the lines SMTP must escape: a lone "."
// (the end of DATA), ".." and a line starting with a dot.
func testMessage(t *testing.T) []byte {
	t.Helper()
	m := Message{From: Address{Name: "Fail2Ban", Addr: "fail2ban@h.example"}, To: []Address{{Addr: "root"}, {Addr: "a@example.com"}},
		Subject: "s", Date: testDate, MessageID: NewMessageID("h.example"), Body: "one\n.\n..\n.dot\nQUIT\nlast\n"}
	raw, err := m.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// testTLS returns a server certificate for 127.0.0.1 and a client
// configuration that trusts it.
func testTLS(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mailtest"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, &tls.Config{RootCAs: pool}
}

// TestSMTPSend sends a message to a loopback SMTP server and checks that
// it arrives as it was sent, its dot lines unharmed, with the envelope
// given, over TLS and authenticated when so configured.
func TestSMTPSend(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	users := map[string]string{"edgeban": "s3cret"}
	tests := []struct {
		name     string
		opts     mailtest.Options
		smtp     SMTP
		wantTLS  bool
		wantUser string
		wantErr  string
	}{
		{"plain", mailtest.Options{}, SMTP{Hello: "h.example"}, false, "", ""},
		{"plain, STARTTLS offered", mailtest.Options{TLS: serverTLS}, SMTP{Hello: "h.example"}, false, "", ""},
		{"STARTTLS", mailtest.Options{TLS: serverTLS}, SMTP{Hello: "h.example", TLS: TLSStartTLS, TLSConfig: clientTLS}, true, "", ""},
		{"STARTTLS and AUTH", mailtest.Options{TLS: serverTLS, Users: users},
			SMTP{Hello: "h.example", TLS: TLSStartTLS, TLSConfig: clientTLS, Username: "edgeban", Password: "s3cret"}, true, "edgeban", ""},
		{"AUTH on loopback without TLS", mailtest.Options{Users: users},
			SMTP{Hello: "h.example", Username: "edgeban", Password: "s3cret"}, false, "edgeban", ""},
		{"STARTTLS not offered", mailtest.Options{}, SMTP{TLS: TLSStartTLS, TLSConfig: clientTLS}, false, "", "no STARTTLS"},
		{"untrusted certificate", mailtest.Options{TLS: serverTLS}, SMTP{TLS: TLSStartTLS}, false, "", "certificate"},
		{"wrong password", mailtest.Options{TLS: serverTLS, Users: users},
			SMTP{TLS: TLSStartTLS, TLSConfig: clientTLS, Username: "edgeban", Password: "guess"}, false, "", "AUTH"},
		{"AUTH required", mailtest.Options{Users: users}, SMTP{}, false, "", "MAIL FROM"},
		{"unknown TLS mode", mailtest.Options{}, SMTP{TLS: "maybe"}, false, "", "TLS mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := mailtest.NewServer(t, tt.opts)
			s := tt.smtp
			s.Addr = srv.Addr
			raw := testMessage(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := s.Send(ctx, "fail2ban@h.example", []string{"root", "a@example.com"}, raw)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), srv.Addr) {
					t.Fatalf("error %v, want one naming the server and %q", err, tt.wantErr)
				}
				srv.None(t, 50*time.Millisecond)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := srv.Next(t, 5*time.Second)
			if string(got.Data) != string(raw) {
				t.Fatalf("received:\n%q\nsent:\n%q", got.Data, raw)
			}
			wantHello := s.Hello
			if wantHello == "" {
				wantHello = "localhost"
			}
			if got.From != "fail2ban@h.example" || !slices.Equal(got.To, []string{"root", "a@example.com"}) || got.Hello != wantHello {
				t.Fatalf("envelope HELO %q FROM %q TO %q", got.Hello, got.From, got.To)
			}
			if got.TLS != tt.wantTLS || got.User != tt.wantUser {
				t.Fatalf("TLS %v user %q, want %v %q", got.TLS, got.User, tt.wantTLS, tt.wantUser)
			}
		})
	}
}

// TestSMTPTimeout sends to servers that never answer, or are not there:
// Send returns within its context's deadline, saying why.
func TestSMTPTimeout(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		var held []net.Conn // accepted, never answered
		for {
			c, err := silent.Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, c)
		}
	}()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	for _, tt := range []struct {
		name, addr string
		want       error
	}{
		{"silent", silent.Addr().String(), context.DeadlineExceeded},
		{"refused", closedAddr, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			s := SMTP{Addr: tt.addr}
			err := s.Send(ctx, "f@h.example", []string{"root"}, testMessage(t))
			if err == nil || !strings.Contains(err.Error(), tt.addr) {
				t.Fatalf("error %v, want one naming %s", err, tt.addr)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("Send took %v with a 300ms deadline", d)
			}
		})
	}
}

// fakeSendmail writes an executable that records its arguments and its
// standard input in dir, then runs script.
func fakeSendmail(t *testing.T, script string) (path, dir string) {
	t.Helper()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("needs /bin/sh for the fake sendmail program")
	}
	dir = t.TempDir()
	path = filepath.Join(dir, "sendmail")
	body := "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > \"$(dirname \"$0\")/argv\"\n" +
		"cat > \"$(dirname \"$0\")/stdin\"\n" + script + "\n"
	if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, dir
}

// TestSendmail runs a sendmail program that records what it was given:
// the arguments, without a shell, and the message on its input.
func TestSendmail(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		to       []string
		script   string
		wantArgv []string
		wantErr  string
	}{
		{"one recipient", nil, []string{"root"}, "exit 0",
			[]string{"-i", "-f", "fail2ban@h.example", "--", "root"}, ""},
		{"extra args and two recipients", []string{"-oi", "-C", "/etc/msmtprc"}, []string{"root", "a@example.com"}, "exit 0",
			[]string{"-oi", "-C", "/etc/msmtprc", "-i", "-f", "fail2ban@h.example", "--", "root", "a@example.com"}, ""},
		{"failure", nil, []string{"root"}, "echo 'sendmail: fatal: no such user' >&2; exit 75",
			[]string{"-i", "-f", "fail2ban@h.example", "--", "root"}, "exit status 75: \"sendmail: fatal: no such user\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, dir := fakeSendmail(t, tt.script)
			raw := testMessage(t)
			s := Sendmail{Path: path, Args: tt.args}
			err := s.Send(context.Background(), "fail2ban@h.example", tt.to, raw)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), path) {
					t.Fatalf("error %v, want one naming %s and %q", err, path, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			argv, _ := os.ReadFile(filepath.Join(dir, "argv"))
			if got := strings.Split(strings.TrimSuffix(string(argv), "\n"), "\n"); !slices.Equal(got, tt.wantArgv) {
				t.Fatalf("argv %q, want %q", got, tt.wantArgv)
			}
			stdin, _ := os.ReadFile(filepath.Join(dir, "stdin"))
			if string(stdin) != string(raw) {
				t.Fatalf("stdin:\n%q\nwant:\n%q", stdin, raw)
			}
		})
	}
}

func TestSendmailTimeout(t *testing.T) {
	path, _ := fakeSendmail(t, "sleep 30")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	s := Sendmail{Path: path}
	if err := s.Send(ctx, "f@h.example", []string{"root"}, testMessage(t)); err == nil {
		t.Fatal("a sendmail that never ends succeeded")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Send took %v with a 300ms deadline", d)
	}
	s = Sendmail{Path: filepath.Join(t.TempDir(), "missing")}
	if err := s.Send(context.Background(), "f@h.example", []string{"root"}, testMessage(t)); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("a missing sendmail: error %v", err)
	}
}

// TestFQDN compares FQDN with hostname --fqdn, which asks the resolver
// for the canonical name as Python's socket.getfqdn does.
func TestFQDN(t *testing.T) {
	out, err := exec.Command("hostname", "--fqdn").Output()
	if err != nil {
		t.Skipf("needs hostname --fqdn to compare with: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if got, want := FQDN(ctx, nil), strings.TrimSpace(string(out)); got != want {
		t.Fatalf("FQDN %q, hostname --fqdn %q", got, want)
	}
}

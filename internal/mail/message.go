// Package mail writes and sends the e-mails of edgeban's mail actions: an
// RFC 5322 message built so that no text put into it (a user name or a
// log line an attacker wrote) can add a header or end the message early,
// sent by SMTP or through the local sendmail program.
package mail

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"mime/quotedprintable"
	"strings"
	"time"
	"unicode/utf8"
)

// Address is a mailbox: a display name and an address.
type Address struct {
	Name string // may be empty; any text, encoded as needed
	Addr string // local@domain, or a local name ("root") for the local MTA
}

// ErrAddress is wrapped by the errors of an invalid address.
var ErrAddress = errors.New("invalid mail address")

// ParseAddress checks addr, a bare address as fail2ban's actions take
// them ("root", "admin@example.com"), and returns it as an Address.
//
// It accepts a dot-atom local part and an optional domain of letters,
// digits, dots and hyphens. That is narrower than RFC 5322 (no quoted
// local parts, no address literals, no UTF-8) on purpose: an address
// reaches an SMTP command line and sendmail's argv, so it must not hold
// spaces, angle brackets, line breaks or a leading "-".
func ParseAddress(addr string) (Address, error) {
	if err := checkAddr(addr); err != nil {
		return Address{}, err
	}
	return Address{Addr: addr}, nil
}

// ParseAddressList parses a comma-separated list of addresses, as
// fail2ban's dest ("root, admin@example.com").
func ParseAddressList(list string) ([]Address, error) {
	var out []Address
	for _, a := range strings.Split(list, ",") {
		a = strings.TrimSpace(a)
		addr, err := ParseAddress(a)
		if err != nil {
			return nil, err
		}
		out = append(out, addr)
	}
	return out, nil
}

func checkAddr(addr string) error {
	local, domain, hasDomain := strings.Cut(addr, "@")
	switch {
	case local == "":
		return fmt.Errorf("%w %q: no local part", ErrAddress, addr)
	case local[0] == '-':
		return fmt.Errorf("%w %q: starts with \"-\"", ErrAddress, addr)
	case local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, ".."):
		return fmt.Errorf("%w %q: misplaced dot", ErrAddress, addr)
	case hasDomain && !validDomain(domain):
		return fmt.Errorf("%w %q: domain", ErrAddress, addr)
	}
	for _, c := range []byte(local) {
		if !isAtext(c) && c != '.' {
			return fmt.Errorf("%w %q: character %q", ErrAddress, addr, c)
		}
	}
	return nil
}

// validDomain reports whether d is a host name: labels of letters,
// digits and inner hyphens, separated by dots.
func validDomain(d string) bool {
	if d == "" || len(d) > 253 {
		return false
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !isAlnum(c) && c != '-' {
				return false
			}
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// isAtext reports whether c is RFC 5322's atext (printable ASCII but
// specials and space).
func isAtext(c byte) bool {
	return isAlnum(c) || strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// Message is a plain-text e-mail.
type Message struct {
	From    Address
	To      []Address
	Subject string // any text, encoded as needed
	Date    time.Time
	// MessageID is the Message-ID without its angle brackets; see
	// NewMessageID.
	MessageID string
	// Body is text; its line breaks (\n, \r\n or a lone \r) are sent as
	// CRLF, and invalid UTF-8 as U+FFFD.
	Body string
}

// maxLine is RFC 5322's recommended line length, which headers are
// folded to where they can be.
const maxLine = 78

// Bytes returns the message as RFC 5322 text with CRLF line breaks: the
// headers From, To, Subject, Date, Message-ID, MIME-Version,
// Content-Type (text/plain; charset=utf-8), Content-Transfer-Encoding
// (quoted-printable) and Auto-Submitted (auto-generated, RFC 3834, so
// that no auto-responder answers), then the body.
//
// Names and the subject are written as they are when they are plain
// printable ASCII, else as RFC 2047 encoded words, so that a line break
// in them stays text and starts no header. The body is quoted-printable:
// its lines may be of any length, and no byte of it is a control
// character on the wire. Lines that are a lone "." are left to the
// transports, which escape them (SMTP's dot-stuffing, sendmail -i).
func (m *Message) Bytes() ([]byte, error) {
	if err := checkAddr(m.From.Addr); err != nil {
		return nil, fmt.Errorf("From: %w", err)
	}
	if len(m.To) == 0 {
		return nil, errors.New("no recipient")
	}
	for _, a := range m.To {
		if err := checkAddr(a.Addr); err != nil {
			return nil, fmt.Errorf("To: %w", err)
		}
	}
	if !validMessageID(m.MessageID) {
		return nil, fmt.Errorf("invalid Message-ID %q", m.MessageID)
	}
	var b bytes.Buffer
	header(&b, "From", mailbox(m.From))
	var to []string
	for i, a := range m.To {
		w := mailbox(a)
		if i < len(m.To)-1 {
			w[len(w)-1] += ","
		}
		to = append(to, w...)
	}
	header(&b, "To", to)
	header(&b, "Subject", unstructured(m.Subject))
	header(&b, "Date", []string{m.Date.Format("Mon, 02 Jan 2006 15:04:05 -0700")})
	header(&b, "Message-ID", []string{"<" + m.MessageID + ">"})
	header(&b, "MIME-Version", []string{"1.0"})
	header(&b, "Content-Type", []string{"text/plain;", "charset=utf-8"})
	header(&b, "Content-Transfer-Encoding", []string{"quoted-printable"})
	header(&b, "Auto-Submitted", []string{"auto-generated"})
	b.WriteString("\r\n")
	body := strings.ToValidUTF8(m.Body, "\uFFFD")
	body = strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(body)
	qp := quotedprintable.NewWriter(&b)
	qp.Write([]byte(body)) // writes to a bytes.Buffer do not fail
	qp.Close()
	if !strings.HasSuffix(body, "\n") {
		b.WriteString("\r\n")
	}
	return b.Bytes(), nil
}

// header writes a header whose value is words, separated by single
// spaces, folding between words to keep lines under maxLine where a word
// allows it.
func header(b *bytes.Buffer, name string, words []string) {
	b.WriteString(name)
	b.WriteByte(':')
	n := len(name) + 1
	for _, w := range words {
		if n+1+len(w) > maxLine && n > len(name)+1 {
			b.WriteString("\r\n")
			n = 0
		}
		b.WriteByte(' ')
		b.WriteString(w)
		n += 1 + len(w)
	}
	b.WriteString("\r\n")
}

// mailbox returns a's words: its name, if any, and its address in angle
// brackets.
func mailbox(a Address) []string {
	if a.Name == "" {
		return []string{"<" + a.Addr + ">"}
	}
	return append(phrase(a.Name), "<"+a.Addr+">")
}

// phrase returns the words of a display name: when it is printable
// ASCII words separated by single spaces, each word as an atom, or as a
// quoted string if it holds other characters; else, or when it looks
// like an encoded word, encoded words.
func phrase(s string) []string {
	if !plainWords(s) || strings.Contains(s, "=?") {
		return encodedWords(s)
	}
	words := strings.Split(s, " ")
	for i, w := range words {
		for _, c := range []byte(w) {
			if !isAtext(c) {
				words[i] = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(w) + `"`
				break
			}
		}
	}
	return words
}

// unstructured returns the words of an unstructured header value (the
// subject): its words when it is plain text, else encoded words.
func unstructured(s string) []string {
	if s == "" {
		return nil
	}
	if !plainWords(s) || strings.Contains(s, "=?") {
		return encodedWords(s)
	}
	return strings.Split(s, " ")
}

// plainWords reports whether s is printable ASCII words separated by
// single spaces, with no word longer than a header line allows: text
// that reads back the same after folding and unfolding.
func plainWords(s string) bool {
	if s == "" {
		return true
	}
	for _, w := range strings.Split(s, " ") {
		if w == "" || len(w) > maxLine-len("Subject: ") {
			return false
		}
		for _, c := range []byte(w) {
			if c <= ' ' || c > '~' {
				return false
			}
		}
	}
	return true
}

// encodedWordMax is RFC 2047's limit on the length of an encoded word.
const encodedWordMax = 75

// encodedWords returns s as RFC 2047 Q-encoded words of UTF-8 (invalid
// UTF-8 as U+FFFD), none longer than encodedWordMax and none splitting a
// character. Only letters, digits and "!*+-/" stay as they are (space is
// "_"), which RFC 2047 allows in a phrase as well as in unstructured
// text; everything else, "\r" and "\n" included, is =XX.
func encodedWords(s string) []string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	const prefix, suffix = "=?utf-8?q?", "?="
	room := encodedWordMax - len(prefix) - len(suffix)
	var words []string
	var w strings.Builder
	for len(s) > 0 {
		_, size := utf8.DecodeRuneInString(s)
		var enc strings.Builder
		for _, c := range []byte(s[:size]) {
			switch {
			case c == ' ':
				enc.WriteByte('_')
			case isAlnum(c) || strings.IndexByte("!*+-/", c) >= 0:
				enc.WriteByte(c)
			default:
				fmt.Fprintf(&enc, "=%02X", c)
			}
		}
		if w.Len()+enc.Len() > room {
			words = append(words, prefix+w.String()+suffix)
			w.Reset()
		}
		w.WriteString(enc.String())
		s = s[size:]
	}
	return append(words, prefix+w.String()+suffix)
}

// NewMessageID returns a new, unique Message-ID (without its angle
// brackets) at host, or at "localhost" when host is not a host name.
func NewMessageID(host string) string {
	var r [16]byte
	rand.Read(r[:])
	if !validDomain(host) {
		host = "localhost"
	}
	return fmt.Sprintf("%d.%s@%s", time.Now().Unix(), hex.EncodeToString(r[:]), host)
}

// validMessageID reports whether id is dot-atom "@" domain, as
// NewMessageID makes them.
func validMessageID(id string) bool {
	local, domain, ok := strings.Cut(id, "@")
	return ok && checkAddr(local) == nil && validDomain(domain)
}

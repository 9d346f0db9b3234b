package mail

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"mime"
	"mime/quotedprintable"
	netmail "net/mail"
	"slices"
	"strings"
	"testing"
	"time"
)

var testDate = time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("", 3600))

// TestMessageBytesExact spells one message out byte for byte: the
// headers, their order and folding, and the quoted-printable body.
func TestMessageBytesExact(t *testing.T) {
	m := Message{
		From:      Address{Name: "Fail2Ban", Addr: "root@host.example"},
		To:        []Address{{Addr: "root"}, {Addr: "admin@example.com"}},
		Subject:   "[Fail2Ban] sshd: banned 192.0.2.7 from host.example",
		Date:      testDate,
		MessageID: "1.ab@host.example",
		Body:      "Hi,\n\nA line = with an equals sign, \u00e9, and trailing space \n.\nlast",
	}
	got, err := m.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	want := "From: Fail2Ban <root@host.example>\r\n" +
		"To: <root>, <admin@example.com>\r\n" +
		"Subject: [Fail2Ban] sshd: banned 192.0.2.7 from host.example\r\n" +
		"Date: Wed, 04 Mar 2026 05:06:07 +0100\r\n" +
		"Message-ID: <1.ab@host.example>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"Content-Transfer-Encoding: quoted-printable\r\n" +
		"Auto-Submitted: auto-generated\r\n" +
		"\r\n" +
		"Hi,\r\n" +
		"\r\n" +
		"A line =3D with an equals sign, =C3=A9, and trailing space=20\r\n" +
		".\r\n" +
		"last\r\n"
	if string(got) != want {
		t.Fatalf("message:\n%q\nwant:\n%q", got, want)
	}
}

// TestMessageHeaders builds messages whose names, subject and body hold
// what an attacker could put in a log line, parses them back with
// net/mail, and checks that every header is one of ours, holds what was
// given, and that the body reads back as given.
func TestMessageHeaders(t *testing.T) {
	tests := []struct {
		name, fromName, subject, body string
		wantBody                      string // "" for body with CRLF breaks
	}{
		{"plain", "Fail2Ban", "[Fail2Ban] sshd: banned 192.0.2.7 from h.example", "Hi,\nthere\n", ""},
		{"header injection in the subject", "Fail2Ban", "banned evil\r\nBcc: victim@example.com", "x\n", ""},
		{"header injection in the name", "Fail\r\nBcc: victim@example.com", "s", "x\n", ""},
		{"bare LF in the subject", "n", "a\nTo: x@example.com", "x\n", ""},
		{"encoded word look-alike", "=?utf-8?q?Bcc=3A_x?=", "=?utf-8?q?=0D=0ABcc:_x?=", "x\n", ""},
		{"non-ASCII", "Zoë Ålander", "Bannissement de l'adresse – réseau 東京", "é\n", ""},
		{"specials in the name", `The "jail", (sshd) <x>`, "s", "x\n", ""},
		{"invalid UTF-8", "bad\xff", "bad\xfe\xff subject", "bad \xff body\n", "bad \ufffd body\r\n"},
		{"long subject", "n", strings.Repeat("word ", 60) + "end", "x\n", ""},
		{"long word", "n", strings.Repeat("x", 300), "x\n", ""},
		{"double spaces", "two  spaces", "  leading and  double  spaces ", "x\n", ""},
		{"shell text", "$(touch /tmp/pwned)", "`id` $(touch /tmp/pwned)", "$(touch /tmp/pwned)\n", ""},
		{"SMTP end of data in the body", "n", "s", "before\r\n.\r\nQUIT\r\n", ""},
		{"dots", "n", "s", ".\n..\n.x\n", ""},
		{"lone CR in the body", "n", "s", "a\rb\n", "a\r\nb\r\n"},
		{"control characters", "n\x1b[31m", "s\x00\x07", "x\x00\x1b[2J\n", ""},
		{"a long body line", "n", "s", strings.Repeat("0123456789", 300) + "\n", ""},
		{"no final line break", "n", "s", "last", "last\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := Message{From: Address{Name: tt.fromName, Addr: "fail2ban@h.example"}, To: []Address{{Addr: "root"}},
				Subject: tt.subject, Date: testDate, MessageID: NewMessageID("h.example"), Body: tt.body}
			raw, err := m.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			want := tt.wantBody
			if want == "" {
				want = strings.NewReplacer("\r\n", "\r\n", "\n", "\r\n").Replace(tt.body)
			}
			checkMessage(t, raw, m, want)
		})
	}
}

// checkMessage parses raw and checks it is m: the headers we write and
// no other, each decoding to what m holds, and the body reading back as
// wantBody.
func checkMessage(t *testing.T, raw []byte, m Message, wantBody string) {
	t.Helper()
	checkWire(t, raw)
	msg, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("net/mail cannot read the message: %v\n%s", err, raw)
	}
	keys := slices.Sorted(maps.Keys(msg.Header))
	wantKeys := []string{"Auto-Submitted", "Content-Transfer-Encoding", "Content-Type", "Date", "From", "Message-Id", "Mime-Version", "Subject", "To"}
	if !slices.Equal(keys, wantKeys) {
		t.Fatalf("headers %q, want %q:\n%s", keys, wantKeys, raw)
	}
	for k, v := range msg.Header {
		if len(v) != 1 {
			t.Fatalf("header %s %d times:\n%s", k, len(v), raw)
		}
	}
	var dec mime.WordDecoder
	subject, err := dec.DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.ToValidUTF8(m.Subject, "\ufffd"); subject != want {
		t.Fatalf("Subject reads back as %q, want %q:\n%s", subject, want, raw)
	}
	from, err := msg.Header.AddressList("From")
	if err != nil {
		t.Fatalf("From: %v\n%s", err, raw)
	}
	if want := strings.ToValidUTF8(m.From.Name, "\ufffd"); len(from) != 1 || from[0].Name != want || from[0].Address != m.From.Addr {
		t.Fatalf("From reads back as %+v, want %q <%s>:\n%s", from, want, m.From.Addr, raw)
	}
	if got, want := msg.Header.Get("Date"), m.Date.Format(time.RFC1123Z); got != want {
		t.Fatalf("Date %q, want %q", got, want)
	}
	if d, err := msg.Header.Date(); err != nil || !d.Equal(m.Date) {
		t.Fatalf("Date reads back as %v (%v), want %v", d, err, m.Date)
	}
	if got, want := msg.Header.Get("Message-Id"), "<"+m.MessageID+">"; got != want {
		t.Fatalf("Message-ID %q, want %q", got, want)
	}
	for k, want := range map[string]string{"Mime-Version": "1.0", "Content-Type": "text/plain; charset=utf-8",
		"Content-Transfer-Encoding": "quoted-printable", "Auto-Submitted": "auto-generated"} {
		if got := msg.Header.Get(k); got != want {
			t.Fatalf("%s %q, want %q", k, got, want)
		}
	}
	body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatalf("body: %v", err)
	}
	if string(body) != wantBody {
		t.Fatalf("body reads back as %q, want %q", body, wantBody)
	}
}

// checkWire checks what SMTP requires of a message: CRLF line breaks
// only, lines of at most 998 bytes, 7-bit text.
func checkWire(t *testing.T, raw []byte) {
	t.Helper()
	if !bytes.HasSuffix(raw, []byte("\r\n")) {
		t.Fatalf("the message does not end with CRLF: %q", raw)
	}
	for i, l := range bytes.Split(raw[:len(raw)-2], []byte("\r\n")) {
		if bytes.ContainsAny(l, "\r\n") {
			t.Fatalf("line %d holds a bare CR or LF: %q", i+1, l)
		}
		if len(l) > 998 {
			t.Fatalf("line %d is %d bytes long", i+1, len(l))
		}
		for _, c := range l {
			if c >= 0x80 || c < ' ' && c != '\t' {
				t.Fatalf("line %d holds byte %#x: %q", i+1, c, l)
			}
		}
	}
}

func TestMessageFolding(t *testing.T) {
	m := Message{From: Address{Name: strings.Repeat("Name ", 30), Addr: "a@example.com"}, To: []Address{{Addr: "root"}},
		Subject: strings.Repeat("word ", 40) + strings.Repeat("é", 80), Date: testDate, MessageID: "x@example.com", Body: "b\n"}
	raw, err := m.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	head, _, _ := strings.Cut(string(raw), "\r\n\r\n")
	for _, l := range strings.Split(head, "\r\n") {
		if len(l) > 78+len("Subject: ") { // an encoded word is up to 75
			t.Errorf("header line of %d bytes: %q", len(l), l)
		}
	}
	if n := strings.Count(head, "\r\n "); n < 4 {
		t.Errorf("%d folds, want the long headers folded:\n%s", n, head)
	}
}

func TestMessageInvalid(t *testing.T) {
	ok := Message{From: Address{Addr: "a@example.com"}, To: []Address{{Addr: "root"}}, MessageID: "1@example.com", Date: testDate}
	tests := []struct {
		name string
		edit func(*Message)
		want string
	}{
		{"from", func(m *Message) { m.From.Addr = "a b@example.com" }, "From"},
		{"injected from", func(m *Message) { m.From.Addr = "a@example.com>\r\nBcc: x@example.com" }, "From"},
		{"no recipient", func(m *Message) { m.To = nil }, "no recipient"},
		{"to", func(m *Message) { m.To = []Address{{Addr: "<x>"}} }, "To"},
		{"message id", func(m *Message) { m.MessageID = "x>\r\nBcc: y@example.com" }, "Message-ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := ok
			tt.edit(&m)
			if _, err := m.Bytes(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one naming %q", err, tt.want)
			}
		})
	}
	if _, err := ok.Bytes(); err != nil {
		t.Fatalf("the valid message: %v", err)
	}
}

func TestParseAddressList(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{"root", []string{"root"}, false},
		{"root@localhost", []string{"root@localhost"}, false},
		{"a@example.com, b.c+tag@mail.example.org", []string{"a@example.com", "b.c+tag@mail.example.org"}, false},
		{"o'brien@example.ie", []string{"o'brien@example.ie"}, false},
		{"", nil, true},
		{"a@example.com,", nil, true},
		{"-oQ/tmp/x@example.com", nil, true},
		{"a b@example.com", nil, true},
		{"<a@example.com>", nil, true},
		{"Name <a@example.com>", nil, true},
		{"a@example.com\r\nBcc: b@example.com", nil, true},
		{"a@-example.com", nil, true},
		{"a@exa_mple.com", nil, true},
		{"a@", nil, true},
		{".a@example.com", nil, true},
		{"a..b@example.com", nil, true},
		{"\"quoted\"@example.com", nil, true},
		{"zoë@example.com", nil, true},
		{"root@<fq-hostname>", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseAddressList(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrAddress) {
					t.Fatalf("%q: error %v, want ErrAddress", tt.in, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var addrs []string
			for _, a := range got {
				addrs = append(addrs, a.Addr)
			}
			if !slices.Equal(addrs, tt.want) {
				t.Fatalf("%q: %q, want %q", tt.in, addrs, tt.want)
			}
		})
	}
}

func TestNewMessageID(t *testing.T) {
	seen := map[string]bool{}
	for _, host := range []string{"h.example", "bad host\r\n", ""} {
		id := NewMessageID(host)
		if !validMessageID(id) || seen[id] {
			t.Fatalf("NewMessageID(%q) = %q: invalid or repeated", host, id)
		}
		seen[id] = true
		if _, domain, _ := strings.Cut(id, "@"); host == "h.example" && domain != host || host != "h.example" && domain != "localhost" {
			t.Fatalf("NewMessageID(%q) = %q", host, id)
		}
	}
}

// FuzzMessage builds messages from arbitrary names, subjects and bodies
// and checks that they read back as given, with our headers only.
func FuzzMessage(f *testing.F) {
	f.Add("Fail2Ban", "[Fail2Ban] sshd: banned 192.0.2.7 from h.example", "Hi,\n")
	f.Add("evil\r\nBcc: v@example.com", "a\r\nBcc: v@example.com", "\r\n.\r\nQUIT\r\n")
	f.Add("=?utf-8?b?QmNjOg==?=", "=?utf-8?q?x?=", "=41\n")
	f.Add("Zoë", "東京 – réseau", "\xff\xfe")
	f.Fuzz(func(t *testing.T, name, subject, body string) {
		m := Message{From: Address{Name: name, Addr: "f@h.example"}, To: []Address{{Addr: "root"}},
			Subject: subject, Date: testDate, MessageID: "1.a@h.example", Body: body}
		raw, err := m.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		want := strings.ToValidUTF8(body, "\ufffd")
		want = strings.NewReplacer("\r\n", "\r\n", "\r", "\r\n", "\n", "\r\n").Replace(want)
		if !strings.HasSuffix(want, "\r\n") {
			want += "\r\n"
		}
		checkMessage(t, raw, m, want)
	})
}

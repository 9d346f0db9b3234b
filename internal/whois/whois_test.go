package whois

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeban/edgeban/internal/whois/whoistest"
)

// The answers below are made up, in the formats of IANA, ARIN and RIPE,
// for documentation addresses.

func ianaAnswer(refer string) string {
	return "% IANA WHOIS server\n% for more information on IANA, visit http://www.iana.org\n% This query returned 1 object\n\n" +
		"refer:        " + refer + "\n\n" +
		"inetnum:      198.0.0.0 - 198.255.255.255\norganisation: ARIN\nstatus:       ALLOCATED\n\n" +
		"whois:        " + refer + "\n\nchanged:      1993-05\nsource:       IANA\n"
}

func arinAnswer(referral string) string {
	return "#\n# ARIN WHOIS data and services are subject to the Terms of Use\n#\n\n" +
		"NetRange:       198.51.0.0 - 198.51.255.255\nCIDR:           198.51.0.0/16\nNetName:        EXAMPLE-BIG\n" +
		"Organization:   Example Carrier (EXC-1)\n\n" +
		"NetRange:       198.51.100.0 - 198.51.100.255\nCIDR:           198.51.100.0/24\nNetName:        EXAMPLE-EU-CUST\n" +
		"Organization:   Example Europe (EXE-9)\n" +
		"ReferralServer:  " + referral + "\nResourceLink:  https://rdap.example.net/\n\n" +
		"OrgName:        Example Europe\nCountry:        NL\nOrgAbuseEmail:  abuse@example-eu.net\n"
}

const ripeAnswer = "% This is the RIPE Database query service.\n% The objects are in RPSL format.\n\n" +
	"% Information related to '198.51.100.0 - 198.51.100.127'\n\n" +
	"% Abuse contact for '198.51.100.0 - 198.51.100.127' is 'abuse@hoster.example'\n\n" +
	"inetnum:        198.51.100.0 - 198.51.100.127\nnetname:        HOSTER-VPS\ndescr:          Virtual servers\n" +
	"country:        DE\norg:            ORG-HX1-RIPE\nadmin-c:        HX1-RIPE\nstatus:         ASSIGNED PA\n" +
	"source:         RIPE\n\norganisation:   ORG-HX1-RIPE\norg-name:       Hoster GmbH\ncountry:        DE\n" +
	"abuse-c:        HXA1-RIPE\n\n% This query was served by the RIPE Database Query Service\n"

// TestLookup follows a referral chain across three loopback servers, as
// IANA → ARIN → RIPE, and checks what each was asked and what came back.
func TestLookup(t *testing.T) {
	ip := netip.MustParseAddr("198.51.100.7")
	ripe := whoistest.NewServer(t, func(string) string { return ripeAnswer })
	arin := whoistest.NewServer(t, func(string) string { return arinAnswer("whois://" + ripe.Addr) })
	iana := whoistest.NewServer(t, func(string) string { return ianaAnswer(arin.Addr) })
	c := Client{Server: iana.Addr}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.Lookup(ctx, ip)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*whoistest.Server{iana, arin, ripe} {
		if q := s.Queries(); !slices.Equal(q, []string{"198.51.100.7"}) {
			t.Fatalf("server %s asked %q, want the address once", s.Addr, q)
		}
	}
	want := []Answer{
		{Server: iana.Addr, Text: ianaAnswer(arin.Addr), Referral: arin.Addr},
		{Server: arin.Addr, Text: arinAnswer("whois://" + ripe.Addr), Referral: ripe.Addr},
		{Server: ripe.Addr, Text: ripeAnswer},
	}
	if !slices.Equal(res.Answers, want) {
		t.Fatalf("answers\n%+v\nwant\n%+v", res.Answers, want)
	}
	wantSum := Summary{Server: ripe.Addr, Range: "198.51.100.0 - 198.51.100.127", NetName: "HOSTER-VPS", Org: "Hoster GmbH",
		Country: "DE", Abuse: "abuse@hoster.example"}
	if got := res.Summary(); got != wantSum {
		t.Fatalf("summary\n%+v\nwant\n%+v", got, wantSum)
	}
}

// TestLookupLimits checks the bounds: referral loops, the number of
// referrals, the size of an answer, and the charset of one that is not
// UTF-8.
func TestLookupLimits(t *testing.T) {
	ip := netip.MustParseAddr("192.0.2.1")
	ctx := context.Background()

	t.Run("loop", func(t *testing.T) {
		var a, b *whoistest.Server
		a = whoistest.NewServer(t, func(string) string { return "refer: " + b.Addr + "\n" })
		b = whoistest.NewServer(t, func(string) string { return "refer: " + a.Addr + "\n" })
		res, err := (&Client{Server: a.Addr}).Lookup(ctx, ip)
		if err != nil || len(res.Answers) != 2 || len(a.Queries()) != 1 || len(b.Queries()) != 1 {
			t.Fatalf("%d answers, %v; queries %q %q", len(res.Answers), err, a.Queries(), b.Queries())
		}
	})

	t.Run("max referrals", func(t *testing.T) {
		servers := make([]*whoistest.Server, 6)
		for i := len(servers) - 1; i >= 0; i-- {
			next := ""
			if i+1 < len(servers) {
				next = "ReferralServer: whois://" + servers[i+1].Addr + "/\n"
			}
			servers[i] = whoistest.NewServer(t, func(string) string { return next })
		}
		for _, tt := range []struct{ max, want int }{{0, 1 + DefaultMaxReferrals}, {1, 2}, {-1, 1}, {10, 6}} {
			res, err := (&Client{Server: servers[0].Addr, MaxReferrals: tt.max}).Lookup(ctx, ip)
			if err != nil || len(res.Answers) != tt.want {
				t.Fatalf("MaxReferrals %d: %d answers (%v), want %d", tt.max, len(res.Answers), err, tt.want)
			}
		}
	})

	t.Run("size", func(t *testing.T) {
		big := strings.Repeat("remarks: padding\n", 10000)
		s := whoistest.NewServer(t, func(string) string { return big })
		res, err := (&Client{Server: s.Addr, MaxAnswer: 1000}).Lookup(ctx, ip)
		if err != nil {
			t.Fatal(err)
		}
		if a, _ := res.Last(); !a.Truncated || a.Text != big[:1000] {
			t.Fatalf("truncated %v, %d bytes", a.Truncated, len(a.Text))
		}
	})

	t.Run("latin-1", func(t *testing.T) {
		s := whoistest.NewServer(t, func(string) string { return "inetnum: 192.0.2.0 - 192.0.2.255\ndescr: Soci\xe9t\xe9 d'acc\xe8s\n" })
		res, err := (&Client{Server: s.Addr}).Lookup(ctx, ip)
		if err != nil {
			t.Fatal(err)
		}
		if got := res.Summary().Org; got != "Société d'accès" {
			t.Fatalf("descr read as %q", got)
		}
	})
}

// TestLookupErrors checks that a server that refuses, one that never
// answers and a referral that fails give an error naming the server,
// within the deadline, with the answers received before.
func TestLookupErrors(t *testing.T) {
	ip := netip.MustParseAddr("203.0.113.9")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := l.Addr().String()
	l.Close()
	silent := whoistest.NewServer(t, func(string) string { return whoistest.Silent })
	toRefused := whoistest.NewServer(t, func(string) string { return "refer: " + refused + "\n" })
	tests := []struct {
		name, server, failed string
		answers              int
		want                 error
	}{
		{"refused", refused, refused, 0, syscall.ECONNREFUSED},
		{"silent", silent.Addr, silent.Addr, 0, context.DeadlineExceeded},
		{"referral refused", toRefused.Addr, refused, 1, syscall.ECONNREFUSED},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			res, err := (&Client{Server: tt.server}).Lookup(ctx, ip)
			if err == nil || !strings.Contains(err.Error(), "whois "+tt.failed+":") || !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v from %s", err, tt.want, tt.failed)
			}
			if len(res.Answers) != tt.answers {
				t.Fatalf("%d answers, want %d", len(res.Answers), tt.answers)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("took %v with a 300ms deadline", d)
			}
		})
	}
	if _, err := (&Client{Server: "no such server"}).Lookup(context.Background(), ip); err == nil {
		t.Fatal("an invalid server was accepted")
	}
}

// TestRestrictedReferral checks that a query made on a public server's
// referral does not connect to a loopback address.
func TestRestrictedReferral(t *testing.T) {
	s := whoistest.NewServer(t, func(string) string { return "x" })
	var c Client
	if _, _, err := c.query(context.Background(), s.Addr, netip.MustParseAddr("192.0.2.1"), true); !errors.Is(err, errRestricted) {
		t.Fatalf("a restricted query to %s: %v", s.Addr, err)
	}
	if len(s.Queries()) != 0 {
		t.Fatal("the restricted server was asked")
	}
	if _, _, err := c.query(context.Background(), s.Addr, netip.MustParseAddr("192.0.2.1"), false); err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{"193.0.6.135": true, "2001:67c:2e8:22::c100:68b": true, "127.0.0.1": false, "::1": false,
		"10.1.2.3": false, "192.168.0.1": false, "172.16.0.1": false, "169.254.169.254": false, "fe80::1": false, "fd00::1": false,
		"::ffff:127.0.0.1": false, "0.0.0.0": false, "224.0.0.1": false} {
		if got := isPublic(netip.MustParseAddr(addr)); got != want {
			t.Errorf("isPublic(%s) = %v", addr, got)
		}
	}
}

func TestQueryText(t *testing.T) {
	ip := netip.MustParseAddr("198.51.100.7")
	for server, want := range map[string]string{"whois.arin.net:43": "n + 198.51.100.7", "WHOIS.ARIN.NET:43": "n + 198.51.100.7",
		"whois.ripe.net:43": "198.51.100.7", "127.0.0.1:4343": "198.51.100.7"} {
		if got := queryText(server, ip); got != want {
			t.Errorf("queryText(%s) = %q, want %q", server, got, want)
		}
	}
}

func TestReferral(t *testing.T) {
	tests := []struct {
		text, want string
	}{
		{"refer:        whois.arin.net\n", "whois.arin.net:43"},
		{"% comment\n\nrefer: Whois.RIPE.net\nwhois: whois.other.net\n", "whois.ripe.net:43"},
		{"whois:        whois.lacnic.net\r\n", "whois.lacnic.net:43"},
		{"ReferralServer:  whois://whois.ripe.net\n", "whois.ripe.net:43"},
		{"ReferralServer:  whois://whois.apnic.net:43/\n", "whois.apnic.net:43"},
		{"ReferralServer: rwhois://rwhois.example.net:4321/\nrefer: whois.example.org\n", "whois.example.org:43"},
		{"ReferralServer: rwhois://rwhois.example.net:4321/\n", ""},
		{"ReferralServer: https://rdap.example.net/\n", ""},
		{"refer: 127.0.0.1:4343\n", "127.0.0.1:4343"},
		{"refer: [::1]:4343\n", "[::1]:4343"},
		{"refer: 2001:db8::43\n", "[2001:db8::43]:43"},
		{"refer: whois.example.net:0\n", ""},
		{"refer: whois.example.net:99999\n", ""},
		{"refer: whois.example.net:+43\n", ""},
		{"refer: -whois.example.net\n", ""},
		{"refer: whois.example.net; rm -rf /\n", ""},
		{"refer: $(touch /tmp/pwned)\n", ""},
		{"refer: whois.example.net\rBcc: x\n", ""},
		{"refer: fe80::1%eth0\n", ""},
		{"remarks: refer: whois.example.net\n", ""},
		{"refer:\n", ""},
		{"NetRange: 192.0.2.0 - 192.0.2.255\n", ""},
	}
	for _, tt := range tests {
		got, ok := Referral(tt.text)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("Referral(%q) = %q, %v; want %q", tt.text, got, ok, tt.want)
		}
	}
}

func TestSummarize(t *testing.T) {
	tests := []struct {
		name, text string
		want       Summary
	}{
		{"IANA", ianaAnswer("whois.arin.net"), Summary{Range: "198.0.0.0 - 198.255.255.255", Org: "ARIN"}},
		{"ARIN, the narrowest network", arinAnswer("whois://whois.ripe.net"), Summary{Range: "198.51.100.0 - 198.51.100.255",
			CIDR: "198.51.100.0/24", NetName: "EXAMPLE-EU-CUST", Org: "Example Europe", Country: "NL", Abuse: "abuse@example-eu.net"}},
		{"RIPE", ripeAnswer, Summary{Range: "198.51.100.0 - 198.51.100.127", NetName: "HOSTER-VPS", Org: "Hoster GmbH", Country: "DE",
			Abuse: "abuse@hoster.example"}},
		{"APNIC IPv6, description and abuse-mailbox", "inet6num:       2001:db8::/32\nnetname:        DOC-V6\n" +
			"descr:          Documentation network\ndescr:          second line\ncountry:        AU\n\n" +
			"irt:            IRT-DOC\nabuse-mailbox:  abuse@doc.example\n",
			Summary{Range: "2001:db8::/32", NetName: "DOC-V6", Org: "Documentation network", Country: "AU", Abuse: "abuse@doc.example"}},
		{"LACNIC owner", "inetnum:     203.0.113.0/24\nstatus:      allocated\nowner:       Provedor Exemplo\ncountry:     BR\n",
			Summary{Range: "203.0.113.0/24", Org: "Provedor Exemplo", Country: "BR"}},
		{"no network", "% No entries found for the selected source(s).\n", Summary{}},
		{"a long value", "inetnum: 192.0.2.0 - 192.0.2.255\nnetname: " + strings.Repeat("é", 150) + "\n",
			Summary{Range: "192.0.2.0 - 192.0.2.255", NetName: strings.Repeat("é", 100) + "..."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Summarize(tt.text); got != tt.want {
				t.Fatalf("summary\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

// FuzzReferral checks that whatever an answer says, a referral is a
// host:port of a host name or an IP address, and nothing else.
func FuzzReferral(f *testing.F) {
	f.Add(ianaAnswer("whois.arin.net"))
	f.Add(arinAnswer("rwhois://rwhois.example.net:4321"))
	f.Add("ReferralServer: whois://[2001:db8::1]:4343/x\n")
	f.Add("refer: 127.0.0.1:43\r\nrefer: whois.example.net\n")
	f.Fuzz(func(t *testing.T, text string) {
		s, ok := Referral(text)
		if !ok {
			if s != "" {
				t.Fatalf("not a referral, yet %q", s)
			}
			return
		}
		host, port, err := net.SplitHostPort(s)
		if err != nil || port == "" {
			t.Fatalf("referral %q: %v", s, err)
		}
		if _, err := netip.ParseAddr(host); err != nil && !hostName(host) {
			t.Fatalf("referral %q: host %q is neither an address nor a host name", s, host)
		}
		if again, ok := serverAddr(s); !ok || again != s {
			t.Fatalf("referral %q reads again as %q, %v", s, again, ok)
		}
		Summarize(text)
	})
}

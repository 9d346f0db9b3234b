package cloudflare

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"testing"
)

func TestRanges(t *testing.T) {
	rs := Ranges()
	var v4, v6 int
	for _, p := range rs {
		if p.Addr().Is4() {
			v4++
		} else {
			v6++
		}
	}
	if v4 != 15 || v6 != 7 {
		t.Errorf("%d IPv4 and %d IPv6 ranges, want 15 and 7", v4, v6)
	}
	rs[0] = netip.Prefix{}
	if !Ranges()[0].IsValid() {
		t.Error("Ranges shares its backing array")
	}
	// The embedded copy must hold the same prefixes as the shared reference files.
	for _, name := range []string{"ips-v4.txt", "ips-v6.txt"} {
		ref, err := os.ReadFile("../../../shared/cloudflare/" + name)
		if err != nil {
			t.Logf("reference %s not available: %v", name, err)
			continue
		}
		own, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Fields(string(ref)) == nil || strings.Join(strings.Fields(string(ref)), " ") != strings.Join(strings.Fields(string(own)), " ") {
			t.Errorf("%s differs from the shared reference", name)
		}
	}
}

func TestIsCloudflare(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"104.16.0.1", true},
		{"173.245.48.1", true},
		{"162.159.255.255", true},
		{"::ffff:104.16.0.1", true},
		{"2606:4700:4700::1111", true},
		{"2a06:98c7:ffff::1", true},
		{"2a06:98c8::1", false},
		{"198.51.100.4", false},
		{"1.1.1.1", false}, // Cloudflare's resolver, not an edge range
		{"2001:db8::1", false},
	}
	for _, tc := range tests {
		if got := IsCloudflare(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("IsCloudflare(%s) = %v", tc.addr, got)
		}
	}
	if IsCloudflare(netip.Addr{}) {
		t.Error("the zero Addr is Cloudflare")
	}
}

func TestFetchRanges(t *testing.T) {
	v4OK := "173.245.48.0/20\n103.21.244.0/22\n"
	v6OK := "2400:cb00::/32\r\n2606:4700::/32"
	tests := []struct {
		name     string
		v4, v6   string
		status   int
		wantErr  string
		wantSize int
	}{
		{"ok", v4OK, v6OK, 200, "", 4},
		{"trailing blank lines", v4OK + "\n\n", v6OK + "\n", 200, "", 4},
		{"empty", "", v6OK, 200, "no IPv4 prefixes", 0},
		{"html", "<html><body>Attention Required! | Cloudflare</body></html>", v6OK, 200, "not a CIDR prefix", 0},
		{"families swapped", v6OK, v4OK, 200, "not an IPv4 prefix", 0},
		{"host bits", "173.245.48.1/20\n", v6OK, 200, "host bits", 0},
		{"bare address", "173.245.48.1\n", v6OK, 200, "not a CIDR prefix", 0},
		{"too wide", "0.0.0.0/0\n", v6OK, 200, "implausibly wide", 0},
		{"mapped", "::ffff:104.16.0.0/109\n", v6OK, 200, "not an IPv4 prefix", 0},
		{"not found", v4OK, v6OK, 404, "HTTP 404", 0},
		{"huge", strings.Repeat("173.245.48.0/20\n", 5000), v6OK, 200, "larger than", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				w.WriteHeader(tc.status)
				if r.URL.Path == "/ips-v4" {
					w.Write([]byte(tc.v4))
				} else {
					w.Write([]byte(tc.v6))
				}
			}))
			defer srv.Close()
			got, err := FetchRanges(context.Background(), srv.Client(), srv.URL+"/ips-v4", srv.URL+"/ips-v6")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || len(got) != tc.wantSize {
				t.Fatalf("got %v, %v", got, err)
			}
			if got[0] != netip.MustParsePrefix("173.245.48.0/20") || got[3] != netip.MustParsePrefix("2606:4700::/32") {
				t.Errorf("got %v", got)
			}
		})
	}
}

func TestFetchRangesCancelled(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := FetchRanges(ctx, srv.Client(), srv.URL+"/a", srv.URL+"/b"); err == nil {
		t.Fatal("no error")
	}
}

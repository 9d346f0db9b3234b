package jail

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIgnoreList(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "allow.txt")
	if err := os.WriteFile(list, []byte("# office\n198.51.100.7  # printer\n203.0.113.0/25, 2001:db8:1::/48\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := ParseIgnoreIP("127.0.0.1/8 ::1, 192.0.2.0/255.255.255.0 10.1.2.3 2001:db8::/32 ::ffff:172.16.0.0/108 file:" + list + " backup-host-id")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id   string
		want bool
	}{
		{"127.0.0.1", true}, {"127.255.255.254", true}, {"::1", true},
		{"192.0.2.200", true}, {"192.0.3.1", false},
		{"10.1.2.3", true}, {"10.1.2.4", false},
		{"2001:db8:ffff::1", true}, {"2001:db9::1", false},
		{"::ffff:192.0.2.1", true}, // a mapped address is its IPv4 one
		{"172.16.200.1", true}, {"172.32.0.1", false},
		{"198.51.100.7", true}, {"198.51.100.8", false},
		{"203.0.113.100", true}, {"203.0.113.200", false},
		{"2001:db8:1:2::3", true},
		{"fe80::1%eth0", false},
		{"backup-host-id", true}, {"other-id", false}, {"", false},
	}
	for _, tt := range tests {
		if got := l.Contains(context.Background(), tt.id, nil); got != tt.want {
			t.Errorf("Contains(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
	for _, bad := range []string{"192.0.2.0/33", "192.0.2.0/255.0.255.0", "not an/address", "file:" + filepath.Join(dir, "missing")} {
		if _, err := ParseIgnoreIP(bad); err == nil {
			t.Errorf("ParseIgnoreIP(%q): no error", bad)
		}
	}
	nested := filepath.Join(dir, "nested.txt")
	if err := os.WriteFile(nested, []byte("192.0.2.1\nfile:"+list+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseIgnoreIP("file:" + nested); err == nil || !strings.Contains(err.Error(), "nested.txt:2") {
		t.Errorf("nested file list: %v", err)
	}
}

// TestIgnoreHostName resolves a name in the list with the system
// resolver: localhost, from /etc/hosts.
func TestIgnoreHostName(t *testing.T) {
	addrs, err := net.DefaultResolver.LookupNetIP(context.Background(), "ip", "localhost")
	if err != nil || len(addrs) == 0 {
		t.Skipf("localhost does not resolve here: %v", err)
	}
	l, err := ParseIgnoreIP("localhost")
	if err != nil {
		t.Fatal(err)
	}
	if !l.Contains(context.Background(), addrs[0].Unmap().String(), net.DefaultResolver) {
		t.Fatalf("%v not ignored", addrs[0])
	}
	if l.Contains(context.Background(), "192.0.2.1", net.DefaultResolver) {
		t.Fatal("192.0.2.1 ignored")
	}
}

// thousandJails returns 1,000 jails' ignoreip values, each with ten
// networks and addresses of its own and the usual loopback entries.
func thousandJails() []string {
	var out []string
	for j := 0; j < 1000; j++ {
		var b strings.Builder
		b.WriteString("127.0.0.1/8 ::1")
		for k := 0; k < 10; k++ {
			fmt.Fprintf(&b, " 10.%d.%d.0/24 2001:db8:%x:%x::/64 100.%d.%d.%d", j/256, j%256, j, k, 64+j%64, k, j%256)
		}
		out = append(out, b.String())
	}
	return out
}

func TestIgnoreThousandJails(t *testing.T) {
	values := thousandJails()
	all := strings.Join(values, " ")
	l, err := ParseIgnoreIP(all)
	if err != nil {
		t.Fatal(err)
	}
	if l.Len() < 10000 { // shared networks count once
		t.Fatalf("%d entries", l.Len())
	}
	for j := 0; j < 1000; j += 97 {
		for _, id := range []string{fmt.Sprintf("10.%d.%d.77", j/256, j%256), fmt.Sprintf("2001:db8:%x:3::1", j)} {
			if !l.Contains(context.Background(), id, nil) {
				t.Errorf("%s not ignored", id)
			}
		}
	}
	if l.Contains(context.Background(), "192.0.2.1", nil) {
		t.Error("192.0.2.1 ignored")
	}
}

func BenchmarkIgnoreContains(b *testing.B) {
	l, err := ParseIgnoreIP(strings.Join(thousandJails(), " "))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for b.Loop() {
		l.Contains(ctx, "192.0.2.1", nil)
		l.Contains(ctx, "10.3.200.1", nil)
	}
}

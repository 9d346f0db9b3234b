package firewall

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestParsePorts(t *testing.T) {
	services := map[string]uint16{"ssh": 22, "http": 80, "https": 443, "smtp": 25, "submission": 587, "ftp-data": 20, "ftp": 21}
	tests := []struct {
		name, in string
		want     Ports
		all      bool
		err      bool
	}{
		{name: "name", in: "ssh", want: Ports{{22, 22}}},
		{name: "names and numbers", in: "smtp,465,submission", want: Ports{{25, 25}, {465, 465}, {587, 587}}},
		{name: "sorted and merged", in: "https, http,81,82", want: Ports{{80, 82}, {443, 443}}},
		{name: "colon range", in: "1000:2000", want: Ports{{1000, 2000}}},
		{name: "dash range", in: "1000-2000,1500-2500", want: Ports{{1000, 2500}}},
		{name: "name with a dash", in: "ftp,ftp-data", want: Ports{{20, 21}}},
		{name: "every port", in: "0:65535", want: Ports{{0, 65535}}, all: true},
		{name: "every port in pieces", in: "0:100,101:65535", want: Ports{{0, 65535}}, all: true},
		{name: "built-in name", in: "imaps", want: Ports{{993, 993}}},
		{name: "unknown name", in: "nosuchservice", err: true},
		{name: "too big", in: "70000", err: true},
		{name: "reversed range", in: "20:10", err: true},
		{name: "empty", in: " , ", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePorts(tt.in, services)
			if tt.err {
				if err == nil {
					t.Fatalf("ParsePorts(%q) = %v, want an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParsePorts(%q) = %v, want %v", tt.in, got, tt.want)
			}
			if got.All() != tt.all {
				t.Errorf("%v.All() = %v", got, got.All())
			}
		})
	}
	if _, err := ParsePorts("ssh", nil); err == nil {
		t.Error("with no services, a name is accepted")
	}
}

func TestLoadServices(t *testing.T) {
	path := filepath.Join(t.TempDir(), "services")
	text := "# comment\nssh\t\t22/tcp\t\t\t\t# SSH Remote Login Protocol\nmy-svc 4444/udp alias1 alias2\nbroken\nbad 99999/tcp\n"
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	got := LoadServices(path)
	want := map[string]uint16{"ssh": 22, "my-svc": 4444, "alias1": 4444, "alias2": 4444}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("LoadServices = %v, want %v", got, want)
	}
	if got := LoadServices(filepath.Join(t.TempDir(), "none")); len(got) != 0 {
		t.Errorf("a missing file gives %v", got)
	}
}

func TestParseProtocols(t *testing.T) {
	tests := []struct {
		in   string
		want []string // nil: all
		err  bool
	}{
		{in: "tcp", want: []string{"tcp"}},
		{in: "tcp,udp", want: []string{"tcp", "udp"}},
		{in: "UDP, udp", want: []string{"udp"}},
		{in: "all"},
		{in: "icmp", err: true},
		{in: "", err: true},
	}
	for _, tt := range tests {
		got, err := ParseProtocols(tt.in)
		if tt.err != (err != nil) {
			t.Errorf("ParseProtocols(%q): error %v", tt.in, err)
			continue
		}
		var names []string
		for _, p := range got {
			names = append(names, p.Name)
		}
		if !reflect.DeepEqual(names, tt.want) {
			t.Errorf("ParseProtocols(%q) = %v, want %v", tt.in, names, tt.want)
		}
	}
}

func TestParseAddr(t *testing.T) {
	tests := []struct {
		in, want string
		err      bool
	}{
		{in: "192.0.2.1", want: "192.0.2.1"},
		{in: "2001:db8::1", want: "2001:db8::1"},
		{in: "::ffff:192.0.2.1", want: "192.0.2.1"},
		{in: "192.0.2.0/24", err: true},
		{in: "fe80::1%eth0", err: true},
		{in: "host.example", err: true},
		{in: "1.2.3.4; rm -rf /", err: true},
	}
	for _, tt := range tests {
		got, err := ParseAddr(tt.in)
		if tt.err != (err != nil) || (err == nil && got.String() != tt.want) {
			t.Errorf("ParseAddr(%q) = %v, %v", tt.in, got, err)
		}
	}
}

package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestReadServerStock reads fail2ban's stock fail2ban.conf, whose values
// the golden dump shows fail2ban setting.
func TestReadServerStock(t *testing.T) {
	s, err := ReadServer(sharedDir(t, "config"))
	if err != nil {
		t.Fatal(err)
	}
	want := Server{LogLevel: "INFO", LogTarget: "/var/log/fail2ban.log", SyslogSocket: "auto",
		Socket: "/run/edgeban/edgeban.sock", PidFile: "/var/run/fail2ban/fail2ban.pid",
		DBFile: "/var/lib/edgeban/edgeban.db", Fail2banDBFile: "/var/lib/fail2ban/fail2ban.sqlite3", DBPurgeAge: 24 * time.Hour, DBMaxMatches: 10}
	s.Pos = nil
	if !reflect.DeepEqual(*s, want) {
		t.Fatalf("got %+v\nwant %+v", *s, want)
	}
}

func TestReadServer(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		check   func(*Server) bool
		wantErr string
	}{
		{"no files: fail2ban's defaults", nil, func(s *Server) bool {
			return s.LogTarget == "STDERR" && s.DBMaxMatches == 10 && s.DBPurgeAge == 24*time.Hour
		}, ""},
		{"edgeban.conf wins", map[string]string{
			"fail2ban.conf":  "[DEFAULT]\nloglevel = INFO\ndbfile = /a.db\n[Definition]\n",
			"fail2ban.local": "[Definition]\ndbpurgeage = 7d\n",
			"edgeban.conf":   "[Definition]\ndbfile = /b.db\nsocket = /run/edgeban.sock\n",
		}, func(s *Server) bool {
			return s.DBFile == "/b.db" && s.Fail2banDBFile == "/a.db" && s.Socket == "/run/edgeban.sock" && s.DBPurgeAge == 7*24*time.Hour && s.LogLevel == "INFO"
		}, ""},
		{"edgeban.local alone", map[string]string{"edgeban.local": "[DEFAULT]\nloglevel = debug\n"}, func(s *Server) bool {
			return s.LogLevel == "DEBUG"
		}, ""},
		{"no Cloudflare settings: the worker's defaults", map[string]string{"edgeban.conf": "[Definition]\n"}, func(s *Server) bool {
			return s.Cloudflare == CloudflareSettings{}
		}, ""},
		{"Cloudflare settings", map[string]string{
			"edgeban.conf":  "[Definition]\ncfratelimit = 50000\ncfratewindow = 1m\ncfrateburst = 200\n",
			"edgeban.local": "[Definition]\ncfconcurrency = 32\n",
		}, func(s *Server) bool {
			return s.Cloudflare == CloudflareSettings{RateLimit: 50000, RateWindow: time.Minute, RateBurst: 200, Concurrency: 32}
		}, ""},
		{"Cloudflare settings are edgeban.conf's only", map[string]string{
			"fail2ban.conf": "[Definition]\ncfratelimit = 50000\ncfconcurrency = oops\n",
		}, func(s *Server) bool {
			return s.Cloudflare == CloudflareSettings{}
		}, ""},
		{"metricslisten", map[string]string{"edgeban.conf": "[Definition]\nmetricslisten = 127.0.0.1:9191\n"}, func(s *Server) bool {
			return s.MetricsListen == "127.0.0.1:9191"
		}, ""},
		{"metricslisten on every address, any port", map[string]string{"edgeban.local": "[Definition]\nmetricslisten = :0\n"}, func(s *Server) bool {
			return s.MetricsListen == ":0"
		}, ""},
		{"metricslisten is edgeban.conf's only", map[string]string{"fail2ban.conf": "[Definition]\nmetricslisten = nonsense\n"}, func(s *Server) bool {
			return s.MetricsListen == ""
		}, ""},
		{"metricslisten without a port", map[string]string{"edgeban.conf": "[Definition]\nmetricslisten = 127.0.0.1\n"}, nil, `edgeban.conf:2: option "metricslisten": "127.0.0.1": want host:port`},
		{"metricslisten with a bad port", map[string]string{"edgeban.conf": "[Definition]\nmetricslisten = [::1]:http\n"}, nil, `edgeban.conf:2: option "metricslisten": "[::1]:http": port "http" is not a number`},
		{"bad cfratelimit", map[string]string{"edgeban.conf": "[Definition]\ncfratelimit = lots\n"}, nil, `edgeban.conf:2: option "cfratelimit": "lots" is not a whole number above 0`},
		{"zero cfconcurrency", map[string]string{"edgeban.conf": "[Definition]\n\ncfconcurrency = 0\n"}, nil, `edgeban.conf:3: option "cfconcurrency"`},
		{"negative cfrateburst", map[string]string{"edgeban.conf": "[Definition]\ncfrateburst = -1\n"}, nil, `edgeban.conf:2: option "cfrateburst"`},
		{"bad cfratewindow", map[string]string{"edgeban.conf": "[Definition]\ncfratewindow = soon\n"}, nil, `edgeban.conf:2: option "cfratewindow"`},
		{"zero cfratewindow", map[string]string{"edgeban.conf": "[Definition]\ncfratewindow = 0\n"}, nil, `edgeban.conf:2: option "cfratewindow": "0": it must be above 0`},
		{"bad loglevel", map[string]string{"fail2ban.conf": "[Definition]\nloglevel = LOUD\n"}, nil, `fail2ban.conf:2: option "loglevel"`},
		{"bad dbpurgeage", map[string]string{"edgeban.conf": "[Definition]\n\ndbpurgeage = soon\n"}, nil, `edgeban.conf:3: option "dbpurgeage"`},
		{"bad dbmaxmatches", map[string]string{"edgeban.conf": "[Definition]\ndbmaxmatches = -2\n"}, nil, `edgeban.conf:2: option "dbmaxmatches"`},
		{"syntax", map[string]string{"edgeban.conf": "[Definition\n"}, nil, "edgeban.conf:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for n, c := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			s, err := ReadServer(dir)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(s) {
				t.Fatalf("got %+v", *s)
			}
		})
	}
}

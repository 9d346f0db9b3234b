package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeban/edgeban/internal/cloudflare/cfsim"
)

func TestParseFlags(t *testing.T) {
	zone := "0123456789abcdef0123456789abcdef"
	tests := []struct {
		name    string
		args    []string
		check   func(t *testing.T, o *options)
		wantErr string
	}{
		{"defaults", nil, func(t *testing.T, o *options) {
			if o.listen != "127.0.0.1:8787" || o.cfg.Plan != cfsim.PlanFree || o.cfg.RateLimit != 1200 ||
				o.cfg.RateWindow != 300*time.Second || o.cfg.Lockout != 300*time.Second || o.cfg.BulkDelay != 300*time.Millisecond ||
				len(o.cfg.Tokens) != 0 || o.cfg.Seed != 1 || o.cfg.RuleCap != 50000 {
				t.Errorf("options = %+v", o)
			}
		}, ""},
		{"credentials and zones", []string{"-token", "a", "-token", "b", "-token-readonly", "r", "-email", "e@x", "-key", "k",
			"-zone", zone + "=example.org", "-account", "acc", "-plan", "enterprise"}, func(t *testing.T, o *options) {
			want := []cfsim.Token{{Value: "a"}, {Value: "b"}, {Value: "r", ReadOnly: true}}
			if !reflect.DeepEqual(o.cfg.Tokens, want) || o.cfg.Email != "e@x" || o.cfg.Key != "k" ||
				o.cfg.Zones[zone] != "example.org" || o.cfg.AccountID != "acc" || o.cfg.Plan != cfsim.PlanEnterprise {
				t.Errorf("options = %+v", o.cfg)
			}
		}, ""},
		{"limits and faults", []string{"-rate-limit", "10", "-rate-window", "1m", "-lockout", "2m", "-rule-cap", "5",
			"-fault-5xx", "0.1", "-fault-applied-5xx", "0.2", "-fault-429-every", "50", "-fault-429-len", "3",
			"-latency", "20ms", "-fault-drop", "0.05", "-fault-malformed", "0.01", "-bulk-delay", "0", "-seed", "42",
			"-ipv6-strict", "-not-entitled", "user,zone"}, func(t *testing.T, o *options) {
			c := o.cfg
			wantF := cfsim.Faults{Error5xx: 0.1, Applied5xx: 0.2, Burst429Every: 50, Burst429Len: 3, Latency: 20 * time.Millisecond, Drop: 0.05, Malformed: 0.01}
			if c.RateLimit != 10 || c.RateWindow != time.Minute || c.Lockout != 2*time.Minute || c.RuleCap != 5 ||
				c.Faults != wantF || c.BulkDelay >= 0 || c.Seed != 42 || !c.IPv6Strict || !reflect.DeepEqual(c.NotEntitled, []string{"user", "zone"}) {
				t.Errorf("config = %+v", c)
			}
		}, ""},
		{"bad plan", []string{"-plan", "gold"}, nil, "-plan"},
		{"bad zone", []string{"-zone", "example.org"}, nil, "ID=NAME"},
		{"zone id not hex", []string{"-zone", "z1=example.org"}, nil, "32 lowercase hex"},
		{"key without email", []string{"-key", "k"}, nil, "Email and Key"},
		{"probability", []string{"-fault-5xx", "2"}, nil, "probability"},
		{"zero rate limit", []string{"-rate-limit", "0"}, nil, "-rate-limit"},
		{"stray argument", []string{"serve"}, nil, "unexpected"},
		{"unknown flag", []string{"-nope"}, nil, "not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, o)
		})
	}
}

func TestHelp(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"--help"}, &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"Usage: cfsim", "-listen", "-token-readonly", "-fault-429-every", cfsim.DemoToken} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, out.String())
		}
	}
}

func TestServeAndShutdown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, cfsim.Config{Logger: logger}, logger) }()

	req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/client/v4/user/tokens/verify", nil)
	req.Header.Set("Authorization", "Bearer "+cfsim.DemoToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("verify: %d", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no shutdown")
	}
	if !strings.Contains(logs.String(), cfsim.DemoToken) {
		t.Errorf("the demo token was not printed:\n%s", logs.String())
	}
}

func TestListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = run(context.Background(), []string{"-listen", ln.Addr().String()}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "listen") {
		t.Errorf("err = %v", err)
	}
}

// syncWriter serialises writes from the server's goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

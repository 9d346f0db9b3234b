package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// jailsHandler answers like a tiny daemon with one jail.
func jailsHandler(_ context.Context, args []string) (any, error) {
	switch {
	case args[0] == "ping":
		return "pong", nil
	case args[0] == "status" && len(args) == 2:
		if args[1] != "sshd" {
			return nil, fmt.Errorf("unknown jail %q", args[1])
		}
		return map[string]any{"jail": "sshd", "banned": []string{"192.0.2.1"}}, nil
	case args[0] == "echo":
		return args[1:], nil
	}
	return nil, fmt.Errorf("unknown command %q", strings.Join(args, " "))
}

func serve(t *testing.T, path string) (*Server, context.CancelFunc, chan error) {
	t.Helper()
	s, err := Listen(path, jailsHandler, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return s, cancel, done
}

func TestControl(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edgeban.sock")
	serve(t, path)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket mode %v", fi.Mode())
	}
	ctx := context.Background()
	tests := []struct {
		args    []string
		want    string // JSON result
		wantErr string
	}{
		{[]string{"ping"}, `"pong"`, ""},
		{[]string{"status", "sshd"}, `{"banned":["192.0.2.1"],"jail":"sshd"}`, ""},
		{[]string{"status", "nosuch"}, "", `unknown jail "nosuch"`},
		{[]string{"frobnicate"}, "", `unknown command "frobnicate"`},
		{[]string{}, "", "empty command"},
		{[]string{"echo", "a\nb", `"q"`, "$(x)"}, `["a\nb","\"q\"","$(x)"]`, ""},
	}
	for _, tt := range tests {
		got, err := Call(ctx, path, tt.args...)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("%q: error %v, want %q", tt.args, err, tt.wantErr)
			}
			continue
		}
		if err != nil || string(got) != tt.want {
			t.Errorf("%q: %s, %v; want %s", tt.args, got, err, tt.want)
		}
	}
}

func TestControlManyClients(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edgeban.sock")
	serve(t, path)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Go(func() {
			got, err := Call(context.Background(), path, "echo", fmt.Sprint(i))
			var v []string
			if err == nil {
				err = json.Unmarshal(got, &v)
			}
			if err == nil && (len(v) != 1 || v[0] != fmt.Sprint(i)) {
				err = fmt.Errorf("client %d got %s", i, got)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Several requests on one connection, and a malformed one.
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "{\"args\":[\"ping\"]}\nnot json\n{\"args\":[\"ping\"]}\n")
	dec := json.NewDecoder(c)
	for i, want := range []bool{true, false, true} {
		var r Response
		if err := dec.Decode(&r); err != nil || r.OK != want {
			t.Fatalf("answer %d: %+v %v", i, r, err)
		}
	}
}

func TestControlSocketLifecycle(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "edgeban.sock")
	_, cancel, done := serve(t, path)
	if _, err := Listen(path, jailsHandler, nil); err == nil || !strings.Contains(err.Error(), "another daemon") {
		t.Fatalf("second daemon: %v", err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Serve: %v", err)
	}
	done <- nil // for the cleanup
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left after stop: %v", err)
	}
	if _, err := Call(context.Background(), path, "ping"); err == nil || !strings.Contains(err.Error(), "is edgeban serve running") {
		t.Fatalf("call without daemon: %v", err)
	}

	// A socket left by a daemon that died is replaced.
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	serve(t, path)
	ctx, cancelCall := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelCall()
	if _, err := Call(ctx, path, "ping"); err != nil {
		t.Fatal(err)
	}

	// A file that is not a socket is not removed.
	other := filepath.Join(dir, "not-a-socket")
	os.WriteFile(other, []byte("x"), 0o600)
	if _, err := Listen(other, jailsHandler, nil); err == nil {
		t.Fatal("listened over a regular file")
	}
	if _, err := os.Stat(other); err != nil {
		t.Fatal("the regular file was removed")
	}
}

package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWriteExample writes the example configuration and finds its files,
// the filters from filter.d beside it, and no attack log among them; a
// second write into the same directory is refused.
func TestWriteExample(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "conf")
	if err := WriteExample(dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"jail.local", "action.d/hosts-deny-file.conf", "action.d/nginx-deny-file.conf",
		"filter.d/sshd.conf", "filter.d/nginx-http-auth.conf", "filter.d/recidive.conf", "filter.d/common.conf"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Error(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "attack.log")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the attack log was written with the configuration: %v", err)
	}
	if err := WriteExample(dir); !errors.Is(err, fs.ErrExist) {
		t.Errorf("a second write: %v, want it refused", err)
	}
	own, err := os.ReadFile(filepath.Join("filter.d", "sshd.conf"))
	if err != nil {
		t.Fatal(err)
	}
	written, err := os.ReadFile(filepath.Join(dir, "filter.d", "sshd.conf"))
	if err != nil || string(written) != string(own) {
		t.Errorf("filter.d/sshd.conf was not written as it is: %v", err)
	}
	if log := string(AttackLog()); !strings.Contains(log, "\nexpect\trecidive\t") {
		t.Errorf("the attack log expects no recidive ban:\n%s", log)
	}
}

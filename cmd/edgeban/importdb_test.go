package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestImportFail2banDBCommand(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "edgeban.conf"), []byte("[Definition]\ndbfile = "+filepath.Join(dir, "edgeban.db")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	c := &cli{stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }}
	err := c.main(t.Context(), []string{"import-fail2ban-db", "-c", dir, filepath.Join(dir, "missing.sqlite3")})
	if err == nil || !strings.Contains(err.Error(), "missing.sqlite3") {
		t.Fatalf("missing fail2ban database: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "edgeban.db")); err != nil {
		t.Fatalf("edgeban.conf's dbfile not used: %v", err)
	}
	if err := c.main(t.Context(), []string{"import-fail2ban-db", "a", "b"}); err == nil {
		t.Fatal("two arguments accepted")
	}
}

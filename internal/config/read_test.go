package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeTree writes files (path relative to a new temporary dir -> content)
// and returns the dir.
func writeTree(tb testing.TB, files map[string]string) string {
	tb.Helper()
	dir := tb.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}

// mustGet returns the resolved option or fails the test.
func mustGet(tb testing.TB, c *Config, section, name string) string {
	tb.Helper()
	v, err := c.Get(section, name)
	if err != nil {
		tb.Fatalf("Get(%q, %q): %v", section, name, err)
	}
	return v
}

func TestReadOrder(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"filter.d/x.conf":          "[Definition]\na = conf\nb = conf\nc = conf\nd = conf\ne = conf\n",
		"filter.d/x.d/2.conf":      "[Definition]\nb = d2conf\n",
		"filter.d/x.d/1.conf":      "[Definition]\nb = d1conf\nc = d1conf\n",
		"filter.d/x.d/.hid.conf":   "[Definition]\na = hidden\n",
		"filter.d/x.local":         "[Definition]\nc = local\nd = local\n",
		"filter.d/x.d/1.local":     "[Definition]\nd = d1local\n",
		"filter.d/x.d/notes.txt":   "junk",
		"filter.d/other.conf":      "[Definition]\na = other\n",
		"filter.d/onlylocal.local": "[Definition]\na = local only\n",
	})
	c, err := Read(dir, "filter.d/x")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "conf", "b": "d2conf", "c": "local", "d": "d1local", "e": "conf"}
	for k, v := range want {
		if got := mustGet(t, c, "Definition", k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	wantFiles := "filter.d/x.conf filter.d/x.d/1.conf filter.d/x.d/2.conf filter.d/x.local filter.d/x.d/1.local"
	if got := strings.Join(c.Files(), " "); got != wantFiles {
		t.Errorf("files %q, want %q", got, wantFiles)
	}
	o, _ := c.Raw("Definition", "d")
	if o.Pos.String() != "filter.d/x.d/1.local:2" {
		t.Errorf("d set at %s, want filter.d/x.d/1.local:2", o.Pos)
	}
	if c, err := Read(dir, "filter.d/onlylocal"); err != nil || mustGet(t, c, "Definition", "a") != "local only" {
		t.Errorf("a .local alone: %v", err)
	}
	if _, err := Read(dir, "filter.d/missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing config: got %v, want fs.ErrNotExist", err)
	}
	if _, err := Read(filepath.Join(dir, "nodir"), "x"); err == nil {
		t.Error("missing base dir: no error")
	}
}

func TestReadIncludes(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"filter.d/common.conf":   "[DEFAULT]\ncommon = conf\nover = common\n[Definition]\nd = common\n",
		"filter.d/common.local":  "[DEFAULT]\ncommon = local\n",
		"filter.d/after.conf":    "[Definition]\nd = after\nafter = yes\n",
		"filter.d/sub/deep.conf": "[INCLUDES]\nbefore = ../common.conf\n[Definition]\ndeep = %(common)s\n",
		"filter.d/x.conf": "[INCLUDES]\nbefore = common.conf\n" +
			"         sub/deep.conf\n\n         missing.conf\nafter = %(a)s.conf\n" +
			"[DEFAULT]\na = after\nover = x\n[Definition]\nd = x\n",
		// a cycle: y includes z includes y and itself (read twice, as
		// fail2ban does)
		"filter.d/y.conf": "[INCLUDES]\nbefore = z.conf\n[Definition]\ny = y\n",
		"filter.d/z.conf": "[INCLUDES]\nbefore = y.conf\nafter = z.conf\n[Definition]\nz = z\ny = z\n",
	})
	c, err := Read(dir, "filter.d/x")
	if err != nil {
		t.Fatal(err)
	}
	wantFiles := "filter.d/common.conf filter.d/common.local filter.d/common.conf filter.d/common.local " +
		"filter.d/sub/deep.conf filter.d/x.conf filter.d/after.conf"
	if got := strings.Join(c.Files(), " "); got != wantFiles {
		t.Errorf("files\n%q, want\n%q", got, wantFiles)
	}
	for k, v := range map[string]string{"common": "local", "over": "x", "d": "after", "after": "yes", "deep": "local"} {
		if got := mustGet(t, c, "Definition", k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	c, err = Read(dir, "filter.d/y")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Files(), " "); got != "filter.d/z.conf filter.d/z.conf filter.d/y.conf" {
		t.Errorf("cycle: files %q", got)
	}
	if got := mustGet(t, c, "Definition", "y"); got != "y" {
		t.Errorf("y = %q", got)
	}
}

func TestReadErrorsNameTheFile(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"filter.d/bad.conf":  "[INCLUDES]\nbefore = inc.conf\n[Definition]\nx = 1\n",
		"filter.d/inc.conf":  "[Definition]\nfailregex = a\n\nfailregex = b\n",
		"filter.d/bad2.conf": "[INCLUDES]\nbefore = %(nope)s\n",
	})
	_, err := Read(dir, "filter.d/bad")
	if err == nil || err.Error() != `filter.d/inc.conf:4: option "failregex": duplicate option in section [Definition]` {
		t.Errorf("got %v", err)
	}
	_, err = Read(dir, "filter.d/bad2")
	if err == nil || !strings.HasPrefix(err.Error(), `filter.d/bad2.conf:2: option "before": reference to a missing option "nope"`) {
		t.Errorf("got %v", err)
	}
}

func TestConditionalSections(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"action.d/a.conf": "[Init]\nblocktype = reject\nfamily = inet4\n[Init?family=inet6]\nblocktype = reject6\n",
	})
	c, err := Read(dir, "action.d/a")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.SectionNames(), ","); got != "Init" {
		t.Errorf("sections %q, want Init", got)
	}
	if got := mustGet(t, c, "Init", "blocktype?family=inet6"); got != "reject6" {
		t.Errorf("blocktype?family=inet6 = %q", got)
	}
	if got := mustGet(t, c, "Init", "blocktype"); got != "reject" {
		t.Errorf("blocktype = %q", got)
	}
}

func TestReadIncludeBlowUp(t *testing.T) {
	files := map[string]string{}
	for i := 0; i < 20; i++ {
		files[fmt.Sprintf("f%d.conf", i)] = fmt.Sprintf("[INCLUDES]\nbefore = f%d.conf\n         f%[1]d.conf\n[A]\nx = %d\n", i+1, i)
	}
	dir := writeTree(t, files)
	_, err := Read(dir, "f0")
	if err == nil || !strings.Contains(err.Error(), "more than 10000 files included") {
		t.Fatalf("got %v, want too many includes", err)
	}
}

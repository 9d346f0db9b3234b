// Package config carries edgeban's own configuration files in the
// binary: the filters of filter.d (Apache-2.0, written for edgeban) and
// the example configuration of example/ (a jail.local with sshd,
// nginx-http-auth and recidive, the action.d files it uses, and the
// attack log that "edgeban demo" replays against it).
//
// It holds files, not code that reads them: reading fail2ban's
// configuration dialect is internal/config's job, so importers name this
// package differently, for example
//
//	ownconfig "github.com/edgeban/edgeban/config"
package config

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// files holds filter.d and example, as they are in the repository.
//
//go:embed filter.d example
var files embed.FS

//go:embed example/attack.log
var attackLog string

// Filters returns edgeban's own filters: the files of filter.d, at the
// root of the returned file system.
func Filters() fs.FS {
	sub, err := fs.Sub(files, "filter.d")
	if err != nil {
		panic(err) // a valid constant path: cannot happen
	}
	return sub
}

// AttackLog returns the attack log the demo replays against the example
// configuration (its format is described at its top).
func AttackLog() []byte {
	return []byte(attackLog)
}

// WriteExample writes the example configuration into dir, creating it:
// jail.local and action.d from example/, and filter.d, edgeban's own
// filters. It refuses to overwrite a file that exists. The configuration
// places its logs and its files of bans under dir (its paths are
// relative to %(fail2ban_confpath)s); the daemon's own settings,
// edgeban.conf, are the caller's to write.
func WriteExample(dir string) error {
	conf, err := fs.Sub(files, "example")
	if err != nil {
		return err
	}
	if err := copyConfig(dir, conf); err != nil {
		return fmt.Errorf("write the example configuration: %w", err)
	}
	if err := copyConfig(filepath.Join(dir, "filter.d"), Filters()); err != nil {
		return fmt.Errorf("write the example configuration: %w", err)
	}
	return nil
}

// copyConfig copies the configuration files (.conf, .local) of fsys into
// dir, keeping their relative paths.
func copyConfig(dir string, fsys fs.FS) error {
	return fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		if !strings.HasSuffix(p, ".conf") && !strings.HasSuffix(p, ".local") {
			return nil
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return err
		}
		if _, err := f.Write(b); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
}

//go:build !linux

package source

import "syscall"

// journalctlAttr has nothing to set where Pdeathsig does not exist.
func journalctlAttr() *syscall.SysProcAttr { return nil }

package source

import "syscall"

// journalctlAttr makes journalctl get SIGTERM when edgeban dies, so that
// no journalctl is left following the journal for nobody. (The signal
// comes when the thread that started it ends; Go's threads live as long
// as the process unless a goroutine locked to one exits, and then the
// reader starts journalctl again, resuming at its cursor.)
func journalctlAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}

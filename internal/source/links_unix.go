//go:build unix

package source

import (
	"os"
	"syscall"
)

// deleted reports whether the open file behind info has no name left.
func deleted(info os.FileInfo) bool {
	st, ok := info.Sys().(*syscall.Stat_t)
	return ok && st.Nlink == 0
}

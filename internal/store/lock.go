package store

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// ErrWorkerRunning is returned by LockWorker when another worker holds the lock.
var ErrWorkerRunning = errors.New("another worker is running on this database")

// LockWorker takes the database's single-worker lock, an flock(2) on a file
// beside it, which the kernel releases when the process dies, however it
// dies. It returns the function that releases it.
func (db *DB) LockWorker() (unlock func(), err error) {
	f, err := os.OpenFile(db.path+".worker", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: worker lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrWorkerRunning
		}
		return nil, fmt.Errorf("store: worker lock: %w", err)
	}
	return func() { f.Close() }, nil
}

// WorkerRunning reports whether a worker holds the database's lock.
func (db *DB) WorkerRunning() bool {
	f, err := os.OpenFile(db.path+".worker", os.O_RDONLY, 0)
	if err != nil {
		return false // never created: no worker ever ran
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		return errors.Is(err, syscall.EWOULDBLOCK)
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}

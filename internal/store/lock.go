package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// ErrWorkerRunning is returned by LockWorker when another worker holds the lock.
var ErrWorkerRunning = errors.New("another worker is running on this database")

// ErrDaemonRunning is returned by LockDaemon when another daemon holds the lock.
var ErrDaemonRunning = errors.New("another edgeban serve is running on this database")

// LockWorker takes the database's single-worker lock, an flock(2) on a file
// beside it, which the kernel releases when the process dies, however it
// dies. It returns the function that releases it.
func (db *DB) LockWorker() (unlock func(), err error) {
	return db.lock(".worker", ErrWorkerRunning)
}

// workerPrefix begins the claim owner of every worker (WorkerOwner).
const workerPrefix = "worker:"

// WorkerOwner is the claim owner of this process's worker, "worker:PID",
// whose claims TakeWorker takes back once the process is gone.
func WorkerOwner() string { return fmt.Sprintf("%s%d", workerPrefix, os.Getpid()) }

// TakeWorker starts a worker on the database: it takes the single-worker
// lock, trying again for about 2 s while another process holds it (a CLI
// call may be probing it for a moment), then takes back the claims that a
// killed predecessor still held, and reports how many. It returns
// ErrWorkerRunning when another worker keeps the lock, and ctx's error if
// ctx ends while it waits.
func (db *DB) TakeWorker(ctx context.Context) (unlock func(), released int64, err error) {
	unlock, err = db.LockWorker()
	for i := 0; errors.Is(err, ErrWorkerRunning) && i < 20; i++ {
		select {
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		unlock, err = db.LockWorker()
	}
	if err != nil {
		return nil, 0, err
	}
	if released, err = db.ReleasePrefix(ctx, workerPrefix); err != nil {
		unlock()
		return nil, 0, err
	}
	return unlock, released, nil
}

// LockDaemon takes the database's single-daemon lock, as LockWorker
// does: two daemons on one database would both run every ban.
func (db *DB) LockDaemon() (unlock func(), err error) {
	return db.lock(".daemon", ErrDaemonRunning)
}

// lock takes an exclusive flock on the file beside the database with
// suffix, or returns busy if another process holds it.
func (db *DB) lock(suffix string, busy error) (unlock func(), err error) {
	f, err := os.OpenFile(db.path+suffix, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("store: %s: %w", db.path, busy)
		}
		return nil, fmt.Errorf("store: lock %s: %w", f.Name(), err)
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

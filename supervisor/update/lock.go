package update

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lock takes the updater's mutex and the data dir's lock file, so that the supervisor service and
// an operator's "supervisor update" on the host never run two updates at once. The returned
// function releases both.
func (u *Updater) lock() (func(), error) {
	if !u.mu.TryLock() {
		return nil, ErrBusy
	}
	f, err := os.OpenFile(filepath.Join(u.cfg.DataDir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		u.mu.Unlock()
		return nil, fmt.Errorf("update lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		u.mu.Unlock()
		return nil, fmt.Errorf("%w (in another process: the supervisor service or an operator's command)", ErrBusy)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
		u.mu.Unlock()
	}, nil
}

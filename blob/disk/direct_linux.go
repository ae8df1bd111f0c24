package disk

import (
	"os"

	"golang.org/x/sys/unix"
)

// oDirect opens temporary files for writes that bypass the page cache.
const oDirect = unix.O_DIRECT

// clearDirect turns O_DIRECT off on f: later writes go through the page
// cache (a file system that accepts the flag but refuses the writes).
func clearDirect(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		fl, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
		if err != nil {
			ferr = err
			return
		}
		_, ferr = unix.FcntlInt(fd, unix.F_SETFL, fl&^unix.O_DIRECT)
	}); err != nil {
		return err
	}
	return ferr
}

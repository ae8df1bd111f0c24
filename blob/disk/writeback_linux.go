package disk

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to begin writing [off, off+n) of f to the
// disk now (sync_file_range with SYNC_FILE_RANGE_WRITE: start the I/O, do
// not wait for it). It is only a hint that spreads the disk writes over the
// upload instead of leaving a GiB of dirty pages for the final fsync; it
// guarantees nothing, and Put still fsyncs the file before the rename
// (RES-2), so an error here is ignored (a failing disk fails the fsync).
func startWriteback(f *os.File, off, n int64) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE)
	})
}

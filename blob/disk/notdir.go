package disk

import (
	"errors"
	"syscall"
)

// isNotDir reports ENOTDIR: a key whose parent "directory" is an object.
func isNotDir(err error) bool { return errors.Is(err, syscall.ENOTDIR) }

//go:build !linux

package sqlite

import "os"

// datasync is fsync where there is no fdatasync.
func datasync(f *os.File) error { return f.Sync() }

// tryLock: without flock the journal is this store's alone.
func tryLock(f *os.File) (bool, error) { return true, nil }

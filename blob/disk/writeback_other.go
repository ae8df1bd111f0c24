//go:build !linux

package disk

import "os"

// startWriteback is a no-op where sync_file_range does not exist; Put's
// fsync alone makes the data durable.
func startWriteback(f *os.File, off, n int64) {}

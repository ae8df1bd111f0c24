package disk

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// Direct writes: an object's bytes go from one aligned 1 MiB buffer to
// the disk without a copy into the page cache (the kernel's copy and page
// cache bookkeeping were as much CPU as SHA-256 when sealing a dataset),
// and a GiB upload does not push a GiB of other data out of the cache.
// Durability is unchanged: Put still fsyncs the file, renames it and
// fsyncs the directory (RES-2).
const (
	directAlign = 4096 // file offsets, lengths and buffer addresses
	directChunk = 1 << 20
)

var directBufs = sync.Pool{New: func() any {
	b := make([]byte, directChunk+directAlign)
	off := int(-uintptr(unsafe.Pointer(unsafe.SliceData(b)))) & (directAlign - 1)
	b = b[off : off+directChunk : off+directChunk]
	return &b
}}

// writeDirect copies r to f, opened with O_DIRECT, in aligned chunks; the
// last, unaligned part (and everything, should the file system refuse a
// direct write) goes through the page cache once O_DIRECT is cleared.
func writeDirect(ctx context.Context, f *os.File, r io.Reader) (int64, error) {
	bp := directBufs.Get().(*[]byte)
	defer directBufs.Put(bp)
	buf := *bp
	direct := true
	var n int64
	for {
		m, rerr := io.ReadFull(ctxReader{ctx, r}, buf)
		if rerr != nil && rerr != io.EOF && rerr != io.ErrUnexpectedEOF {
			return n, rerr
		}
		p := buf[:m]
		if a := m &^ (directAlign - 1); direct && a > 0 {
			w, err := f.Write(p[:a])
			n += int64(w)
			switch {
			case err == nil:
				p = p[a:]
			case w == 0 && errors.Is(err, syscall.EINVAL):
				// Not supported here: write through the cache.
				if err := clearDirect(f); err != nil {
					return n, err
				}
				direct = false
			default:
				return n, err
			}
		}
		if len(p) > 0 {
			if direct {
				if err := clearDirect(f); err != nil {
					return n, err
				}
				direct = false
			}
			w, err := f.Write(p)
			n += int64(w)
			if err != nil {
				return n, err
			}
		}
		if rerr != nil {
			return n, nil
		}
	}
}

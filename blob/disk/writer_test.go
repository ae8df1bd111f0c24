package disk

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/blob"
	"github.com/rampart-mlaas/rampart/blob/blobtest"
)

// setWrites sets the chunk size and O_DIRECT for one test.
func setWrites(t *testing.T, chunk int, direct bool) {
	oldChunk, oldDirect := chunkSize, directWrites
	chunkSize, directWrites = chunk, direct
	t.Cleanup(func() { chunkSize, directWrites = oldChunk, oldDirect })
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7+i>>11) | 1 // no zero bytes: padding left behind would show
	}
	return b
}

func readAll(t *testing.T, s *Store, key string) []byte {
	t.Helper()
	rc, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(rc); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// noTemps fails if a temporary file is left in the store.
func noTemps(t *testing.T, s *Store) {
	t.Helper()
	_ = fs.WalkDir(s.root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), tmpPrefix) {
			t.Errorf("temporary file left: %s", p)
		}
		return nil
	})
}

// Objects of sizes around the alignment and the chunk, written through
// Create in odd pieces and through Put, come back byte for byte, direct
// and buffered.
func TestWriterSizes(t *testing.T) {
	for _, direct := range []bool{true, false} {
		t.Run(map[bool]string{true: "direct", false: "buffered"}[direct], func(t *testing.T) {
			setWrites(t, 2*directAlign, direct)
			s := newStore(t).(*Store)
			ctx := context.Background()
			for _, size := range []int{0, 1, directAlign - 1, directAlign, directAlign + 1, 2*directAlign - 1,
				2 * directAlign, 2*directAlign + 1, 7*directAlign + 13, 40_000} {
				data := pattern(size)
				w, err := s.Create(ctx, "o/create")
				if err != nil {
					t.Fatal(err)
				}
				for p, step := data, 1; len(p) > 0; step = step*3 + 1 {
					k := min(step, len(p))
					if n, err := w.Write(p[:k]); n != k || err != nil {
						t.Fatalf("size %d: Write = %d, %v", size, n, err)
					}
					p = p[k:]
				}
				if n, err := w.Commit(); n != int64(size) || err != nil {
					t.Fatalf("size %d: Commit = %d, %v", size, n, err)
				}
				w.Abort() // a no-op after Commit
				if got := readAll(t, s, "o/create"); !bytes.Equal(got, data) {
					t.Fatalf("size %d: Create/Write stored %d bytes that differ", size, len(got))
				}
				if n, err := s.Put(ctx, "o/put", bytes.NewReader(data)); n != int64(size) || err != nil {
					t.Fatalf("size %d: Put = %d, %v", size, n, err)
				}
				if got := readAll(t, s, "o/put"); !bytes.Equal(got, data) {
					t.Fatalf("size %d: Put stored %d bytes that differ", size, len(got))
				}
				if fi, err := s.Stat(ctx, "o/put"); err != nil || fi.Size != int64(size) {
					t.Fatalf("size %d: Stat = %+v, %v", size, fi, err)
				}
			}
			noTemps(t, s)
		})
	}
}

// The conformance suite also holds for small chunks and for buffered writes.
func TestConformanceSmallChunks(t *testing.T) {
	setWrites(t, directAlign, true)
	blobtest.Run(t, newStore)
}

func TestConformanceBuffered(t *testing.T) {
	setWrites(t, 1<<20, false)
	blobtest.Run(t, newStore)
}

// An aborted or cancelled writer stores nothing, leaves the previous
// object as it was and no temporary file (RES-2).
func TestWriterAbortAndCancel(t *testing.T) {
	setWrites(t, 2*directAlign, true)
	s := newStore(t).(*Store)
	ctx := context.Background()
	old := pattern(5000)
	if _, err := s.Put(ctx, "a/b", bytes.NewReader(old)); err != nil {
		t.Fatal(err)
	}
	w, err := s.Create(ctx, "a/b")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 20_000)); err != nil {
		t.Fatal(err)
	}
	w.Abort()
	w.Abort()
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("Write after Abort succeeded")
	}
	if _, err := w.Commit(); err == nil {
		t.Fatal("Commit after Abort succeeded")
	}
	if got := readAll(t, s, "a/b"); !bytes.Equal(got, old) {
		t.Fatal("Abort changed the previous object")
	}
	w, err = s.Create(ctx, "a/new")
	if err != nil {
		t.Fatal(err)
	}
	w.Abort()
	if _, err := s.Stat(ctx, "a/new"); !errors.Is(err, rampart.ErrNotFound) {
		t.Fatalf("aborted object: Stat = %v, want ErrNotFound", err)
	}

	cctx, cancel := context.WithCancel(ctx)
	w, err = s.Create(cctx, "a/b")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 9000)); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := w.Write(make([]byte, 10)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Write after cancel = %v", err)
	}
	if _, err := w.Commit(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Commit after cancel = %v", err)
	}
	if got := readAll(t, s, "a/b"); !bytes.Equal(got, old) {
		t.Fatal("a cancelled writer changed the previous object")
	}
	if _, err := s.Create(ctx, "../x"); !errors.Is(err, rampart.ErrInvalid) {
		t.Fatalf("Create(bad key) = %v", err)
	}
	noTemps(t, s)
}

// A file system that refuses O_DIRECT (tmpfs) gets buffered writes.
func TestWriterTmpfs(t *testing.T) {
	if fi, err := os.Stat("/dev/shm"); err != nil || !fi.IsDir() {
		t.Skip("no /dev/shm")
	}
	dir, err := os.MkdirTemp("/dev/shm", "rampart-blob-test")
	if err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	setWrites(t, 2*directAlign, true)
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	data := pattern(3*directAlign + 77)
	if _, err := s.Put(context.Background(), "t/x", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, s, "t/x"); !bytes.Equal(got, data) {
		t.Fatal("tmpfs object differs")
	}
	noTemps(t, s)
}

var _ blob.Creator = (*Store)(nil)

package disk

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/blob"
	"github.com/rampart-mlaas/rampart/blob/blobtest"
)

func newStore(t *testing.T) blob.Store {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) { blobtest.Run(t, newStore) }

// A symlink planted inside the store must not lead outside it (os.Root).
func TestSymlinkEscape(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if _, err := s.Get(ctx, "link/secret"); err == nil {
		t.Fatal("read through a symlink out of the store")
	}
	if _, err := s.Put(ctx, "link/new", bytes.NewReader([]byte("x"))); err == nil {
		t.Fatal("wrote through a symlink out of the store")
	}
	if _, err := os.Stat(filepath.Join(outside, "new")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("file created outside the store")
	}
}

func TestTempCleanupAndModes(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "a"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a", tmpPrefix+"crashed"), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(filepath.Join(dir, "a", tmpPrefix+"crashed")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("leftover temp file not removed")
	}
	if _, err := s.Put(context.Background(), "a/b/obj", bytes.NewReader([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "a", "b", "obj"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		t.Fatalf("object mode %v is group/other accessible", fi.Mode())
	}
	// An object and a "directory" of the same name cannot coexist.
	if _, err := s.Put(context.Background(), "a/b/obj/x", bytes.NewReader(nil)); !errors.Is(err, rampart.ErrInvalid) {
		t.Fatalf("Put under an object: %v, want ErrInvalid", err)
	}
}

// TestDirectWrites: objects of every size around the direct-write
// alignment and chunk, handed over in odd pieces, read back exactly; on a
// file system without O_DIRECT (tmpfs) too, and through writeDirect's
// fallback when a direct write is refused.
func TestDirectWrites(t *testing.T) {
	dirs := []string{t.TempDir()}
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "rampart-disk-test"); err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			dirs = append(dirs, d)
		}
	}
	sizes := []int{0, 1, directAlign - 1, directAlign, directAlign + 1, directChunk - 1, directChunk, directChunk + 1,
		3*directChunk + 5000, 2 * directChunk}
	for _, dir := range dirs {
		s, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		for i, size := range sizes {
			data := make([]byte, size)
			for j := range data {
				data[j] = byte(j*7 + j>>12 + i)
			}
			key := "d/" + string(rune('a'+i))
			if _, err := s.Put(context.Background(), key, iotest.HalfReader(bytes.NewReader(data))); err != nil {
				t.Fatalf("%s: put %d bytes: %v", dir, size, err)
			}
			rc, err := s.Get(context.Background(), key)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%s: %d bytes: read back %d bytes, %v", dir, size, len(got), err)
			}
		}
		s.Close()
	}
	// A descriptor without O_DIRECT: writes succeed, the same bytes land.
	f, err := os.CreateTemp(t.TempDir(), "plain")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data := bytes.Repeat([]byte("0123456789abcdef"), directChunk/16*2+300)
	n, err := writeDirect(context.Background(), f, bytes.NewReader(data))
	if err != nil || n != int64(len(data)) {
		t.Fatalf("writeDirect: %d, %v", n, err)
	}
	got, _ := os.ReadFile(f.Name())
	if !bytes.Equal(got, data) {
		t.Fatal("writeDirect wrote other bytes")
	}
}

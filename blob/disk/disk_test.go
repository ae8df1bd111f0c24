package disk

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

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

// Put starts the writeback of each chunk as it goes (issue 5); the stored
// bytes must be exactly those written, whatever the chunking.
func TestPutEarlyWriteback(t *testing.T) {
	setWrites(t, 4096, false) // writeback hints are for buffered writes, one per chunk
	s := newStore(t).(*Store)
	data := make([]byte, 300_001)
	for i := range data {
		data[i] = byte(i*7 + i>>9)
	}
	ctx := context.Background()
	n, err := s.Put(ctx, "a/b", bytes.NewReader(data))
	if err != nil || n != int64(len(data)) {
		t.Fatalf("Put: %d, %v", n, err)
	}
	rc, err := s.Get(ctx, "a/b")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var got bytes.Buffer
	if _, err := got.ReadFrom(rc); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("stored %d bytes differ from the %d written", got.Len(), len(data))
	}
}

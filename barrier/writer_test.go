package barrier_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/barrier"
	"github.com/rampart-mlaas/rampart/blob"
)

// putOnly hides the disk store's Create: the barrier then feeds Store.Put
// through a pipe.
type putOnly struct{ blob.Store }

// writeSealed seals data through Create in pieces of growing sizes.
func writeSealed(t *testing.T, b *barrier.Barrier, r barrier.Ref, data []byte) barrier.Sealed {
	t.Helper()
	w, err := b.Create(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	for p, step := data, 1; len(p) > 0; step = step*5 + 3 {
		k := min(step, len(p))
		if n, err := w.Write(p[:k]); n != k || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
		p = p[k:]
	}
	s, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	w.Abort() // a no-op after Commit
	return s
}

// Create/Write/Commit seals exactly what Put seals: the same digest, and
// objects that Open, Verify and GetBytes read back, over a store with its
// own writer and over a Put-only store.
func TestWriterRoundTrip(t *testing.T) {
	e := newEnv(t)
	for name, b := range map[string]*barrier.Barrier{"creator": e.b, "put-only": barrier.New(e.kr, putOnly{e.blobs})} {
		for _, size := range []int{0, 1, 4095, 1 << 20, 3<<20 + 12345} {
			data := make([]byte, size)
			for i := range data {
				data[i] = byte(i*131 + i>>13)
			}
			r := ref("ds_" + rampart.RandomToken(4))
			s := writeSealed(t, b, r, data)
			if s.Digest != digest(data) || s.Size != int64(size) {
				t.Fatalf("%s, %d bytes: Sealed = %+v", name, size, s)
			}
			got, err := e.b.GetBytes(ctx, r, s.Digest, 1<<30)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%s, %d bytes: GetBytes: %d bytes, %v", name, size, len(got), err)
			}
			// Put of the same bytes at another reference: same digest.
			r2 := ref("ds_" + rampart.RandomToken(4))
			if s2, err := b.Put(ctx, r2, bytes.NewReader(data)); err != nil || s2 != s {
				t.Fatalf("%s: Put = %+v, %v; Create gave %+v", name, s2, err, s)
			}
			if _, err := b.Create(ctx, r); !errors.Is(err, rampart.ErrConflict) {
				t.Fatalf("%s: Create over an existing object: %v, want ErrConflict", name, err)
			}
		}
	}
}

// An aborted writer, or one whose Commit fails, leaves no object and no
// data key (the reference can be written again).
func TestWriterAbort(t *testing.T) {
	e := newEnv(t)
	for name, b := range map[string]*barrier.Barrier{"creator": e.b, "put-only": barrier.New(e.kr, putOnly{e.blobs})} {
		r := ref("ds_" + rampart.RandomToken(4))
		w, err := b.Create(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(bytes.Repeat([]byte("secret "), 400_000)); err != nil {
			t.Fatal(err)
		}
		w.Abort()
		w.Abort()
		if _, err := w.Write([]byte("x")); err == nil {
			t.Fatalf("%s: Write after Abort succeeded", name)
		}
		if _, err := w.Commit(); err == nil {
			t.Fatalf("%s: Commit after Abort succeeded", name)
		}
		if _, err := e.blobs.Stat(ctx, r.BlobKey()); !errors.Is(err, rampart.ErrNotFound) {
			t.Fatalf("%s: blob after Abort: %v", name, err)
		}
		if _, err := e.keys.GetKeyset(ctx, "dek/tn_bank/dataset/"+r.ID+"/1"); !errors.Is(err, rampart.ErrNotFound) {
			t.Fatalf("%s: data key after Abort: %v, want ErrNotFound (shredded)", name, err)
		}
		// A cancelled context fails the writer; nothing is stored.
		cctx, cancel := context.WithCancel(ctx)
		w, err = b.Create(cctx, r)
		if err != nil {
			t.Fatalf("%s: Create after Abort: %v", name, err)
		}
		if _, err := w.Write(make([]byte, 3<<20)); err != nil && !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
		cancel()
		_, _ = w.Write(make([]byte, 3<<20))
		if _, err := w.Commit(); err == nil {
			t.Fatalf("%s: Commit after cancel succeeded", name)
		}
		if _, err := e.blobs.Stat(ctx, r.BlobKey()); !errors.Is(err, rampart.ErrNotFound) {
			t.Fatalf("%s: blob after a cancelled Commit: %v", name, err)
		}
		if _, err := e.keys.GetKeyset(ctx, "dek/tn_bank/dataset/"+r.ID+"/1"); !errors.Is(err, rampart.ErrNotFound) {
			t.Fatalf("%s: data key after a cancelled Commit: %v, want ErrNotFound", name, err)
		}
	}
}

// A failing reader fails Put and leaves nothing behind.
func TestPutReaderError(t *testing.T) {
	e := newEnv(t)
	r := ref("ds_" + rampart.RandomToken(4))
	boom := errors.New("boom")
	if _, err := e.b.Put(ctx, r, io.MultiReader(bytes.NewReader(make([]byte, 5<<20)), failReader{boom})); !errors.Is(err, boom) {
		t.Fatalf("Put = %v, want boom", err)
	}
	if _, err := e.blobs.Stat(ctx, r.BlobKey()); !errors.Is(err, rampart.ErrNotFound) {
		t.Fatalf("blob after a failed Put: %v", err)
	}
	if _, err := e.keys.GetKeyset(ctx, "dek/tn_bank/dataset/"+r.ID+"/1"); !errors.Is(err, rampart.ErrNotFound) {
		t.Fatalf("data key after a failed Put: %v, want ErrNotFound", err)
	}
}

type failReader struct{ err error }

func (e failReader) Read([]byte) (int, error) { return 0, e.err }

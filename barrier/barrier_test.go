package barrier_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/barrier"
	"github.com/rampart-mlaas/rampart/blob/disk"
	"github.com/rampart-mlaas/rampart/keyring"
	"github.com/rampart-mlaas/rampart/keyring/keyringtest"
)

var ctx = context.Background()

type env struct {
	dir   string
	keys  *keyringtest.MemStore
	blobs *disk.Store
	kr    *keyring.Keyring
	b     *barrier.Barrier
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	rk, err := keyring.LoadOrCreateRootKeyFile(filepath.Join(dir, "root.key"), true)
	if err != nil {
		t.Fatal(err)
	}
	ks := keyringtest.NewMemStore()
	kr, err := keyring.Open(ctx, ks, rk)
	if err != nil {
		t.Fatal(err)
	}
	bs, err := disk.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bs.Close() })
	return &env{dir: dir, keys: ks, blobs: bs, kr: kr, b: barrier.New(kr, bs)}
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func ref(id string) barrier.Ref {
	return barrier.Ref{Tenant: "tn_bank", Kind: "dataset", ID: id, Version: 1}
}

func TestRoundTrip(t *testing.T) {
	e := newEnv(t)
	for _, data := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte("rampart "), 300000)} {
		r := ref("ds_" + rampart.RandomToken(4))
		s, err := e.b.PutBytes(ctx, r, data)
		if err != nil {
			t.Fatal(err)
		}
		if s.Digest != digest(data) || s.Size != int64(len(data)) {
			t.Fatalf("Sealed = %+v", s)
		}
		got, err := e.b.GetBytes(ctx, r, s.Digest, 1<<30)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("GetBytes: %d bytes, %v", len(got), err)
		}
		if _, err := e.b.GetBytes(ctx, r, s.Digest, int64(len(data))-1); len(data) > 0 && !errors.Is(err, rampart.ErrTooLarge) {
			t.Fatalf("GetBytes over max: %v", err)
		}
		if v, err := e.b.Verify(ctx, r, s.Digest); err != nil || v.Size != s.Size {
			t.Fatalf("Verify = %+v, %v", v, err)
		}
	}
}

func TestRefValidation(t *testing.T) {
	e := newEnv(t)
	bad := []barrier.Ref{
		{Tenant: "", Kind: "k", ID: "i"},
		{Tenant: "..", Kind: "k", ID: "i"},
		{Tenant: "t", Kind: "../../etc", ID: "i"},
		{Tenant: "t", Kind: "k", ID: "a/b"},
		{Tenant: "t", Kind: "k", ID: ".hidden"},
		{Tenant: "t", Kind: "k", ID: "i", Version: -1},
		{Tenant: "t\x00", Kind: "k", ID: "i"},
		{Tenant: "t", Kind: "k", ID: strings.Repeat("x", 129)},
	}
	for _, r := range bad {
		if _, err := e.b.PutBytes(ctx, r, []byte("x")); !errors.Is(err, rampart.ErrInvalid) {
			t.Errorf("Put(%q) = %v, want ErrInvalid", r, err)
		}
		if _, err := e.b.Open(ctx, r, digest(nil)); !errors.Is(err, rampart.ErrInvalid) {
			t.Errorf("Open(%q) = %v, want ErrInvalid", r, err)
		}
	}
	if _, err := e.b.Open(ctx, ref("x"), "ABC"); !errors.Is(err, rampart.ErrInvalid) {
		t.Errorf("Open with bad digest = %v", err)
	}
}

func TestWriteOnceAndOrphanRecovery(t *testing.T) {
	e := newEnv(t)
	r := ref("ds_1")
	if _, err := e.b.PutBytes(ctx, r, []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.PutBytes(ctx, r, []byte("w")); !errors.Is(err, rampart.ErrConflict) {
		t.Fatalf("second Put: %v, want ErrConflict", err)
	}
	// A crash between storing the key and the blob leaves an orphan key.
	r2 := ref("ds_2")
	if err := e.blobs.Delete(ctx, r2.BlobKey()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.kr.NewObjectKey(ctx, r2.Tenant, "dataset/ds_2/1", nil); err != nil {
		t.Fatal(err)
	}
	s, err := e.b.PutBytes(ctx, r2, []byte("recovered"))
	if err != nil {
		t.Fatalf("Put over orphan key: %v", err)
	}
	if got, err := e.b.GetBytes(ctx, r2, s.Digest, 100); err != nil || string(got) != "recovered" {
		t.Fatalf("GetBytes = %q, %v", got, err)
	}
	// A failed Put leaves neither key nor blob.
	r3 := ref("ds_3")
	if _, err := e.b.Put(ctx, r3, io.MultiReader(strings.NewReader("partial"), errReader{})); err == nil {
		t.Fatal("Put with failing reader succeeded")
	}
	if _, err := e.keys.GetKeyset(ctx, "dek/tn_bank/dataset/ds_3/1"); !errors.Is(err, rampart.ErrNotFound) {
		t.Fatalf("failed Put left its data key: %v", err)
	}
	if _, err := e.blobs.Stat(ctx, r3.BlobKey()); !errors.Is(err, rampart.ErrNotFound) {
		t.Fatalf("failed Put left a blob: %v", err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("upload aborted") }

func blobPath(e *env, r barrier.Ref) string {
	return filepath.Join(e.dir, "blobs", filepath.FromSlash(r.BlobKey()))
}

func TestTamper(t *testing.T) {
	e := newEnv(t)
	data := bytes.Repeat([]byte("0123456789abcdef"), 200000) // ~3 MiB: several segments
	r := ref("ds_t")
	s, err := e.b.PutBytes(ctx, r, data)
	if err != nil {
		t.Fatal(err)
	}
	path := blobPath(e, r)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	positions := []int{0, 10, 40, len(orig) / 3, len(orig) / 2, len(orig) - 20, len(orig) - 1}
	for _, pos := range positions {
		bad := bytes.Clone(orig)
		bad[pos] ^= 0x01
		if err := os.WriteFile(path, bad, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := e.b.Verify(ctx, r, s.Digest); !errors.Is(err, barrier.ErrIntegrity) {
			t.Errorf("flipped byte %d of %d: Verify = %v, want ErrIntegrity", pos, len(orig), err)
		}
	}
	// Truncation, and extension.
	for _, bad := range [][]byte{orig[:len(orig)-1], orig[:len(orig)/2], append(bytes.Clone(orig), 0)} {
		os.WriteFile(path, bad, 0o600)
		if _, err := e.b.Verify(ctx, r, s.Digest); !errors.Is(err, barrier.ErrIntegrity) {
			t.Errorf("resized blob (%d bytes): Verify = %v", len(bad), err)
		}
	}
	os.WriteFile(path, orig, 0o600)
	if _, err := e.b.Verify(ctx, r, s.Digest); err != nil {
		t.Fatalf("restored blob: %v", err)
	}
	// Wrong digest recorded: the read fails at EOF instead of io.EOF.
	rc, err := e.b.Open(ctx, r, digest([]byte("something else")))
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(io.Discard, rc)
	rc.Close()
	if !errors.Is(err, barrier.ErrIntegrity) || !errors.Is(err, rampart.ErrInternal) {
		t.Fatalf("digest mismatch: %v, want ErrIntegrity", err)
	}
}

// A blob (and even its wrapped key) moved to another reference does not open:
// the associated data binds tenant, kind, id and version.
func TestMovedBlobFails(t *testing.T) {
	e := newEnv(t)
	src := ref("ds_src")
	s, err := e.b.PutBytes(ctx, src, []byte("secret rows"))
	if err != nil {
		t.Fatal(err)
	}
	ct, _ := os.ReadFile(blobPath(e, src))
	wrapped, _ := e.keys.GetKeyset(ctx, "dek/tn_bank/dataset/ds_src/1")
	dsts := []barrier.Ref{
		{Tenant: "tn_bank", Kind: "dataset", ID: "ds_src", Version: 2},
		{Tenant: "tn_bank", Kind: "dataset", ID: "ds_dst", Version: 1},
		{Tenant: "tn_bank", Kind: "model", ID: "ds_src", Version: 1},
		{Tenant: "tn_shop", Kind: "dataset", ID: "ds_src", Version: 1},
	}
	for _, dst := range dsts {
		// Case 1: the destination has its own key; only the blob is swapped.
		if _, err := e.b.PutBytes(ctx, dst, []byte("other")); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(blobPath(e, dst), ct, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := e.b.Verify(ctx, dst, s.Digest); err == nil {
			t.Errorf("blob moved to %v opened", dst)
		}
		// Case 2: the wrapped key is copied along too.
		name := "dek/" + dst.Tenant + "/" + dst.Kind + "/" + dst.ID + "/1"
		if dst.Version == 2 {
			name = "dek/tn_bank/dataset/ds_src/2"
		}
		old, _ := e.keys.GetKeyset(ctx, name)
		if err := e.keys.UpdateKeyset(ctx, name, old, wrapped); err != nil {
			t.Fatal(err)
		}
		if _, err := e.b.Verify(ctx, dst, s.Digest); err == nil {
			t.Errorf("blob and key moved to %v opened", dst)
		}
	}
}

func TestShred(t *testing.T) {
	e := newEnv(t)
	r := ref("ds_shred")
	s, err := e.b.PutBytes(ctx, r, []byte("to be forgotten"))
	if err != nil {
		t.Fatal(err)
	}
	backup, _ := os.ReadFile(blobPath(e, r))
	if err := e.b.Shred(ctx, r); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(blobPath(e, r)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("blob survives Shred")
	}
	if _, err := e.b.Open(ctx, r, s.Digest); !errors.Is(err, rampart.ErrNotFound) {
		t.Fatalf("Open after Shred: %v, want ErrNotFound", err)
	}
	// DATA-8: restoring the ciphertext from a backup recovers nothing.
	os.MkdirAll(filepath.Dir(blobPath(e, r)), 0o700)
	if err := os.WriteFile(blobPath(e, r), backup, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.Open(ctx, r, s.Digest); !errors.Is(err, rampart.ErrNotFound) {
		t.Fatalf("Open of restored backup after Shred: %v, want ErrNotFound", err)
	}
	if err := e.b.Shred(ctx, r); err != nil {
		t.Fatalf("second Shred: %v", err)
	}
}

// TestCanary (DATA-1): a distinctive plaintext stored through the barrier
// appears in no byte of any file under the data directory, nor in any stored
// keyset, in any common encoding.
func TestCanary(t *testing.T) {
	e := newEnv(t)
	canary := []byte("CANARY-7f3a9c-rampart-plaintext-must-never-hit-disk")
	big := bytes.Repeat(append(bytes.Clone(canary), '\n'), 40000) // ~2 MiB
	var refs []barrier.Ref
	for i, data := range [][]byte{canary, big} {
		r := barrier.Ref{Tenant: "tn_bank", Kind: "dataset", ID: "ds_canary", Version: i}
		if _, err := e.b.PutBytes(ctx, r, data); err != nil {
			t.Fatal(err)
		}
		refs = append(refs, r)
	}
	if err := e.kr.RotateTenantKEK(ctx, "tn_bank"); err != nil {
		t.Fatal(err)
	}
	// Emulate the metadata database: dump every wrapped keyset to a file.
	for name, b := range e.keys.Snapshot() {
		p := filepath.Join(e.dir, "keysets", filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	needles := [][]byte{canary, canary[:24], []byte(hex.EncodeToString(canary[:24])),
		[]byte(base64.StdEncoding.EncodeToString(canary[:24]))}
	files := 0
	err := filepath.WalkDir(e.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files++
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, n := range needles {
			if bytes.Contains(b, n) {
				t.Errorf("canary %q found in %s", n, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 5 {
		t.Fatalf("only %d files scanned", files)
	}
	// And the data is still there for whoever holds the keys.
	if got, err := e.b.GetBytes(ctx, refs[0], digest(canary), 1<<10); err != nil || !bytes.Equal(got, canary) {
		t.Fatalf("canary does not read back: %v", err)
	}
}

// pattern yields n pseudo-random bytes without holding them in memory and
// records the peak heap every few MiB.
type pattern struct {
	n, i, next int64
	peak       *uint64
}

func (p *pattern) Read(b []byte) (int, error) {
	if p.i >= p.n {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), p.n-p.i)]
	for k := range b {
		x := uint64(p.i + int64(k))
		b[k] = byte(x*2654435761>>15) ^ byte(x>>10)
	}
	p.i += int64(len(b))
	if p.i >= p.next {
		p.next += 4 << 20
		sampleHeap(p.peak)
	}
	return len(b), nil
}

func sampleHeap(peak *uint64) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	*peak = max(*peak, ms.HeapAlloc)
}

type heapWriter struct {
	n, next int64
	peak    *uint64
}

func (w *heapWriter) Write(b []byte) (int, error) {
	w.n += int64(len(b))
	if w.n >= w.next {
		w.next += 4 << 20
		sampleHeap(w.peak)
	}
	return len(b), nil
}

// TestLargeObjectFlatMemory streams 64 MiB in and out; the heap must not
// grow with the object (streaming AEAD, 1 MiB segments).
func TestLargeObjectFlatMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB stream")
	}
	e := newEnv(t)
	const size = 64 << 20
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak uint64
	r := ref("ds_big")
	s, err := e.b.Put(ctx, r, &pattern{n: size, peak: &peak})
	if err != nil {
		t.Fatal(err)
	}
	if s.Size != size {
		t.Fatalf("size %d", s.Size)
	}
	rc, err := e.b.Open(ctx, r, s.Digest)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(&heapWriter{peak: &peak}, rc)
	rc.Close()
	if err != nil || n != size {
		t.Fatalf("read back %d bytes: %v", n, err)
	}
	growth := int64(peak) - int64(base.HeapAlloc)
	t.Logf("heap: base %d KiB, peak %d KiB, growth %d KiB", base.HeapAlloc>>10, peak>>10, growth>>10)
	if growth > 16<<20 {
		t.Fatalf("heap grew by %d MiB for a 64 MiB object", growth>>20)
	}
}

// FuzzRefValidate: any accepted Ref maps to a confined blob key and keyset
// name (no traversal, no separator inside a field).
func FuzzRefValidate(f *testing.F) {
	f.Add("tn_a", "dataset", "ds_1", 1)
	f.Add("..", "k", "i", 0)
	f.Add("t", "a/b", "c", 3)
	f.Add("t", "k", "i\x00", -1)
	f.Fuzz(func(t *testing.T, tenant, kind, id string, version int) {
		r := barrier.Ref{Tenant: tenant, Kind: kind, ID: id, Version: version}
		if r.Validate() != nil {
			return
		}
		key := r.BlobKey()
		if strings.Count(key, "/") != 4 || strings.Contains(key, "//") || strings.ContainsAny(key, "\\\x00") {
			t.Fatalf("accepted ref %q maps to unsafe key %q", r, key)
		}
		for _, seg := range strings.Split(key, "/") {
			if seg == "" || seg[0] == '.' {
				t.Fatalf("accepted ref %q maps to key %q with bad segment", r, key)
			}
		}
	})
}

// BenchmarkPutOpen measures sealing and opening an 8 MiB object on disk.
func BenchmarkPutOpen(b *testing.B) {
	dir := b.TempDir()
	rk, err := keyring.ParseRootKey(mustRootValue(b))
	if err != nil {
		b.Fatal(err)
	}
	kr, err := keyring.Open(ctx, keyringtest.NewMemStore(), rk)
	if err != nil {
		b.Fatal(err)
	}
	bs, err := disk.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer bs.Close()
	br := barrier.New(kr, bs)
	const size = 8 << 20
	var peak uint64
	b.SetBytes(size)
	for i := 0; b.Loop(); i++ {
		r := barrier.Ref{Tenant: "tn_b", Kind: "bench", ID: "o", Version: i}
		s, err := br.Put(ctx, r, &pattern{n: size, next: 1 << 62, peak: &peak})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := br.Verify(ctx, r, s.Digest); err != nil {
			b.Fatal(err)
		}
	}
}

func mustRootValue(b *testing.B) string {
	v, err := keyring.NewRootKeyValue()
	if err != nil {
		b.Fatal(err)
	}
	return v
}

// BenchmarkPutPipe seals 64 MiB handed over in 1 MiB writes through a pipe,
// as dataset ingestion does, and reports MB per CPU-second (user + system,
// whole process) besides wall-clock throughput.
func BenchmarkPutPipe(b *testing.B) {
	rk, err := keyring.ParseRootKey(mustRootValue(b))
	if err != nil {
		b.Fatal(err)
	}
	kr, err := keyring.Open(ctx, keyringtest.NewMemStore(), rk)
	if err != nil {
		b.Fatal(err)
	}
	bs, err := disk.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer bs.Close()
	br := barrier.New(kr, bs)
	const size, block = 64 << 20, 1 << 20
	src := make([]byte, block)
	for i := range src {
		src[i] = byte(i * 2654435761 >> 15)
	}
	b.SetBytes(size)
	cpu0 := cpuSeconds()
	for i := 0; b.Loop(); i++ {
		pr, pw := io.Pipe()
		go func() {
			for n := 0; n < size; n += block {
				if _, err := pw.Write(src); err != nil {
					return
				}
			}
			pw.Close()
		}()
		r := barrier.Ref{Tenant: "tn_b", Kind: "bench", ID: "p", Version: i}
		if _, err := br.Put(ctx, r, pr); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(size)*float64(b.N)/1e6/(cpuSeconds()-cpu0), "MB/cpu-s")
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

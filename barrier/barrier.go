// Package barrier is the only place where plaintext meets storage (DATA-1).
//
// Every object is sealed with its own data key (DEK): a fresh Tink streaming
// AEAD keyset (AES-256-GCM-HKDF, 1 MiB segments) wrapped by the tenant's KEK
// and kept in the keyset store, never beside the ciphertext. The associated
// data binds tenant, kind, id and version, so ciphertext (or a wrapped DEK)
// moved to another reference does not open. Objects stream in and out with
// flat memory, and reads verify the plaintext SHA-256 recorded at write time
// (DATA-3). Shred deletes the DEK, which makes every copy of the ciphertext,
// backups included, undecryptable (DATA-8).
package barrier

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"sync"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/blob"
	"github.com/rampart-mlaas/rampart/keyring"
)

// ErrIntegrity reports a stored object that does not decrypt or whose
// plaintext does not match its recorded digest (tampering, corruption,
// truncation or a blob moved from elsewhere). It matches rampart.ErrInternal.
var ErrIntegrity = &rampart.Error{Code: rampart.CodeInternal, Message: "stored object failed its integrity check"}

// Ref names one immutable object version. Tenant, Kind and ID are 1..128
// characters of [A-Za-z0-9._-] not starting with "."; Version is ≥ 0.
type Ref struct {
	Tenant  string
	Kind    string // e.g. "dataset", "model", "artifact"
	ID      string
	Version int
}

func (r Ref) String() string {
	return r.Tenant + "/" + r.Kind + "/" + r.ID + "@" + strconv.Itoa(r.Version)
}

// Validate checks every field, so a Ref can never escape its tenant's
// namespace in the blob or keyset store (no path traversal).
func (r Ref) Validate() error {
	for _, f := range []struct{ name, v string }{{"tenant", r.Tenant}, {"kind", r.Kind}, {"id", r.ID}} {
		if len(f.v) == 0 || len(f.v) > 128 || f.v[0] == '.' {
			return rampart.Invalid(f.name, "%s must be 1..128 characters, not starting with '.'", f.name)
		}
		for i := 0; i < len(f.v); i++ {
			c := f.v[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
				return rampart.Invalid(f.name, "%s contains a disallowed character", f.name)
			}
		}
	}
	if r.Version < 0 {
		return rampart.Invalid("version", "version must not be negative")
	}
	return nil
}

// BlobKey is where the ciphertext lives in the blob store.
func (r Ref) BlobKey() string {
	return "t/" + r.Tenant + "/" + r.Kind + "/" + r.ID + "/" + strconv.Itoa(r.Version)
}

// object names the DEK inside the tenant's namespace of the keyring.
func (r Ref) object() string { return r.Kind + "/" + r.ID + "/" + strconv.Itoa(r.Version) }

// associatedData binds ciphertext and wrapped DEK to this exact reference.
// Fields cannot contain NUL, so the encoding is unambiguous.
func (r Ref) associatedData() []byte {
	return []byte("rampart/barrier/v1\x00" + r.Tenant + "\x00" + r.Kind + "\x00" + r.ID + "\x00" + strconv.Itoa(r.Version))
}

// Sealed describes a stored object.
type Sealed struct {
	Digest string // hex SHA-256 of the plaintext
	Size   int64  // plaintext bytes
}

// Barrier seals objects into a blob store with keys from a keyring.
type Barrier struct {
	keys  *keyring.Keyring
	blobs blob.Store
}

// New returns a barrier over keys and blobs.
func New(keys *keyring.Keyring, blobs blob.Store) *Barrier {
	return &Barrier{keys: keys, blobs: blobs}
}

// Put encrypts r under a fresh data key and stores it at ref, streaming with
// constant memory. References are write-once: Put fails with
// rampart.ErrConflict if ref already holds an object. A data key left
// without its blob by a crash is replaced.
func (b *Barrier) Put(ctx context.Context, ref Ref, r io.Reader) (Sealed, error) {
	w, err := b.Create(ctx, ref)
	if err != nil {
		return Sealed{}, err
	}
	// One large buffer: the encryptor gets whole segments.
	bp := copyBufs.Get().(*[]byte)
	_, err = io.CopyBuffer(w, r, *bp)
	copyBufs.Put(bp)
	if err != nil {
		w.Abort()
		return Sealed{}, fmt.Errorf("barrier: put %s: %w", ref, err)
	}
	return w.Commit()
}

// Writer seals one object as it is written (Create): each Write is hashed
// and encrypted on the caller's goroutine, and the ciphertext goes straight
// to the blob store's writer, without the pipes and copies of Put over a
// reader (issue 5). Nothing is stored, and the data key is destroyed, unless
// Commit succeeds. A Writer is used by one goroutine; Commit or Abort must
// be called.
type Writer struct {
	b   *Barrier
	ctx context.Context
	ref Ref
	h   hash.Hash
	ew  io.WriteCloser // the encryptor, writing into bw
	bw  blob.Writer
	n   int64
	err error // sticky
	end bool  // Commit or Abort was called
}

// Create starts sealing a new object at ref under a fresh data key, like
// Put (write-once; an orphaned key from a crash is replaced).
func (b *Barrier) Create(ctx context.Context, ref Ref) (*Writer, error) {
	if err := ref.Validate(); err != nil {
		return nil, err
	}
	ad := ref.associatedData()
	sa, err := b.keys.NewObjectKey(ctx, ref.Tenant, ref.object(), ad)
	if errors.Is(err, rampart.ErrConflict) {
		if _, serr := b.blobs.Stat(ctx, ref.BlobKey()); !errors.Is(serr, rampart.ErrNotFound) {
			if serr != nil {
				return nil, fmt.Errorf("barrier: put %s: %w", ref, serr)
			}
			return nil, &rampart.Error{Code: rampart.CodeConflict, Message: "object version already exists"}
		}
		// RES-2: orphaned key from an interrupted Put; nothing was sealed with it.
		if err := b.keys.ShredObjectKey(ctx, ref.Tenant, ref.object()); err != nil {
			return nil, fmt.Errorf("barrier: put %s: %w", ref, err)
		}
		sa, err = b.keys.NewObjectKey(ctx, ref.Tenant, ref.object(), ad)
	}
	if err != nil {
		return nil, fmt.Errorf("barrier: put %s: %w", ref, err)
	}
	w := &Writer{b: b, ctx: ctx, ref: ref, h: sha256.New()}
	w.bw, err = createBlob(ctx, b.blobs, ref.BlobKey())
	if err == nil {
		w.ew, err = sa.NewEncryptingWriter(w.bw, ad) // writes the header
		if err != nil {
			w.bw.Abort()
		}
	}
	if err != nil {
		w.shred()
		return nil, fmt.Errorf("barrier: put %s: %w", ref, err)
	}
	return w, nil
}

// Write hashes and encrypts p.
func (w *Writer) Write(p []byte) (int, error) {
	if w.end {
		return 0, fmt.Errorf("barrier: put %s: write after Commit or Abort", w.ref)
	}
	if w.err != nil {
		return 0, w.err
	}
	w.h.Write(p) // DATA-3: the digest of exactly the plaintext sealed
	n, err := w.ew.Write(p)
	w.n += int64(n)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		w.err = fmt.Errorf("barrier: put %s: %w", w.ref, err)
		return n, w.err
	}
	return n, nil
}

// Commit writes the final, authenticated segment and makes the object
// durable (blob.Writer.Commit). On any error nothing is stored and the data
// key is destroyed.
func (w *Writer) Commit() (Sealed, error) {
	if w.end {
		return Sealed{}, fmt.Errorf("barrier: put %s: Commit after Commit or Abort", w.ref)
	}
	w.end = true
	err := w.err
	if err == nil {
		if err = w.ew.Close(); err != nil {
			err = fmt.Errorf("barrier: put %s: %w", w.ref, err)
		}
	}
	if err != nil {
		w.bw.Abort()
		w.shred()
		return Sealed{}, err
	}
	if _, err := w.bw.Commit(); err != nil {
		// Nothing acknowledged: drop the key (the blob commit is atomic,
		// so no partial ciphertext exists under the key either).
		w.shred()
		return Sealed{}, fmt.Errorf("barrier: put %s: %w", w.ref, err)
	}
	return Sealed{Digest: hex.EncodeToString(w.h.Sum(nil)), Size: w.n}, nil
}

// Abort discards the object and destroys its data key. It is a no-op after
// Commit.
func (w *Writer) Abort() {
	if w.end {
		return
	}
	w.end = true
	w.bw.Abort()
	w.shred()
}

func (w *Writer) shred() {
	_ = w.b.keys.ShredObjectKey(context.WithoutCancel(w.ctx), w.ref.Tenant, w.ref.object())
}

// createBlob opens a blob writer: the store's own (blob.Creator), or Put
// in a goroutine reading a pipe.
func createBlob(ctx context.Context, s blob.Store, key string) (blob.Writer, error) {
	if c, ok := s.(blob.Creator); ok {
		return c.Create(ctx, key)
	}
	pr, pw := io.Pipe()
	w := &pipeBlob{pw: pw, done: make(chan error, 1)}
	go func() {
		n, err := s.Put(ctx, key, pr)
		w.n = n
		pr.CloseWithError(errors.New("barrier: blob store stopped reading")) // unblock the writer on failure
		w.done <- err
	}()
	return w, nil
}

// pipeBlob is a blob.Writer over Store.Put for stores that are not Creators.
type pipeBlob struct {
	pw   *io.PipeWriter
	done chan error
	n    int64 // set before done receives
	end  bool
}

func (p *pipeBlob) Write(b []byte) (int, error) { return p.pw.Write(b) }

func (p *pipeBlob) Commit() (int64, error) {
	if p.end {
		return 0, errors.New("blob: Commit after Commit or Abort")
	}
	p.end = true
	p.pw.Close() // EOF: Put commits what it read
	err := <-p.done
	return p.n, err
}

func (p *pipeBlob) Abort() {
	if p.end {
		return
	}
	p.end = true
	p.pw.CloseWithError(errAborted) // Put fails and stores nothing
	<-p.done
}

var errAborted = errors.New("barrier: aborted")

// copyBufs holds Put's copy buffers, one Tink segment (1 MiB) each.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// PutBytes is Put for a small in-memory object.
func (b *Barrier) PutBytes(ctx context.Context, ref Ref, data []byte) (Sealed, error) {
	return b.Put(ctx, ref, bytes.NewReader(data))
}

// ValidDigest reports whether d is a lower-case hex SHA-256.
func ValidDigest(d string) bool {
	if len(d) != sha256.Size*2 {
		return false
	}
	for i := 0; i < len(d); i++ {
		if c := d[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Open returns a reader of the object's plaintext, decrypting as it reads.
// Every segment is authenticated; at the end the plaintext SHA-256 is
// compared with wantDigest and, on mismatch, the final Read returns an error
// matching ErrIntegrity instead of io.EOF (DATA-3). Callers must treat any
// error as "the data is bad" and discard what they read; use Verify to check
// before use. A shredded or missing object yields rampart.ErrNotFound.
func (b *Barrier) Open(ctx context.Context, ref Ref, wantDigest string) (io.ReadCloser, error) {
	if err := ref.Validate(); err != nil {
		return nil, err
	}
	if !ValidDigest(wantDigest) {
		return nil, rampart.Invalid("digest", "digest must be a lower-case hex SHA-256")
	}
	ad := ref.associatedData()
	sa, err := b.keys.ObjectKey(ctx, ref.Tenant, ref.object(), ad)
	if err != nil {
		if errors.Is(err, rampart.ErrNotFound) || errors.Is(err, rampart.ErrInvalid) {
			return nil, fmt.Errorf("barrier: open %s: %w", ref, err)
		}
		return nil, fmt.Errorf("barrier: open %s: %w: %w", ref, ErrIntegrity, err)
	}
	rc, err := b.blobs.Get(ctx, ref.BlobKey())
	if err != nil {
		return nil, fmt.Errorf("barrier: open %s: %w", ref, err)
	}
	dr, err := sa.NewDecryptingReader(rc, ad)
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("barrier: open %s: %w: %w", ref, ErrIntegrity, err)
	}
	want, _ := hex.DecodeString(wantDigest)
	return &verifyingReader{r: dr, c: rc, h: sha256.New(), want: want, ref: ref}, nil
}

// verifyingReader hashes the plaintext and checks it at EOF (DATA-3).
type verifyingReader struct {
	r    io.Reader
	c    io.Closer
	h    hash.Hash
	want []byte
	ref  Ref
	err  error // sticky
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	switch {
	case err == io.EOF:
		if !bytes.Equal(v.h.Sum(nil), v.want) {
			v.err = fmt.Errorf("barrier: %s: plaintext digest mismatch: %w", v.ref, ErrIntegrity)
			return n, v.err
		}
		v.err = io.EOF
	case err != nil:
		// Authentication failure of a segment, truncation, or I/O error.
		v.err = fmt.Errorf("barrier: read %s: %w: %w", v.ref, ErrIntegrity, err)
		return n, v.err
	}
	return n, v.err
}

func (v *verifyingReader) Close() error { return v.c.Close() }

// Verify reads the whole object, checking authenticity and digest, and
// returns its size. Run it before a job consumes the data (DATA-3).
func (b *Barrier) Verify(ctx context.Context, ref Ref, wantDigest string) (Sealed, error) {
	rc, err := b.Open(ctx, ref, wantDigest)
	if err != nil {
		return Sealed{}, err
	}
	defer rc.Close()
	n, err := io.Copy(io.Discard, rc)
	if err != nil {
		return Sealed{}, err
	}
	return Sealed{Digest: wantDigest, Size: n}, nil
}

// GetBytes reads a whole small object, refusing more than max bytes
// (rampart.ErrTooLarge).
func (b *Barrier) GetBytes(ctx context.Context, ref Ref, wantDigest string, max int64) ([]byte, error) {
	rc, err := b.Open(ctx, ref, wantDigest)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, rampart.Errorf(rampart.CodeTooLarge, "object exceeds %d bytes", max)
	}
	if _, err := io.Copy(io.Discard, rc); err != nil { // reach EOF: digest check
		return nil, err
	}
	return data, nil
}

// Shred destroys the object: first its data key (DATA-8: from then on no
// copy of the ciphertext, in any backup, can be decrypted), then the blob.
// Shredding an absent object is not an error.
func (b *Barrier) Shred(ctx context.Context, ref Ref) error {
	if err := ref.Validate(); err != nil {
		return err
	}
	if err := b.keys.ShredObjectKey(ctx, ref.Tenant, ref.object()); err != nil {
		return fmt.Errorf("barrier: shred %s: %w", ref, err)
	}
	if err := b.blobs.Delete(ctx, ref.BlobKey()); err != nil {
		return fmt.Errorf("barrier: shred %s: key destroyed, blob not deleted: %w", ref, err)
	}
	return nil
}

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
	if err := ref.Validate(); err != nil {
		return Sealed{}, err
	}
	ad := ref.associatedData()
	sa, err := b.keys.NewObjectKey(ctx, ref.Tenant, ref.object(), ad)
	if errors.Is(err, rampart.ErrConflict) {
		if _, serr := b.blobs.Stat(ctx, ref.BlobKey()); !errors.Is(serr, rampart.ErrNotFound) {
			if serr != nil {
				return Sealed{}, fmt.Errorf("barrier: put %s: %w", ref, serr)
			}
			return Sealed{}, &rampart.Error{Code: rampart.CodeConflict, Message: "object version already exists"}
		}
		// RES-2: orphaned key from an interrupted Put; nothing was sealed with it.
		if err := b.keys.ShredObjectKey(ctx, ref.Tenant, ref.object()); err != nil {
			return Sealed{}, fmt.Errorf("barrier: put %s: %w", ref, err)
		}
		sa, err = b.keys.NewObjectKey(ctx, ref.Tenant, ref.object(), ad)
	}
	if err != nil {
		return Sealed{}, fmt.Errorf("barrier: put %s: %w", ref, err)
	}

	// Encrypt in a goroutine writing into a pipe that the blob store reads:
	// memory stays at about one ciphertext segment.
	pr, pw := io.Pipe()
	type result struct {
		sealed Sealed
		err    error
	}
	done := make(chan result, 1)
	go func() {
		h := sha256.New()
		ew, err := sa.NewEncryptingWriter(pw, ad)
		if err != nil {
			pw.CloseWithError(err)
			done <- result{err: err}
			return
		}
		// One large buffer: a writer handing over big blocks (dataset
		// ingestion writes 1 MiB) crosses the pipe in one read instead of
		// 32 (io.Copy's 32 KiB), and the encryptor gets whole segments.
		bp := copyBufs.Get().(*[]byte)
		n, err := io.CopyBuffer(ew, io.TeeReader(r, h), *bp)
		copyBufs.Put(bp)
		if err == nil {
			err = ew.Close() // writes the final, authenticated segment
		}
		pw.CloseWithError(err) // nil: EOF for the reader
		done <- result{Sealed{Digest: hex.EncodeToString(h.Sum(nil)), Size: n}, err}
	}()
	_, perr := b.blobs.Put(ctx, ref.BlobKey(), pr)
	pr.CloseWithError(errors.New("barrier: blob store stopped reading")) // unblock the encryptor on failure
	res := <-done
	if perr == nil && res.err != nil {
		perr = res.err
	}
	if perr != nil {
		// Nothing acknowledged: drop the key (the blob Put is atomic, so no
		// partial ciphertext exists under the key either).
		_ = b.keys.ShredObjectKey(context.WithoutCancel(ctx), ref.Tenant, ref.object())
		return Sealed{}, fmt.Errorf("barrier: put %s: %w", ref, perr)
	}
	return res.sealed, nil
}

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

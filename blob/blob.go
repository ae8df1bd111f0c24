// Package blob defines Rampart's blob store: a flat namespace of opaque,
// immutable-by-convention byte objects addressed by a validated key.
//
// Blob stores only ever see ciphertext: plaintext meets storage only in the
// barrier package (DATA-1). Implementations live in sub-packages (blob/disk;
// S3 later) and must all pass the conformance suite in blob/blobtest.
package blob

import (
	"context"
	"io"
	"strings"
	"time"

	"github.com/rampart-mlaas/rampart"
)

// MaxKeyLen bounds the length of a key.
const MaxKeyLen = 512

// Info describes a stored object.
type Info struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// Store is a blob store. All methods are safe for concurrent use.
//
// Errors: a key that fails ValidateKey yields an error matching
// rampart.ErrInvalid; a missing object yields rampart.ErrNotFound.
type Store interface {
	// Put stores the bytes of r under key, replacing any previous object
	// atomically: a reader sees either the old object or the new one, never a
	// mix, and nothing of a Put that failed or crashed (RES-2). Put returns
	// only once the object is durable, with the number of bytes stored.
	Put(ctx context.Context, key string, r io.Reader) (int64, error)
	// Get opens the object for reading.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Stat describes the object.
	Stat(ctx context.Context, key string) (Info, error)
	// Delete removes the object. Deleting an absent object is not an error.
	Delete(ctx context.Context, key string) error
	// List returns, sorted, every key that starts with prefix (a plain
	// string prefix, not necessarily ending in "/"). An empty prefix lists all.
	List(ctx context.Context, prefix string) ([]string, error)
}

// Writer is an object being written by a Creator. Nothing of it is visible
// under its key until Commit returns nil, and nothing at all if it is
// aborted, fails or crashes (RES-2). A Writer is used by one goroutine.
type Writer interface {
	io.Writer
	// Commit makes the object durable and then visible under its key,
	// replacing any previous object atomically, like Put, and returns the
	// number of bytes stored. On error nothing was stored.
	Commit() (int64, error)
	// Abort discards the object. It is a no-op after Commit and may be
	// called more than once.
	Abort()
}

// Creator is implemented by stores that take an object's bytes as writes
// (no pipe and goroutine between a producer such as an encryptor and the
// store). Create validates key like Put; ctx bounds the writes.
type Creator interface {
	Create(ctx context.Context, key string) (Writer, error)
}

// ValidateKey checks that key is a safe object key: 1..MaxKeyLen bytes of
// "/"-separated segments, each segment non-empty, made only of
// [A-Za-z0-9._-], not starting with "." (so no "." or ".." segments and no
// hidden files, which stores may use for temporary files). Hence no absolute
// paths, no empty segments, no backslashes and no path traversal.
func ValidateKey(key string) error {
	if key == "" || len(key) > MaxKeyLen {
		return rampart.Invalid("key", "blob key must be 1..%d bytes", MaxKeyLen)
	}
	for seg := range strings.SplitSeq(key, "/") {
		if err := validSegment(seg); err != nil {
			return err
		}
	}
	return nil
}

func validSegment(seg string) error {
	if seg == "" {
		return rampart.Invalid("key", "blob key has an empty segment")
	}
	if seg[0] == '.' {
		return rampart.Invalid("key", "blob key segment must not start with '.'")
	}
	for i := 0; i < len(seg); i++ {
		if !segByte(seg[i]) {
			return rampart.Invalid("key", "blob key contains a disallowed character")
		}
	}
	return nil
}

func segByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == '_' || c == '-'
}

// ValidatePrefix checks a List prefix: empty, or a string that could begin a
// valid key (a trailing "/" or a partial final segment is allowed).
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if len(prefix) > MaxKeyLen {
		return rampart.Invalid("prefix", "blob prefix too long")
	}
	trimmed := strings.TrimSuffix(prefix, "/")
	if trimmed == "" {
		return rampart.Invalid("prefix", "blob prefix must not start with '/'")
	}
	if err := ValidateKey(trimmed); err != nil {
		return rampart.Invalid("prefix", "invalid blob prefix")
	}
	return nil
}

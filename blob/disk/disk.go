// Package disk is a blob.Store on the local file system.
//
// Every path is reached through an os.Root opened on the store directory, so
// no key, symlink or race can make it read or write outside that directory.
// Writes are atomic and durable (RES-2): the bytes go to a hidden temporary
// file in the destination directory, which is fsynced, renamed over the
// destination, and the directory is fsynced.
package disk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/blob"
)

// tmpPrefix marks temporary files; blob keys cannot start a segment with ".",
// so they never collide with objects and List skips them.
const tmpPrefix = ".tmp-"

// Store is a blob.Store rooted at one directory.
type Store struct {
	root *os.Root
	dir  string
}

var _ blob.Store = (*Store)(nil)

// Open opens (creating it with mode 0700 if needed) the directory dir as a
// blob store. Leftover temporary files from a crash are removed.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("blob/disk: create %s: %w", dir, err)
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("blob/disk: open %s: %w", dir, err)
	}
	s := &Store{root: r, dir: dir}
	s.removeTemps()
	return s, nil
}

// removeTemps deletes temporary files left by a Put interrupted by a crash.
// They were never renamed into place, so no acknowledged write is lost.
func (s *Store) removeTemps() {
	_ = fs.WalkDir(s.root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if !d.IsDir() && strings.HasPrefix(d.Name(), tmpPrefix) {
			_ = s.root.Remove(p)
		}
		return nil
	})
}

// Close releases the directory handle.
func (s *Store) Close() error { return s.root.Close() }

// String names the store for logs.
func (s *Store) String() string { return "blob/disk(" + s.dir + ")" }

func notFound(key string, err error) error {
	return &rampart.Error{Code: rampart.CodeNotFound, Message: "blob not found", Err: fmt.Errorf("%s: %w", key, err)}
}

// Put implements blob.Store: Create, the reader's bytes read straight into
// the writer's chunks, Commit.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	w, err := s.Create(ctx, key)
	if err != nil {
		return 0, err
	}
	wr := w.(*writer)
	n, err := wr.ReadFrom(r)
	if err != nil {
		wr.Abort()
		return n, fmt.Errorf("blob/disk: write %s: %w", key, err)
	}
	return wr.Commit()
}

// mkdirAll creates dir and its parents, returning the directories it created
// (deepest first) so that their parents can be fsynced.
func (s *Store) mkdirAll(dir string) ([]string, error) {
	if dir == "." {
		return nil, nil
	}
	var missing []string
	for d := dir; d != "."; d = path.Dir(d) {
		fi, err := s.root.Stat(d)
		if err == nil {
			if !fi.IsDir() {
				return nil, rampart.Invalid("key", "blob key prefix collides with an existing object")
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("blob/disk: stat %s: %w", d, err)
		}
		missing = append(missing, d)
	}
	if len(missing) == 0 {
		return nil, nil
	}
	if err := s.root.MkdirAll(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) || isNotDir(err) {
			return nil, rampart.Invalid("key", "blob key prefix collides with an existing object")
		}
		return nil, fmt.Errorf("blob/disk: mkdir %s: %w", dir, err)
	}
	return missing, nil
}

func (s *Store) syncDir(dir string) error {
	d, err := s.root.Open(dir)
	if err != nil {
		return fmt.Errorf("blob/disk: open dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("blob/disk: fsync dir %s: %w", dir, err)
	}
	return nil
}

// Get implements blob.Store.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := blob.ValidateKey(key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := s.root.Open(key)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
			return nil, notFound(key, err)
		}
		return nil, fmt.Errorf("blob/disk: open %s: %w", key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("blob/disk: stat %s: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, notFound(key, errors.New("not a regular file"))
	}
	return f, nil
}

// Stat implements blob.Store.
func (s *Store) Stat(ctx context.Context, key string) (blob.Info, error) {
	if err := blob.ValidateKey(key); err != nil {
		return blob.Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return blob.Info{}, err
	}
	fi, err := s.root.Lstat(key)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
			return blob.Info{}, notFound(key, err)
		}
		return blob.Info{}, fmt.Errorf("blob/disk: stat %s: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		return blob.Info{}, notFound(key, errors.New("not a regular file"))
	}
	return blob.Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Delete implements blob.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := blob.ValidateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	fi, err := s.root.Lstat(key)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
			return nil
		}
		return fmt.Errorf("blob/disk: stat %s: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		return nil // a directory is not an object; nothing to delete
	}
	if err := s.root.Remove(key); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob/disk: remove %s: %w", key, err)
	}
	// RES-2: an acknowledged delete (crypto-shred follow-up, DATA-8) survives a crash.
	return s.syncDir(path.Dir(key))
}

// List implements blob.Store.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	if err := blob.ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	// Walk only the deepest directory wholly named by the prefix.
	start := "."
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = prefix[:i]
	}
	var keys []string
	err := fs.WalkDir(s.root.FS(), start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
				return fs.SkipDir
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		name := d.Name()
		if p != start && strings.HasPrefix(name, ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			// Prune directories that cannot contain a match.
			if p != "." && !strings.HasPrefix(p+"/", prefix) && !strings.HasPrefix(prefix, p+"/") {
				return fs.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() && strings.HasPrefix(p, prefix) && blob.ValidateKey(p) == nil {
			keys = append(keys, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("blob/disk: list %q: %w", prefix, err)
	}
	slices.Sort(keys)
	return keys, nil
}

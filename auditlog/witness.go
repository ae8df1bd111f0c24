package auditlog

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// LoadWitness reads the checkpoint a client saw last (its witness state),
// or returns nil when it has none yet. The note is not verified here:
// Verify does that with the log's key.
func LoadWitness(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit: read witness checkpoint: %w", err)
	}
	if len(b) > MaxNoteSize {
		return nil, fmt.Errorf("%w: witness checkpoint %s is larger than %d bytes", errFormat, path, MaxNoteSize)
	}
	return b, nil
}

// SaveWitness stores a verified checkpoint as the client's new witness state,
// atomically (temporary file, fsync, rename), so a crash never leaves a
// half-written witness that would make the next verification fail.
func SaveWitness(path string, note []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("audit: save witness: %w", err)
	}
	f, err := os.CreateTemp(dir, ".witness-*")
	if err != nil {
		return fmt.Errorf("audit: save witness: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename this fails harmlessly
	if _, err := f.Write(note); err != nil {
		f.Close()
		return fmt.Errorf("audit: save witness: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("audit: save witness: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("audit: save witness: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("audit: save witness: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

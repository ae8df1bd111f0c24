package keyring

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/insecurecleartextkeyset"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// KeyWrapper encrypts and decrypts small secrets (keysets) with associated
// data. tink.AEAD satisfies it, so a Tink KMS client AEAD (HashiCorp Vault
// through tink-go-hcvault, AWS KMS through tink-go-awskms, …) plugs in as the
// root key (DATA-1: the root key can live in an external KMS).
type KeyWrapper interface {
	Encrypt(plaintext, associatedData []byte) ([]byte, error)
	Decrypt(ciphertext, associatedData []byte) ([]byte, error)
}

var _ KeyWrapper = tink.AEAD(nil)

// RootKey is the top of the key hierarchy. It wraps every tenant and system
// keyset and nothing else. Its material is never exposed or printed.
type RootKey struct {
	w      KeyWrapper
	source string
}

// String redacts the key material.
func (r *RootKey) String() string {
	if r == nil {
		return "keyring.RootKey(nil)"
	}
	return "keyring.RootKey(" + r.source + ", [REDACTED])"
}

// GoString redacts the key material, also for %#v.
func (r *RootKey) GoString() string { return r.String() }

// Source says where the key came from ("file", "env" or "kms:<label>").
func (r *RootKey) Source() string { return r.source }

// rootAEAD adapts a RootKey to tink.AEAD for keyset.Write/Read without
// exporting encryption with the root key.
type rootAEAD struct{ r *RootKey }

func (a rootAEAD) Encrypt(p, ad []byte) ([]byte, error) { return a.r.w.Encrypt(p, ad) }
func (a rootAEAD) Decrypt(c, ad []byte) ([]byte, error) { return a.r.w.Decrypt(c, ad) }

// RootKeyFromKMS makes a root key from an external key-wrapping service,
// typically a Tink KMS client AEAD. label names it in logs (e.g. the key URI
// without credentials).
func RootKeyFromKMS(w KeyWrapper, label string) (*RootKey, error) {
	if w == nil {
		return nil, errors.New("keyring: nil KMS key wrapper")
	}
	return &RootKey{w: w, source: "kms:" + label}, nil
}

// EnvVar is the environment variable that may hold the root key; the caller
// reads it and passes the value to ParseRootKey.
const EnvVar = "RAMPART_ROOT_KEY"

// maxRootKeyLen bounds a root key file or value; a one-key AEAD keyset in
// JSON is about 200 bytes.
const maxRootKeyLen = 16 << 10

// newRootKeysetJSON generates a fresh AES-256-GCM Tink keyset in JSON.
func newRootKeysetJSON() ([]byte, error) {
	h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		return nil, fmt.Errorf("keyring: generate root key: %w", err)
	}
	var buf bytes.Buffer
	// The root keyset is the one keyset that must exist in cleartext: in a
	// 0600 file or an environment variable (or not at all, with a KMS).
	if err := insecurecleartextkeyset.Write(h, keyset.NewJSONWriter(&buf)); err != nil {
		return nil, fmt.Errorf("keyring: encode root key: %w", err)
	}
	return buf.Bytes(), nil
}

func rootKeyFromJSON(b []byte, source string) (*RootKey, error) {
	if len(b) == 0 || len(b) > maxRootKeyLen {
		return nil, fmt.Errorf("%w: root keyset is empty or too large", ErrRootKeyInvalid)
	}
	h, err := insecurecleartextkeyset.Read(keyset.NewJSONReader(bytes.NewReader(b)))
	if err != nil {
		return nil, fmt.Errorf("%w: not a Tink JSON keyset", ErrRootKeyInvalid)
	}
	a, err := aead.New(h)
	if err != nil {
		return nil, fmt.Errorf("%w: keyset is not an AEAD keyset", ErrRootKeyInvalid)
	}
	return &RootKey{w: a, source: source}, nil
}

// NewRootKeyValue generates a new root key in the RAMPART_ROOT_KEY encoding:
// standard base64 of the Tink JSON keyset (the same bytes as a root key file).
func NewRootKeyValue() (string, error) {
	b, err := newRootKeysetJSON()
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// ParseRootKey decodes a RAMPART_ROOT_KEY value: standard base64 (padding
// optional, surrounding white space ignored) of a Tink JSON AEAD keyset.
// Errors match ErrRootKeyInvalid and never echo the value.
func ParseRootKey(value string) (*RootKey, error) {
	v := strings.TrimSpace(value)
	if v == "" || len(v) > maxRootKeyLen*4/3+4 {
		return nil, fmt.Errorf("%w: %s is empty or too long", ErrRootKeyInvalid, EnvVar)
	}
	enc := base64.StdEncoding
	if !strings.HasSuffix(v, "=") && len(v)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	b, err := enc.DecodeString(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %s is not base64", ErrRootKeyInvalid, EnvVar)
	}
	return rootKeyFromJSON(b, "env")
}

// LoadOrCreateRootKeyFile loads the root key from a file holding a Tink JSON
// AEAD keyset. If the file does not exist and create is true, a new key is
// generated and written with mode 0600 (atomically, never overwriting).
//
// The file must be a regular file not accessible to group or others (mode
// 0600 or stricter); otherwise loading fails with ErrRootKeyPermissions and
// the key is not read.
func LoadOrCreateRootKeyFile(path string, create bool) (*RootKey, error) {
	rk, err := loadRootKeyFile(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) || !create {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("keyring: root key file %s does not exist: %w", path, err)
		}
		return rk, err
	}
	b, err := newRootKeysetJSON()
	if err != nil {
		return nil, err
	}
	if err := writeNewFile(path, b); err != nil {
		if errors.Is(err, fs.ErrExist) { // lost a race with another creator
			return loadRootKeyFile(path)
		}
		return nil, err
	}
	return rootKeyFromJSON(b, "file")
}

func loadRootKeyFile(path string) (*RootKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("keyring: stat root key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrRootKeyPermissions, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o; run: chmod 600 %s", ErrRootKeyPermissions, path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxRootKeyLen+1))
	if err != nil {
		return nil, fmt.Errorf("keyring: read root key file: %w", err)
	}
	rk, err := rootKeyFromJSON(b, "file")
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return rk, nil
}

// writeNewFile writes b to path with mode 0600 via a temporary file, fsync
// and a no-replace link, then fsyncs the directory. It fails with
// fs.ErrExist if path exists.
func writeNewFile(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("keyring: create %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, ".rootkey-*")
	if err != nil {
		return fmt.Errorf("keyring: create root key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("keyring: chmod root key file: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("keyring: write root key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("keyring: fsync root key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("keyring: close root key file: %w", err)
	}
	// Link, unlike rename, refuses to replace an existing key.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return err
		}
		// File systems without hard links: exclusive create instead.
		if err := writeExclusive(path, b); err != nil {
			return err
		}
	}
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return fmt.Errorf("keyring: fsync %s: %w", dir, err)
		}
	}
	return nil
}

func writeExclusive(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return err
		}
		return fmt.Errorf("keyring: create root key file: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("keyring: write root key file: %w", err)
	}
	return nil
}

// Package keyring owns Rampart's key hierarchy (DATA-1, RES-3):
//
//	root key (file 0600 | RAMPART_ROOT_KEY | external KMS)
//	  └─ wraps per-tenant keysets: KEK (AES-256-GCM), MAC key (HMAC-SHA256)
//	  └─ wraps system keysets: MAC keys per purpose, Ed25519 signing keys
//	       tenant KEK └─ wraps per-object data keys (DEKs: AES-256-GCM-HKDF streaming AEAD)
//
// All cryptography is Tink's (tink-go v2), except Ed25519 key generation and
// signing, which use crypto/ed25519. Wrapped keysets are persisted through
// KeysetStore (the metadata database); the only cleartext key is the root
// key, which never touches the store.
//
// A verification record sealed with the root key lets Open refuse a wrong
// root key at start-up, before anything is written (ErrRootKeyMismatch).
// Rotation re-wraps keysets without touching bulk data (RES-3); deleting a
// DEK or a tenant's KEK crypto-shreds the data under it (DATA-8). See
// docs/key-hierarchy.md.
package keyring

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/mac"
	tinkpb "github.com/tink-crypto/tink-go/v2/proto/tink_go_proto"
	"github.com/tink-crypto/tink-go/v2/streamingaead"
	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/rampart-mlaas/rampart"
)

// Sentinel errors (match with errors.Is).
var (
	// ErrRootKeyMismatch: the root key does not decrypt the stored
	// verification record (or keysets): wrong key, or a store with keys but
	// no verification record. The server must refuse to start.
	ErrRootKeyMismatch = errors.New("keyring: the root key does not match this data directory (wrong root key)")
	// ErrRootKeyInvalid: a root key file or RAMPART_ROOT_KEY value is malformed.
	ErrRootKeyInvalid = errors.New("keyring: invalid root key")
	// ErrRootKeyPermissions: the root key file is accessible to group or others.
	ErrRootKeyPermissions = errors.New("keyring: root key file must not be accessible to group or others")
	// ErrRotationIncomplete: a root rotation was interrupted; finish it with
	// RotateRoot(ctx, store, oldRoot, newRoot) before opening.
	ErrRotationIncomplete = errors.New("keyring: an interrupted root key rotation must be completed with both keys")
	// ErrListingUnsupported: the KeysetStore does not implement KeysetLister,
	// which root rotation and tenant shredding need.
	ErrListingUnsupported = errors.New("keyring: keyset store cannot list keysets")
)

// KeysetStore persists wrapped keysets (the sqlite store implements it).
type KeysetStore interface {
	// CreateKeyset stores blob under name; returns an error matching rampart.ErrConflict if name exists.
	CreateKeyset(ctx context.Context, name string, blob []byte) error
	// GetKeyset returns rampart.ErrNotFound if absent.
	GetKeyset(ctx context.Context, name string) ([]byte, error)
	// UpdateKeyset replaces blob only if the stored blob equals old (compare-and-swap), else rampart.ErrConflict.
	UpdateKeyset(ctx context.Context, name string, old, blob []byte) error
	// DeleteKeyset removes name (crypto-shredding); absent is not an error.
	DeleteKeyset(ctx context.Context, name string) error
}

// KeysetLister is implemented by stores that can enumerate keysets. Root
// rotation (which must re-wrap every root-wrapped keyset), tenant shredding
// and the empty-store check at first start need it.
type KeysetLister interface {
	// ListKeysets returns, sorted, all names starting with prefix.
	ListKeysets(ctx context.Context, prefix string) ([]string, error)
}

// Keyset names in the store. Names under rootPrefix are wrapped by the root
// key; names under dekPrefix by a tenant KEK.
const (
	checkName     = "root/check"
	checkNextName = "root/check-next"
	rootPrefix    = "kr/"
	signPrefix    = rootPrefix + "sign/"
	dekPrefix     = "dek/"
)

const checkPlaintext = "rampart root key verification v1"

func kekName(tenant string) string         { return rootPrefix + "tenant/" + tenant + "/kek" }
func tenantMACName(tenant string) string   { return rootPrefix + "tenant/" + tenant + "/mac" }
func systemMACName(purpose string) string  { return rootPrefix + "system/mac/" + purpose }
func signName(name string) string          { return signPrefix + name }
func dekName(tenant, object string) string { return dekPrefix + tenant + "/" + object }

// rootAD is the associated data binding a root-wrapped blob to its name, so
// a wrapped keyset swapped to another name fails to unwrap.
func rootAD(name string) []byte { return []byte("rampart/keyring/v1\x00" + name) }

// Key templates. KEKs and MAC keys use Tink's prefixed output so keysets can
// hold several keys after rotation.
var (
	kekTemplate = aead.AES256GCMKeyTemplate
	macTemplate = mac.HMACSHA256Tag256KeyTemplate
	// DEKs: AES-256-GCM-HKDF with 1 MiB segments: flat memory for any size.
	dekTemplate = streamingaead.AES256GCMHKDF1MBKeyTemplate
)

// Keyring gives access to the key hierarchy. It is safe for concurrent use.
type Keyring struct {
	store KeysetStore

	// rootMu guards root. Operations that use the root key hold it for
	// reading; RotateRoot holds it for writing, so no keyset is wrapped
	// with the old root after rotation has listed the keysets.
	rootMu sync.RWMutex
	root   *RootKey

	mu      sync.Mutex // guards the caches
	keks    map[string]tink.AEAD
	macs    map[string]*MAC
	signers map[string]*SigningKey
}

// String describes the keyring without key material.
func (k *Keyring) String() string { return "keyring.Keyring([REDACTED])" }

// GoString describes the keyring without key material, also for %#v.
func (k *Keyring) GoString() string { return k.String() }

// Open checks root against the store's verification record and returns the
// keyring. On the first start (empty store) it writes the record. A wrong
// root key yields ErrRootKeyMismatch and nothing is written; an interrupted
// rotation yields ErrRotationIncomplete.
func Open(ctx context.Context, store KeysetStore, root *RootKey) (*Keyring, error) {
	if store == nil || root == nil {
		return nil, errors.New("keyring: nil store or root key")
	}
	if err := verifyRoot(ctx, store, root); err != nil {
		return nil, err
	}
	return &Keyring{
		store:   store,
		root:    root,
		keks:    map[string]tink.AEAD{},
		macs:    map[string]*MAC{},
		signers: map[string]*SigningKey{},
	}, nil
}

func sealCheck(root *RootKey, name string) ([]byte, error) {
	return root.w.Encrypt([]byte(checkPlaintext), rootAD(name))
}

func checkOK(root *RootKey, name string, blob []byte) bool {
	p, err := root.w.Decrypt(blob, rootAD(name))
	return err == nil && string(p) == checkPlaintext
}

func verifyRoot(ctx context.Context, store KeysetStore, root *RootKey) error {
	for range 3 {
		cur, err := store.GetKeyset(ctx, checkName)
		if errors.Is(err, rampart.ErrNotFound) {
			if err := refuseNonEmpty(ctx, store); err != nil {
				return err
			}
			rec, err := sealCheck(root, checkName)
			if err != nil {
				return fmt.Errorf("keyring: seal verification record: %w", err)
			}
			err = store.CreateKeyset(ctx, checkName, rec)
			if errors.Is(err, rampart.ErrConflict) {
				continue // created concurrently: verify it
			}
			if err != nil {
				return fmt.Errorf("keyring: store verification record: %w", err)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("keyring: read verification record: %w", err)
		}
		curOK := checkOK(root, checkName, cur)
		next, err := store.GetKeyset(ctx, checkNextName)
		switch {
		case errors.Is(err, rampart.ErrNotFound):
			if !curOK {
				return ErrRootKeyMismatch
			}
			return nil
		case err != nil:
			return fmt.Errorf("keyring: read rotation record: %w", err)
		case curOK && checkOK(root, checkNextName, next):
			// The rotation finished but crashed before removing its marker.
			if err := store.DeleteKeyset(ctx, checkNextName); err != nil {
				return fmt.Errorf("keyring: remove rotation record: %w", err)
			}
			return nil
		case curOK || checkOK(root, checkNextName, next):
			return ErrRotationIncomplete
		default:
			return ErrRootKeyMismatch
		}
	}
	return errors.New("keyring: verification record keeps changing")
}

// refuseNonEmpty fails if the store already holds keysets but no verification
// record: starting would silently mix keys under different roots.
func refuseNonEmpty(ctx context.Context, store KeysetStore) error {
	l, ok := store.(KeysetLister)
	if !ok {
		return nil
	}
	names, err := l.ListKeysets(ctx, "")
	if err != nil {
		return fmt.Errorf("keyring: list keysets: %w", err)
	}
	if len(names) > 0 {
		return fmt.Errorf("%w: keysets exist but the root key verification record is missing", ErrRootKeyMismatch)
	}
	return nil
}

// validName checks a tenant, purpose or key name used inside keyset names:
// 1..128 bytes of [A-Za-z0-9._-], not starting with ".". With slash true,
// "/"-separated segments of that form are allowed (object key names).
func validName(field, s string, slash bool) error {
	if s == "" || len(s) > 512 || (!slash && len(s) > 128) {
		return rampart.Invalid(field, "%s must be 1..128 characters", field)
	}
	segs := []string{s}
	if slash {
		segs = strings.Split(s, "/")
	}
	for _, seg := range segs {
		if seg == "" || seg[0] == '.' {
			return rampart.Invalid(field, "%s has an empty or dot segment", field)
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
				return rampart.Invalid(field, "%s contains a disallowed character", field)
			}
		}
	}
	return nil
}

func wrapKeyset(w tink.AEAD, h *keyset.Handle, ad []byte) ([]byte, error) {
	var buf bytes.Buffer
	if err := h.WriteWithAssociatedData(keyset.NewBinaryWriter(&buf), w, ad); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func unwrapKeyset(w tink.AEAD, blob, ad []byte) (*keyset.Handle, error) {
	return keyset.ReadWithAssociatedData(keyset.NewBinaryReader(bytes.NewReader(blob)), w, ad)
}

// rootKeyset returns the root-wrapped keyset name, creating it from tmpl if
// absent. Concurrent creators converge: the loser of CreateKeyset reloads.
// The caller holds rootMu for reading.
func (k *Keyring) rootKeyset(ctx context.Context, name string, tmpl func() *tinkpb.KeyTemplate) (*keyset.Handle, []byte, error) {
	ra := rootAEAD{k.root}
	for range 3 {
		blob, err := k.store.GetKeyset(ctx, name)
		if err == nil {
			h, err := unwrapKeyset(ra, blob, rootAD(name))
			if err != nil {
				return nil, nil, fmt.Errorf("keyring: unwrap %s: %w", name, err)
			}
			return h, blob, nil
		}
		if !errors.Is(err, rampart.ErrNotFound) {
			return nil, nil, fmt.Errorf("keyring: read %s: %w", name, err)
		}
		h, err := keyset.NewHandle(tmpl())
		if err != nil {
			return nil, nil, fmt.Errorf("keyring: generate %s: %w", name, err)
		}
		blob, err = wrapKeyset(ra, h, rootAD(name))
		if err != nil {
			return nil, nil, fmt.Errorf("keyring: wrap %s: %w", name, err)
		}
		err = k.store.CreateKeyset(ctx, name, blob)
		if err == nil {
			return h, blob, nil
		}
		if !errors.Is(err, rampart.ErrConflict) {
			return nil, nil, fmt.Errorf("keyring: store %s: %w", name, err)
		}
	}
	return nil, nil, fmt.Errorf("keyring: %s keeps changing", name)
}

// tenantKEK returns the tenant's key-encryption AEAD, creating it on first
// use; fresh skips the cache (after a rotation by another process).
func (k *Keyring) tenantKEK(ctx context.Context, tenant string, fresh bool) (tink.AEAD, error) {
	if err := validName("tenant", tenant, false); err != nil {
		return nil, err
	}
	k.mu.Lock()
	a, ok := k.keks[tenant]
	k.mu.Unlock()
	if ok && !fresh {
		return a, nil
	}
	k.rootMu.RLock()
	h, _, err := k.rootKeyset(ctx, kekName(tenant), kekTemplate)
	k.rootMu.RUnlock()
	if err != nil {
		return nil, err
	}
	a, err = aead.New(h)
	if err != nil {
		return nil, fmt.Errorf("keyring: tenant KEK: %w", err)
	}
	k.mu.Lock()
	k.keks[tenant] = a
	k.mu.Unlock()
	return a, nil
}

// RotateTenantKEK adds a new primary key to the tenant's KEK. New data keys
// are wrapped with it; the old keys stay in the keyset to unwrap existing
// data keys, so no bulk data is re-encrypted (RES-3).
func (k *Keyring) RotateTenantKEK(ctx context.Context, tenant string) error {
	if err := validName("tenant", tenant, false); err != nil {
		return err
	}
	name := kekName(tenant)
	k.rootMu.RLock()
	defer k.rootMu.RUnlock()
	ra := rootAEAD{k.root}
	for range 5 {
		h, old, err := k.rootKeyset(ctx, name, kekTemplate)
		if err != nil {
			return err
		}
		m := keyset.NewManagerFromHandle(h)
		id, err := m.Add(kekTemplate())
		if err != nil {
			return fmt.Errorf("keyring: rotate KEK: %w", err)
		}
		if err := m.SetPrimary(id); err != nil {
			return fmt.Errorf("keyring: rotate KEK: %w", err)
		}
		nh, err := m.Handle()
		if err != nil {
			return fmt.Errorf("keyring: rotate KEK: %w", err)
		}
		blob, err := wrapKeyset(ra, nh, rootAD(name))
		if err != nil {
			return fmt.Errorf("keyring: wrap %s: %w", name, err)
		}
		err = k.store.UpdateKeyset(ctx, name, old, blob)
		if errors.Is(err, rampart.ErrConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("keyring: store %s: %w", name, err)
		}
		a, err := aead.New(nh)
		if err != nil {
			return fmt.Errorf("keyring: tenant KEK: %w", err)
		}
		k.mu.Lock()
		k.keks[tenant] = a
		k.mu.Unlock()
		return nil
	}
	return fmt.Errorf("keyring: %s keeps changing", name)
}

// dekAD binds a wrapped data key to its tenant, name and the caller's
// associated data (the barrier passes the object reference).
func dekAD(tenant, object string, ad []byte) []byte {
	b := []byte("rampart/keyring/dek/v1\x00" + tenant + "\x00" + object + "\x00")
	return append(b, ad...)
}

// NewObjectKey generates a fresh per-object data key (a Tink streaming AEAD
// keyset), wraps it with the tenant KEK, binding tenant, object and ad, and
// stores it. It fails with rampart.ErrConflict if the object key exists.
// object is a "/"-separated name of [A-Za-z0-9._-] segments.
func (k *Keyring) NewObjectKey(ctx context.Context, tenant, object string, ad []byte) (tink.StreamingAEAD, error) {
	if err := validName("object", object, true); err != nil {
		return nil, err
	}
	kek, err := k.tenantKEK(ctx, tenant, false)
	if err != nil {
		return nil, err
	}
	h, err := keyset.NewHandle(dekTemplate())
	if err != nil {
		return nil, fmt.Errorf("keyring: generate data key: %w", err)
	}
	// DATA-1: the data key is stored only wrapped by the tenant KEK.
	blob, err := wrapKeyset(kek, h, dekAD(tenant, object, ad))
	if err != nil {
		return nil, fmt.Errorf("keyring: wrap data key: %w", err)
	}
	if err := k.store.CreateKeyset(ctx, dekName(tenant, object), blob); err != nil {
		return nil, fmt.Errorf("keyring: store data key: %w", err)
	}
	return streamingaead.New(h)
}

// ObjectKey loads and unwraps an object's data key. A missing key (never
// created, or shredded) yields rampart.ErrNotFound.
func (k *Keyring) ObjectKey(ctx context.Context, tenant, object string, ad []byte) (tink.StreamingAEAD, error) {
	if err := validName("object", object, true); err != nil {
		return nil, err
	}
	blob, err := k.store.GetKeyset(ctx, dekName(tenant, object))
	if err != nil {
		return nil, fmt.Errorf("keyring: data key: %w", err)
	}
	for _, fresh := range []bool{false, true} {
		kek, err := k.tenantKEK(ctx, tenant, fresh)
		if err != nil {
			return nil, err
		}
		h, err := unwrapKeyset(kek, blob, dekAD(tenant, object, ad))
		if err == nil {
			return streamingaead.New(h)
		}
		// Retry once with a freshly loaded KEK: another process may have
		// rotated it since we cached it.
	}
	return nil, fmt.Errorf("keyring: data key for %s/%s does not unwrap (tampered or moved)", tenant, object)
}

// ShredObjectKey deletes an object's data key: every copy of the object's
// ciphertext, including backups, becomes undecryptable (DATA-8).
func (k *Keyring) ShredObjectKey(ctx context.Context, tenant, object string) error {
	if err := validName("tenant", tenant, false); err != nil {
		return err
	}
	if err := validName("object", object, true); err != nil {
		return err
	}
	if err := k.store.DeleteKeyset(ctx, dekName(tenant, object)); err != nil {
		return fmt.Errorf("keyring: shred data key: %w", err)
	}
	return nil
}

// ShredTenant deletes the tenant's KEK and MAC key, which crypto-shreds every
// object of the tenant at once (DATA-8), then deletes its wrapped data keys
// if the store can list them.
func (k *Keyring) ShredTenant(ctx context.Context, tenant string) error {
	if err := validName("tenant", tenant, false); err != nil {
		return err
	}
	for _, name := range []string{kekName(tenant), tenantMACName(tenant)} {
		if err := k.store.DeleteKeyset(ctx, name); err != nil {
			return fmt.Errorf("keyring: shred %s: %w", name, err)
		}
	}
	k.mu.Lock()
	delete(k.keks, tenant)
	delete(k.macs, tenantMACName(tenant))
	k.mu.Unlock()
	l, ok := k.store.(KeysetLister)
	if !ok {
		return nil
	}
	names, err := l.ListKeysets(ctx, dekPrefix+tenant+"/")
	if err != nil {
		return fmt.Errorf("keyring: list data keys: %w", err)
	}
	for _, n := range names {
		if err := k.store.DeleteKeyset(ctx, n); err != nil {
			return fmt.Errorf("keyring: delete data key: %w", err)
		}
	}
	return nil
}

func (k *Keyring) macKey(ctx context.Context, name string) (*MAC, error) {
	k.mu.Lock()
	m, ok := k.macs[name]
	k.mu.Unlock()
	if ok {
		return m, nil
	}
	k.rootMu.RLock()
	h, _, err := k.rootKeyset(ctx, name, macTemplate)
	k.rootMu.RUnlock()
	if err != nil {
		return nil, err
	}
	p, err := mac.New(h)
	if err != nil {
		return nil, fmt.Errorf("keyring: MAC key: %w", err)
	}
	m = &MAC{p: p, name: name}
	k.mu.Lock()
	k.macs[name] = m
	k.mu.Unlock()
	return m, nil
}

// TenantMAC returns the tenant's HMAC-SHA256 key, created on first use, for
// keyed hashes of sensitive values (the audit log).
func (k *Keyring) TenantMAC(ctx context.Context, tenant string) (*MAC, error) {
	if err := validName("tenant", tenant, false); err != nil {
		return nil, err
	}
	return k.macKey(ctx, tenantMACName(tenant))
}

// SystemMAC returns the system HMAC-SHA256 key for purpose (e.g. "apikey"),
// created on first use.
func (k *Keyring) SystemMAC(ctx context.Context, purpose string) (*MAC, error) {
	if err := validName("purpose", purpose, false); err != nil {
		return nil, err
	}
	return k.macKey(ctx, systemMACName(purpose))
}

// SigningKey returns the Ed25519 signing key called name (e.g.
// "audit-checkpoint", "model-signing"), generated with crypto/ed25519 on
// first use and stored wrapped by the root key.
func (k *Keyring) SigningKey(ctx context.Context, name string) (*SigningKey, error) {
	if err := validName("name", name, false); err != nil {
		return nil, err
	}
	k.mu.Lock()
	s, ok := k.signers[name]
	k.mu.Unlock()
	if ok {
		return s, nil
	}
	k.rootMu.RLock()
	defer k.rootMu.RUnlock()
	sn := signName(name)
	for range 3 {
		blob, err := k.store.GetKeyset(ctx, sn)
		if err == nil {
			seed, err := k.root.w.Decrypt(blob, rootAD(sn))
			if err != nil || len(seed) != ed25519.SeedSize {
				return nil, fmt.Errorf("keyring: signing key %s does not unwrap", name)
			}
			s = &SigningKey{name: name, priv: ed25519.NewKeyFromSeed(seed)}
			clear(seed)
			break
		}
		if !errors.Is(err, rampart.ErrNotFound) {
			return nil, fmt.Errorf("keyring: read signing key: %w", err)
		}
		seed := make([]byte, ed25519.SeedSize)
		if _, err := rand.Read(seed); err != nil {
			return nil, err
		}
		blob, err = k.root.w.Encrypt(seed, rootAD(sn))
		priv := ed25519.NewKeyFromSeed(seed)
		clear(seed)
		if err != nil {
			return nil, fmt.Errorf("keyring: wrap signing key: %w", err)
		}
		err = k.store.CreateKeyset(ctx, sn, blob)
		if errors.Is(err, rampart.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("keyring: store signing key: %w", err)
		}
		s = &SigningKey{name: name, priv: priv}
		break
	}
	if s == nil {
		return nil, fmt.Errorf("keyring: signing key %s keeps changing", name)
	}
	k.mu.Lock()
	if prev, ok := k.signers[name]; ok {
		s = prev
	} else {
		k.signers[name] = s
	}
	k.mu.Unlock()
	return s, nil
}

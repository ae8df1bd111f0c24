package keyring

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/rampart-mlaas/rampart"
)

// ErrSameRootKey: RotateRoot was given the current root key as the new one.
var ErrSameRootKey = errors.New("keyring: the new root key is the current root key")

// RotateRoot re-wraps every root-wrapped keyset (tenant KEKs and MAC keys,
// system MAC keys, signing keys) and the verification record under newRoot,
// in place, without touching data keys or bulk data (RES-3). Afterwards the
// old root key decrypts nothing in the store. Requests keep being served:
// cached keys stay usable and new root-wrapped keysets wait for the few
// milliseconds the rotation takes.
//
// The running keyring switches to newRoot; the server must be given newRoot
// at its next start. If this process is the only one using the store, no
// restart is needed.
func (k *Keyring) RotateRoot(ctx context.Context, newRoot *RootKey) error {
	k.rootMu.Lock()
	defer k.rootMu.Unlock()
	if err := RotateRoot(ctx, k.store, k.root, newRoot); err != nil {
		return err
	}
	k.root = newRoot
	return nil
}

// RotateRoot is the resumable form used to finish a rotation interrupted by a
// crash (Open then fails with ErrRotationIncomplete): given both keys it
// completes the work; it is a no-op if the rotation already completed. It
// must not run concurrently with a Keyring open on the same store; the store
// must implement KeysetLister.
//
// Crash safety: a marker record sealed with the new key is written first;
// each keyset is then re-wrapped by compare-and-swap (one that already
// opens with the new key is skipped); the verification record is switched
// last and the marker removed.
func RotateRoot(ctx context.Context, store KeysetStore, oldRoot, newRoot *RootKey) error {
	if oldRoot == nil || newRoot == nil {
		return errors.New("keyring: nil root key")
	}
	lister, ok := store.(KeysetLister)
	if !ok {
		return ErrListingUnsupported
	}
	cur, err := store.GetKeyset(ctx, checkName)
	if err != nil {
		return fmt.Errorf("keyring: read verification record: %w", err)
	}
	oldOK, newOK := checkOK(oldRoot, checkName, cur), checkOK(newRoot, checkName, cur)
	switch {
	case oldOK && newOK:
		return ErrSameRootKey
	case newOK: // already rotated; remove a leftover marker
		if err := store.DeleteKeyset(ctx, checkNextName); err != nil {
			return fmt.Errorf("keyring: remove rotation record: %w", err)
		}
		return nil
	case !oldOK:
		return ErrRootKeyMismatch
	}

	// 1. Marker: the rotation to newRoot has begun.
	next, err := store.GetKeyset(ctx, checkNextName)
	switch {
	case err == nil:
		if !checkOK(newRoot, checkNextName, next) {
			return fmt.Errorf("%w: an earlier rotation to a different root key was interrupted", ErrRotationIncomplete)
		}
	case errors.Is(err, rampart.ErrNotFound):
		rec, err := sealCheck(newRoot, checkNextName)
		if err != nil {
			return fmt.Errorf("keyring: seal rotation record: %w", err)
		}
		if err := store.CreateKeyset(ctx, checkNextName, rec); err != nil {
			return fmt.Errorf("keyring: store rotation record: %w", err)
		}
	default:
		return fmt.Errorf("keyring: read rotation record: %w", err)
	}

	// 2. Re-wrap every root-wrapped keyset.
	names, err := lister.ListKeysets(ctx, rootPrefix)
	if err != nil {
		return fmt.Errorf("keyring: list keysets: %w", err)
	}
	for _, name := range names {
		if err := rewrap(ctx, store, name, oldRoot, newRoot); err != nil {
			return err
		}
	}

	// 3. Switch the verification record, then drop the marker.
	rec, err := sealCheck(newRoot, checkName)
	if err != nil {
		return fmt.Errorf("keyring: seal verification record: %w", err)
	}
	if err := store.UpdateKeyset(ctx, checkName, cur, rec); err != nil {
		return fmt.Errorf("keyring: switch verification record: %w", err)
	}
	if err := store.DeleteKeyset(ctx, checkNextName); err != nil {
		return fmt.Errorf("keyring: remove rotation record: %w", err)
	}
	return nil
}

// rewrap moves one root-wrapped blob from oldRoot to newRoot by
// compare-and-swap; a blob already under newRoot is left alone.
func rewrap(ctx context.Context, store KeysetStore, name string, oldRoot, newRoot *RootKey) error {
	ad := rootAD(name)
	for range 5 {
		blob, err := store.GetKeyset(ctx, name)
		if errors.Is(err, rampart.ErrNotFound) {
			return nil // deleted meanwhile (shredded)
		}
		if err != nil {
			return fmt.Errorf("keyring: read %s: %w", name, err)
		}
		var out []byte
		if strings.HasPrefix(name, signPrefix) {
			seed, err := oldRoot.w.Decrypt(blob, ad)
			if err != nil {
				if _, err2 := newRoot.w.Decrypt(blob, ad); err2 == nil {
					return nil
				}
				return fmt.Errorf("keyring: %s opens with neither root key: %w", name, ErrRootKeyMismatch)
			}
			out, err = newRoot.w.Encrypt(seed, ad)
			clear(seed)
			if err != nil {
				return fmt.Errorf("keyring: wrap %s: %w", name, err)
			}
		} else {
			h, err := unwrapKeyset(rootAEAD{oldRoot}, blob, ad)
			if err != nil {
				if _, err2 := unwrapKeyset(rootAEAD{newRoot}, blob, ad); err2 == nil {
					return nil
				}
				return fmt.Errorf("keyring: %s opens with neither root key: %w", name, ErrRootKeyMismatch)
			}
			if out, err = wrapKeyset(rootAEAD{newRoot}, h, ad); err != nil {
				return fmt.Errorf("keyring: wrap %s: %w", name, err)
			}
		}
		err = store.UpdateKeyset(ctx, name, blob, out)
		if errors.Is(err, rampart.ErrConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("keyring: store %s: %w", name, err)
		}
		return nil
	}
	return fmt.Errorf("keyring: %s keeps changing", name)
}

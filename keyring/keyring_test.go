package keyring_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/keyring"
	"github.com/rampart-mlaas/rampart/keyring/keyringtest"
)

var ctx = context.Background()

func TestMemStoreConformance(t *testing.T) {
	keyringtest.Run(t, func(*testing.T) keyring.KeysetStore { return keyringtest.NewMemStore() })
}

// kmsRoot returns a root key backed by a raw Tink AEAD that the test keeps,
// standing in for an external KMS, so tests can try the raw key on blobs.
func kmsRoot(t *testing.T) (*keyring.RootKey, tink.AEAD) {
	t.Helper()
	h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		t.Fatal(err)
	}
	a, err := aead.New(h)
	if err != nil {
		t.Fatal(err)
	}
	rk, err := keyring.RootKeyFromKMS(a, "test")
	if err != nil {
		t.Fatal(err)
	}
	return rk, a
}

func envRoot(t *testing.T) *keyring.RootKey {
	t.Helper()
	v, err := keyring.NewRootKeyValue()
	if err != nil {
		t.Fatal(err)
	}
	rk, err := keyring.ParseRootKey(v)
	if err != nil {
		t.Fatal(err)
	}
	return rk
}

func open(t *testing.T, s keyring.KeysetStore, rk *keyring.RootKey) *keyring.Keyring {
	t.Helper()
	k, err := keyring.Open(ctx, s, rk)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return k
}

func TestRootKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "root.key")
	if _, err := keyring.LoadOrCreateRootKeyFile(path, false); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("load missing without create: %v, want ErrNotExist", err)
	}
	rk1, err := keyring.LoadOrCreateRootKeyFile(path, true)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("root key file mode = %v, %v; want 0600", fi.Mode(), err)
	}
	store := keyringtest.NewMemStore()
	open(t, store, rk1)
	rk2, err := keyring.LoadOrCreateRootKeyFile(path, true) // loads, does not regenerate
	if err != nil {
		t.Fatal(err)
	}
	open(t, store, rk2) // same key: passes verification

	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := keyring.LoadOrCreateRootKeyFile(path, true)
		if !errors.Is(err, keyring.ErrRootKeyPermissions) {
			t.Fatalf("mode %04o: %v, want ErrRootKeyPermissions", mode, err)
		}
		if !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("error does not say how to fix: %v", err)
		}
	}
	if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
	if _, err := keyring.LoadOrCreateRootKeyFile(path, false); err != nil {
		t.Fatalf("mode 0400 refused: %v", err)
	}

	bad := filepath.Join(dir, "bad.key")
	if err := os.WriteFile(bad, []byte(`{"not":"a keyset"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := keyring.LoadOrCreateRootKeyFile(bad, true); !errors.Is(err, keyring.ErrRootKeyInvalid) {
		t.Fatalf("garbage key file: %v, want ErrRootKeyInvalid", err)
	}
}

func TestParseRootKey(t *testing.T) {
	v, err := keyring.NewRootKeyValue()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{v, " " + v + "\n", strings.TrimRight(v, "=")} {
		if _, err := keyring.ParseRootKey(s); err != nil {
			t.Errorf("ParseRootKey(valid variant): %v", err)
		}
	}
	for _, s := range []string{"", "not base64!!", "aGVsbG8=", strings.Repeat("A", 100000)} {
		_, err := keyring.ParseRootKey(s)
		if !errors.Is(err, keyring.ErrRootKeyInvalid) {
			t.Errorf("ParseRootKey(%.20q) = %v, want ErrRootKeyInvalid", s, err)
		}
		if err != nil && len(s) > 4 && strings.Contains(err.Error(), s) {
			t.Errorf("error echoes the value")
		}
	}
}

func FuzzParseRootKey(f *testing.F) {
	v, _ := keyring.NewRootKeyValue()
	f.Add(v)
	f.Add("")
	f.Add("e30=") // {}
	f.Add("eyJwcmltYXJ5S2V5SWQiOjEsImtleSI6W119")
	f.Fuzz(func(t *testing.T, s string) {
		rk, err := keyring.ParseRootKey(s)
		if err == nil && rk == nil {
			t.Fatal("nil key without error")
		}
		if err != nil && !errors.Is(err, keyring.ErrRootKeyInvalid) {
			t.Fatalf("unexpected error class: %v", err)
		}
	})
}

func TestWrongRootKeyRefusedTouchesNothing(t *testing.T) {
	store := keyringtest.NewMemStore()
	good := envRoot(t)
	k := open(t, store, good)
	if _, err := k.TenantMAC(ctx, "tn_a"); err != nil {
		t.Fatal(err)
	}
	before := store.Snapshot()
	_, err := keyring.Open(ctx, store, envRoot(t))
	if !errors.Is(err, keyring.ErrRootKeyMismatch) {
		t.Fatalf("Open with wrong key: %v, want ErrRootKeyMismatch", err)
	}
	after := store.Snapshot()
	if len(before) != len(after) {
		t.Fatal("failed Open changed the store")
	}
	for n, b := range before {
		if !bytes.Equal(b, after[n]) {
			t.Fatalf("failed Open changed %s", n)
		}
	}
	// A store with keysets but no verification record is refused too.
	if err := store.DeleteKeyset(ctx, "root/check"); err != nil {
		t.Fatal(err)
	}
	if _, err := keyring.Open(ctx, store, good); !errors.Is(err, keyring.ErrRootKeyMismatch) {
		t.Fatalf("Open without verification record: %v, want ErrRootKeyMismatch", err)
	}
}

func TestMACAndSigningKeys(t *testing.T) {
	store := keyringtest.NewMemStore()
	rk := envRoot(t)
	k1 := open(t, store, rk)
	k2 := open(t, store, rk) // a second process on the same store

	// Race lazy creation across two keyrings: all must converge on one key.
	var wg sync.WaitGroup
	tags := make([][]byte, 16)
	for i := range tags {
		wg.Go(func() {
			k := k1
			if i%2 == 1 {
				k = k2
			}
			m, err := k.TenantMAC(ctx, "tn_race")
			if err != nil {
				t.Error(err)
				return
			}
			tags[i], _ = m.ComputeMAC([]byte("value"))
		})
	}
	wg.Wait()
	for i := range tags {
		if !bytes.Equal(tags[i], tags[0]) {
			t.Fatal("concurrent lazy creation produced different MAC keys")
		}
	}
	m1, _ := k1.TenantMAC(ctx, "tn_race")
	m2, _ := k1.TenantMAC(ctx, "tn_other")
	s1, _ := k1.SystemMAC(ctx, "apikey")
	t2, _ := m2.ComputeMAC([]byte("value"))
	t3, _ := s1.ComputeMAC([]byte("value"))
	if bytes.Equal(tags[0], t2) || bytes.Equal(tags[0], t3) {
		t.Fatal("tenants/system share a MAC key")
	}
	if err := m1.VerifyMAC(tags[0], []byte("value")); err != nil {
		t.Fatal(err)
	}
	if err := m1.VerifyMAC(tags[0], []byte("other")); err == nil {
		t.Fatal("MAC verified wrong data")
	}

	sk1, err := k1.SigningKey(ctx, "audit-checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	sk2, err := k2.SigningKey(ctx, "audit-checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	if !sk1.PublicKey().Equal(sk2.PublicKey()) {
		t.Fatal("signing key differs between keyrings")
	}
	msg := []byte("checkpoint")
	sig, err := sk1.Sign(nil, msg, crypto.Hash(0))
	if err != nil || !ed25519.Verify(sk2.PublicKey(), msg, sig) {
		t.Fatalf("signature does not verify: %v", err)
	}
	if !ed25519.Verify(sk1.PublicKey(), msg, sk2.SignMessage(msg)) {
		t.Fatal("SignMessage does not verify")
	}
	other, _ := k1.SigningKey(ctx, "model-signing")
	if other.PublicKey().Equal(sk1.PublicKey()) {
		t.Fatal("two signing key names share a key")
	}

	// Secrets never print (req. 5).
	priv := sk1.PrivateKey()
	for _, v := range []any{rk, m1, sk1, k1} {
		for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
			out := fmt.Sprintf(f, v)
			if !strings.Contains(out, "REDACTED") {
				t.Errorf("%s of %T = %q: not redacted", f, v, out)
			}
			if strings.Contains(out, hex.EncodeToString(priv[:8])) || bytes.Contains([]byte(out), priv[:8]) {
				t.Errorf("%s of %T leaks key bytes", f, v)
			}
		}
	}
	for _, name := range []string{"", "../x", "a/b", "x y"} {
		if _, err := k1.TenantMAC(ctx, name); !errors.Is(err, rampart.ErrInvalid) {
			t.Errorf("TenantMAC(%q) = %v, want ErrInvalid", name, err)
		}
	}
}

func sealWith(t *testing.T, sa tink.StreamingAEAD, ad, plain []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := sa.NewEncryptingWriter(&buf, ad)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func openWith(sa tink.StreamingAEAD, ad, ct []byte) ([]byte, error) {
	r, err := sa.NewDecryptingReader(bytes.NewReader(ct), ad)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

func TestObjectKeysAndKEKRotation(t *testing.T) {
	store := keyringtest.NewMemStore()
	rk := envRoot(t)
	k := open(t, store, rk)
	other := open(t, store, rk) // another process with a warm cache
	ad := []byte("ref-1")

	d1, err := k.NewObjectKey(ctx, "tn_a", "ds/x/1", ad)
	if err != nil {
		t.Fatal(err)
	}
	ct1 := sealWith(t, d1, ad, []byte("first object"))
	if _, err := k.NewObjectKey(ctx, "tn_a", "ds/x/1", ad); !errors.Is(err, rampart.ErrConflict) {
		t.Fatalf("duplicate object key: %v, want ErrConflict", err)
	}
	if _, err := other.ObjectKey(ctx, "tn_a", "ds/x/1", ad); err != nil {
		t.Fatal(err) // warms other's KEK cache
	}
	kekBefore, _ := store.GetKeyset(ctx, "kr/tenant/tn_a/kek")
	if err := k.RotateTenantKEK(ctx, "tn_a"); err != nil {
		t.Fatal(err)
	}
	kekAfter, _ := store.GetKeyset(ctx, "kr/tenant/tn_a/kek")
	if bytes.Equal(kekBefore, kekAfter) {
		t.Fatal("KEK rotation did not change the stored keyset")
	}
	d2, err := k.NewObjectKey(ctx, "tn_a", "ds/x/2", ad)
	if err != nil {
		t.Fatal(err)
	}
	ct2 := sealWith(t, d2, ad, []byte("second object"))
	// Both the old and the new data key open, in both processes: the old one
	// after rotation (old KEK key retained), the new one in "other" whose
	// cached KEK predates the rotation.
	for _, kr := range []*keyring.Keyring{k, other} {
		for i, c := range []struct {
			name string
			ct   []byte
			want string
		}{{"ds/x/1", ct1, "first object"}, {"ds/x/2", ct2, "second object"}} {
			sa, err := kr.ObjectKey(ctx, "tn_a", c.name, ad)
			if err != nil {
				t.Fatalf("keyring %d ObjectKey(%s): %v", i, c.name, err)
			}
			got, err := openWith(sa, ad, c.ct)
			if err != nil || string(got) != c.want {
				t.Fatalf("open %s = %q, %v", c.name, got, err)
			}
		}
	}
	// Associated data binds the wrapped data key to tenant, object and ad.
	if _, err := k.ObjectKey(ctx, "tn_a", "ds/x/1", []byte("ref-2")); err == nil {
		t.Fatal("data key unwrapped with other associated data")
	}
	blob, _ := store.GetKeyset(ctx, "dek/tn_a/ds/x/1")
	if err := store.CreateKeyset(ctx, "dek/tn_a/ds/moved/1", blob); err != nil {
		t.Fatal(err)
	}
	if _, err := k.ObjectKey(ctx, "tn_a", "ds/moved/1", ad); err == nil {
		t.Fatal("data key moved to another name unwrapped")
	}
	if err := store.CreateKeyset(ctx, "dek/tn_b/ds/x/1", blob); err != nil {
		t.Fatal(err)
	}
	if _, err := k.ObjectKey(ctx, "tn_b", "ds/x/1", ad); err == nil {
		t.Fatal("data key moved to another tenant unwrapped")
	}

	// Shredding (DATA-8).
	if err := k.ShredObjectKey(ctx, "tn_a", "ds/x/1"); err != nil {
		t.Fatal(err)
	}
	if _, err := k.ObjectKey(ctx, "tn_a", "ds/x/1", ad); !errors.Is(err, rampart.ErrNotFound) {
		t.Fatalf("shredded key: %v, want ErrNotFound", err)
	}
	if err := k.ShredTenant(ctx, "tn_a"); err != nil {
		t.Fatal(err)
	}
	if l, _ := store.ListKeysets(ctx, "dek/tn_a/"); len(l) != 0 {
		t.Fatalf("data keys left after ShredTenant: %v", l)
	}
	if l, _ := store.ListKeysets(ctx, "kr/tenant/tn_a/"); len(l) != 0 {
		t.Fatalf("tenant keys left after ShredTenant: %v", l)
	}
}

// populate creates one of each kind of key and returns a check function that
// verifies they all still work with keyring k.
func populate(t *testing.T, k *keyring.Keyring) func(*keyring.Keyring) {
	t.Helper()
	ad := []byte("ad")
	d, err := k.NewObjectKey(ctx, "tn_a", "model/m/1", ad)
	if err != nil {
		t.Fatal(err)
	}
	ct := sealWith(t, d, ad, []byte("model bytes"))
	m, _ := k.TenantMAC(ctx, "tn_a")
	tag, _ := m.ComputeMAC([]byte("x"))
	s, _ := k.SystemMAC(ctx, "apikey")
	stag, _ := s.ComputeMAC([]byte("x"))
	sk, _ := k.SigningKey(ctx, "audit")
	if _, err := k.TenantMAC(ctx, "tn_b"); err != nil {
		t.Fatal(err)
	}
	return func(k *keyring.Keyring) {
		t.Helper()
		sa, err := k.ObjectKey(ctx, "tn_a", "model/m/1", ad)
		if err != nil {
			t.Fatalf("object key after rotation: %v", err)
		}
		if got, err := openWith(sa, ad, ct); err != nil || string(got) != "model bytes" {
			t.Fatalf("object after rotation: %q, %v", got, err)
		}
		m, err := k.TenantMAC(ctx, "tn_a")
		if err != nil || m.VerifyMAC(tag, []byte("x")) != nil {
			t.Fatalf("tenant MAC changed: %v", err)
		}
		s, err := k.SystemMAC(ctx, "apikey")
		if err != nil || s.VerifyMAC(stag, []byte("x")) != nil {
			t.Fatalf("system MAC changed: %v", err)
		}
		sk2, err := k.SigningKey(ctx, "audit")
		if err != nil || !sk2.PublicKey().Equal(sk.PublicKey()) {
			t.Fatalf("signing key changed: %v", err)
		}
	}
}

// oldRootOpensNothing tries the old root's raw AEAD on every root-wrapped
// blob, with the right associated data: nothing may decrypt (RES-3).
func oldRootOpensNothing(t *testing.T, store *keyringtest.MemStore, old tink.AEAD) {
	t.Helper()
	n := 0
	for name, blob := range store.Snapshot() {
		if strings.HasPrefix(name, "dek/") {
			continue // wrapped by tenant KEKs, not by the root
		}
		n++
		ad := []byte("rampart/keyring/v1\x00" + name)
		if _, err := old.Decrypt(blob, ad); err == nil {
			t.Errorf("old root decrypts %s", name)
		}
		if _, err := keyset.ReadWithAssociatedData(keyset.NewBinaryReader(bytes.NewReader(blob)), old, ad); err == nil {
			t.Errorf("old root unwraps keyset %s", name)
		}
	}
	if n < 5 {
		t.Fatalf("only %d root-wrapped blobs checked", n)
	}
}

func TestRotateRoot(t *testing.T) {
	store := keyringtest.NewMemStore()
	oldRK, oldRaw := kmsRoot(t)
	k := open(t, store, oldRK)
	check := populate(t, k)
	newRK := envRoot(t)
	if err := k.RotateRoot(ctx, oldRK); !errors.Is(err, keyring.ErrSameRootKey) {
		t.Fatalf("rotate to same key: %v", err)
	}
	if err := k.RotateRoot(ctx, newRK); err != nil {
		t.Fatal(err)
	}
	check(k) // the running keyring keeps working
	if _, err := k.TenantMAC(ctx, "tn_new"); err != nil {
		t.Fatal(err)
	}
	if _, err := keyring.Open(ctx, store, oldRK); !errors.Is(err, keyring.ErrRootKeyMismatch) {
		t.Fatalf("Open with old root after rotation: %v, want ErrRootKeyMismatch", err)
	}
	oldRootOpensNothing(t, store, oldRaw)
	check(open(t, store, newRK)) // a fresh start with the new key sees everything
	// Re-running a completed rotation is a no-op.
	if err := keyring.RotateRoot(ctx, store, oldRK, newRK); err != nil {
		t.Fatalf("re-run completed rotation: %v", err)
	}
}

// flakyStore fails UpdateKeyset after n successful calls: a crash mid-rotation.
type flakyStore struct {
	*keyringtest.MemStore
	n int
}

func (f *flakyStore) UpdateKeyset(ctx context.Context, name string, old, blob []byte) error {
	if f.n <= 0 {
		return errors.New("simulated crash")
	}
	f.n--
	return f.MemStore.UpdateKeyset(ctx, name, old, blob)
}

func TestRotateRootResumesAfterCrash(t *testing.T) {
	mem := keyringtest.NewMemStore()
	oldRK, oldRaw := kmsRoot(t)
	check := populate(t, open(t, mem, oldRK))
	newRK := envRoot(t)
	if err := keyring.RotateRoot(ctx, &flakyStore{mem, 2}, oldRK, newRK); err == nil {
		t.Fatal("rotation over a failing store succeeded")
	}
	for _, rk := range []*keyring.RootKey{oldRK, newRK} {
		if _, err := keyring.Open(ctx, mem, rk); !errors.Is(err, keyring.ErrRotationIncomplete) {
			t.Fatalf("Open mid-rotation: %v, want ErrRotationIncomplete", err)
		}
	}
	if _, err := keyring.Open(ctx, mem, envRoot(t)); !errors.Is(err, keyring.ErrRootKeyMismatch) {
		t.Fatalf("Open mid-rotation with unrelated key: %v, want ErrRootKeyMismatch", err)
	}
	if err := keyring.RotateRoot(ctx, mem, oldRK, envRoot(t)); !errors.Is(err, keyring.ErrRotationIncomplete) {
		t.Fatalf("resume with a different new key: %v, want ErrRotationIncomplete", err)
	}
	if err := keyring.RotateRoot(ctx, mem, oldRK, newRK); err != nil {
		t.Fatalf("resume: %v", err)
	}
	check(open(t, mem, newRK))
	oldRootOpensNothing(t, mem, oldRaw)
}

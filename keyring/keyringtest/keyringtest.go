// Package keyringtest provides an in-memory keyring.KeysetStore for tests
// and the conformance suite every KeysetStore implementation (sqlite,
// postgres) must pass.
package keyringtest

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/keyring"
)

// MemStore is an in-memory KeysetStore that also implements KeysetLister.
type MemStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

var (
	_ keyring.KeysetStore  = (*MemStore)(nil)
	_ keyring.KeysetLister = (*MemStore)(nil)
)

// NewMemStore returns an empty store.
func NewMemStore() *MemStore { return &MemStore{m: map[string][]byte{}} }

// CreateKeyset implements keyring.KeysetStore.
func (s *MemStore) CreateKeyset(_ context.Context, name string, blob []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[name]; ok {
		return rampart.Errorf(rampart.CodeConflict, "keyset exists")
	}
	s.m[name] = bytes.Clone(blob)
	return nil
}

// GetKeyset implements keyring.KeysetStore.
func (s *MemStore) GetKeyset(_ context.Context, name string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.m[name]
	if !ok {
		return nil, rampart.Errorf(rampart.CodeNotFound, "keyset not found")
	}
	return bytes.Clone(b), nil
}

// UpdateKeyset implements keyring.KeysetStore.
func (s *MemStore) UpdateKeyset(_ context.Context, name string, old, blob []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.m[name]
	if !ok {
		return rampart.Errorf(rampart.CodeNotFound, "keyset not found")
	}
	if !bytes.Equal(cur, old) {
		return rampart.Errorf(rampart.CodeConflict, "keyset changed concurrently")
	}
	s.m[name] = bytes.Clone(blob)
	return nil
}

// DeleteKeyset implements keyring.KeysetStore.
func (s *MemStore) DeleteKeyset(_ context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, name)
	return nil
}

// ListKeysets implements keyring.KeysetLister.
func (s *MemStore) ListKeysets(_ context.Context, prefix string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.m {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out, nil
}

// Snapshot returns a copy of every stored blob, for tests that inspect what
// an attacker with the database would see.
func (s *MemStore) Snapshot() map[string][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]byte, len(s.m))
	for k, v := range s.m {
		out[k] = bytes.Clone(v)
	}
	return out
}

// Len returns the number of stored keysets.
func (s *MemStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// Run is the KeysetStore conformance suite. newStore must return an empty
// store for each call. If the store implements keyring.KeysetLister, listing
// is tested too.
func Run(t *testing.T, newStore func(t *testing.T) keyring.KeysetStore) {
	t.Helper()
	ctx := context.Background()
	t.Run("CreateGet", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.GetKeyset(ctx, "a/b"); !errors.Is(err, rampart.ErrNotFound) {
			t.Fatalf("Get absent: %v, want ErrNotFound", err)
		}
		if err := s.CreateKeyset(ctx, "a/b", []byte{1, 2, 3}); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateKeyset(ctx, "a/b", []byte{9}); !errors.Is(err, rampart.ErrConflict) {
			t.Fatalf("second Create: %v, want ErrConflict", err)
		}
		b, err := s.GetKeyset(ctx, "a/b")
		if err != nil || !bytes.Equal(b, []byte{1, 2, 3}) {
			t.Fatalf("Get = %v, %v", b, err)
		}
	})
	t.Run("CompareAndSwap", func(t *testing.T) {
		s := newStore(t)
		if err := s.CreateKeyset(ctx, "k", []byte("v1")); err != nil {
			t.Fatal(err)
		}
		if err := s.UpdateKeyset(ctx, "k", []byte("wrong"), []byte("v2")); !errors.Is(err, rampart.ErrConflict) {
			t.Fatalf("Update with stale old: %v, want ErrConflict", err)
		}
		if err := s.UpdateKeyset(ctx, "k", []byte("v1"), []byte("v2")); err != nil {
			t.Fatal(err)
		}
		if b, _ := s.GetKeyset(ctx, "k"); string(b) != "v2" {
			t.Fatalf("after Update Get = %q", b)
		}
		if err := s.UpdateKeyset(ctx, "absent", []byte("x"), []byte("y")); err == nil {
			t.Fatal("Update of absent keyset succeeded")
		}
		// Concurrent CAS: exactly one of several racers wins.
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for i := range 8 {
			wg.Go(func() {
				if s.UpdateKeyset(ctx, "k", []byte("v2"), []byte{byte(i)}) == nil {
					mu.Lock()
					wins++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if wins != 1 {
			t.Fatalf("%d concurrent CAS winners, want 1", wins)
		}
	})
	t.Run("Delete", func(t *testing.T) {
		s := newStore(t)
		if err := s.DeleteKeyset(ctx, "absent"); err != nil {
			t.Fatalf("Delete absent: %v", err)
		}
		if err := s.CreateKeyset(ctx, "k", []byte("v")); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteKeyset(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetKeyset(ctx, "k"); !errors.Is(err, rampart.ErrNotFound) {
			t.Fatalf("Get after Delete: %v", err)
		}
		if err := s.CreateKeyset(ctx, "k", []byte("again")); err != nil {
			t.Fatalf("re-Create after Delete: %v", err)
		}
	})
	t.Run("BinaryBlobs", func(t *testing.T) {
		s := newStore(t)
		blob := []byte{0, 0xff, 0, 'x', 0x80}
		if err := s.CreateKeyset(ctx, "bin", blob); err != nil {
			t.Fatal(err)
		}
		if b, _ := s.GetKeyset(ctx, "bin"); !bytes.Equal(b, blob) {
			t.Fatalf("binary blob mangled: %v", b)
		}
	})
	t.Run("List", func(t *testing.T) {
		s := newStore(t)
		l, ok := s.(keyring.KeysetLister)
		if !ok {
			t.Skip("store does not implement keyring.KeysetLister")
		}
		names := []string{"kr/a", "kr/b/c", "dek/t/x", "kr_", "kr%", "root/check"}
		for _, n := range names {
			if err := s.CreateKeyset(ctx, n, []byte(n)); err != nil {
				t.Fatal(err)
			}
		}
		want := map[string][]string{
			"":     {"dek/t/x", "kr%", "kr/a", "kr/b/c", "kr_", "root/check"},
			"kr/":  {"kr/a", "kr/b/c"},
			"kr_":  {"kr_"}, // LIKE wildcards must be literal
			"kr%":  {"kr%"},
			"dek/": {"dek/t/x"},
			"zzz":  nil,
		}
		for _, p := range slices.Sorted(maps.Keys(want)) {
			got, err := l.ListKeysets(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want[p]) {
				t.Errorf("ListKeysets(%q) = %v, want %v", p, got, want[p])
			}
		}
	})
}

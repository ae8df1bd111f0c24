// Package blobtest is the conformance suite every blob.Store implementation
// must pass (local disk now, S3 later): round trips, atomic overwrite,
// not-found and bad-key errors, concurrent writers, listing, empty and large
// objects.
package blobtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/blob"
)

// Run runs the suite. newStore must return an empty store for each call.
func Run(t *testing.T, newStore func(t *testing.T) blob.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(*testing.T, blob.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"Overwrite", testOverwrite},
		{"NotFound", testNotFound},
		{"BadKeys", testBadKeys},
		{"Empty", testEmpty},
		{"Large", testLarge},
		{"List", testList},
		{"Delete", testDelete},
		{"ConcurrentWriters", testConcurrentWriters},
		{"FailedPutLeavesOld", testFailedPut},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

func put(t *testing.T, s blob.Store, key string, data []byte) {
	t.Helper()
	n, err := s.Put(context.Background(), key, bytes.NewReader(data))
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	if n != int64(len(data)) {
		t.Fatalf("Put(%q) = %d bytes, want %d", key, n, len(data))
	}
}

func get(t *testing.T, s blob.Store, key string) []byte {
	t.Helper()
	rc, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%q) read: %v", key, err)
	}
	return b
}

func testRoundTrip(t *testing.T, s blob.Store) {
	data := []byte("hello, rampart")
	put(t, s, "a/b/c", data)
	if got := get(t, s, "a/b/c"); !bytes.Equal(got, data) {
		t.Fatalf("Get = %q, want %q", got, data)
	}
	info, err := s.Stat(context.Background(), "a/b/c")
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != int64(len(data)) || info.Key != "a/b/c" {
		t.Fatalf("Stat = %+v", info)
	}
}

func testOverwrite(t *testing.T, s blob.Store) {
	put(t, s, "k", []byte("first version"))
	put(t, s, "k", []byte("second"))
	if got := get(t, s, "k"); string(got) != "second" {
		t.Fatalf("after overwrite Get = %q", got)
	}
	// A reader opened before an overwrite keeps seeing one whole version.
	put(t, s, "r", bytes.Repeat([]byte{'A'}, 1<<16))
	rc, err := s.Get(context.Background(), "r")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	put(t, s, "r", bytes.Repeat([]byte{'B'}, 1<<15))
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if !uniform(b) {
		t.Fatalf("reader saw a mix of versions (%d bytes)", len(b))
	}
}

func uniform(b []byte) bool {
	return len(b) > 0 && bytes.Count(b, b[:1]) == len(b)
}

func testNotFound(t *testing.T, s blob.Store) {
	ctx := context.Background()
	if _, err := s.Get(ctx, "missing"); !errors.Is(err, rampart.ErrNotFound) {
		t.Errorf("Get missing: %v, want ErrNotFound", err)
	}
	if _, err := s.Stat(ctx, "missing/deeper"); !errors.Is(err, rampart.ErrNotFound) {
		t.Errorf("Stat missing: %v, want ErrNotFound", err)
	}
	put(t, s, "dir/obj", []byte("x"))
	// A "directory" is not an object.
	if _, err := s.Get(ctx, "dir"); !errors.Is(err, rampart.ErrNotFound) {
		t.Errorf("Get of a prefix: %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctx, "dir/obj/under"); !errors.Is(err, rampart.ErrNotFound) {
		t.Errorf("Get under an object: %v, want ErrNotFound", err)
	}
	if l, err := s.List(ctx, "nothing/"); err != nil || len(l) != 0 {
		t.Errorf("List of absent prefix = %v, %v", l, err)
	}
}

// BadKeys are keys every store must reject with rampart.ErrInvalid.
var BadKeys = []string{"", "/abs", "../escape", "a/../../b", "a/./b", ".hidden", "a/.tmp-x", "a//b",
	"a/", `a\b`, "a\x00b", "sp ace", "ü", string(bytes.Repeat([]byte("a"), blob.MaxKeyLen+1))}

func testBadKeys(t *testing.T, s blob.Store) {
	ctx := context.Background()
	for _, k := range BadKeys {
		if _, err := s.Put(ctx, k, bytes.NewReader([]byte("x"))); !errors.Is(err, rampart.ErrInvalid) {
			t.Errorf("Put(%q) = %v, want ErrInvalid", k, err)
		}
		if _, err := s.Get(ctx, k); !errors.Is(err, rampart.ErrInvalid) {
			t.Errorf("Get(%q) = %v, want ErrInvalid", k, err)
		}
		if _, err := s.Stat(ctx, k); !errors.Is(err, rampart.ErrInvalid) {
			t.Errorf("Stat(%q) = %v, want ErrInvalid", k, err)
		}
		if err := s.Delete(ctx, k); !errors.Is(err, rampart.ErrInvalid) {
			t.Errorf("Delete(%q) = %v, want ErrInvalid", k, err)
		}
	}
	for _, p := range []string{"/", "../", "a/../"} {
		if _, err := s.List(ctx, p); !errors.Is(err, rampart.ErrInvalid) {
			t.Errorf("List(%q) = %v, want ErrInvalid", p, err)
		}
	}
}

func testEmpty(t *testing.T, s blob.Store) {
	put(t, s, "empty", nil)
	if got := get(t, s, "empty"); len(got) != 0 {
		t.Fatalf("empty object read %d bytes", len(got))
	}
	info, err := s.Stat(context.Background(), "empty")
	if err != nil || info.Size != 0 {
		t.Fatalf("Stat empty = %+v, %v", info, err)
	}
}

func testLarge(t *testing.T, s blob.Store) {
	const size = 8<<20 + 123
	src := io.LimitReader(&pattern{}, size)
	h := sha256.New()
	n, err := s.Put(context.Background(), "large/obj", io.TeeReader(src, h))
	if err != nil || n != size {
		t.Fatalf("Put large = %d, %v", n, err)
	}
	want := h.Sum(nil)
	rc, err := s.Get(context.Background(), "large/obj")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h.Reset()
	m, err := io.Copy(h, rc)
	if err != nil || m != size || !bytes.Equal(h.Sum(nil), want) {
		t.Fatalf("large read back %d bytes, err %v, digest match %v", m, err, bytes.Equal(h.Sum(nil), want))
	}
}

// pattern is an endless deterministic non-repeating-ish byte stream.
type pattern struct{ i uint64 }

func (p *pattern) Read(b []byte) (int, error) {
	for k := range b {
		p.i++
		b[k] = byte(p.i*2654435761>>13) ^ byte(p.i>>8)
	}
	return len(b), nil
}

func testList(t *testing.T, s blob.Store) {
	ctx := context.Background()
	keys := []string{"t/a/1", "t/a/2", "t/ab/1", "t/b/x/y", "u/1", "t/a"}
	// "t/a" as an object and "t/a/..." as a prefix cannot coexist on a file
	// system; keep the set portable.
	keys = keys[:5]
	for _, k := range keys {
		put(t, s, k, []byte(k))
	}
	cases := map[string][]string{
		"":      {"t/a/1", "t/a/2", "t/ab/1", "t/b/x/y", "u/1"},
		"t/":    {"t/a/1", "t/a/2", "t/ab/1", "t/b/x/y"},
		"t/a/":  {"t/a/1", "t/a/2"},
		"t/a":   {"t/a/1", "t/a/2", "t/ab/1"},
		"t/b/x": {"t/b/x/y"},
		"v":     nil,
		"t/a/1": {"t/a/1"},
	}
	for prefix, want := range cases {
		got, err := s.List(ctx, prefix)
		if err != nil {
			t.Fatalf("List(%q): %v", prefix, err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("List(%q) = %v, want %v", prefix, got, want)
		}
	}
}

func testDelete(t *testing.T, s blob.Store) {
	ctx := context.Background()
	put(t, s, "d/x", []byte("x"))
	if err := s.Delete(ctx, "d/x"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "d/x"); !errors.Is(err, rampart.ErrNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}
	if err := s.Delete(ctx, "d/x"); err != nil {
		t.Fatalf("second Delete: %v, want nil", err)
	}
	if l, _ := s.List(ctx, "d/"); len(l) != 0 {
		t.Fatalf("List after delete = %v", l)
	}
}

// testConcurrentWriters has writers race on one key while readers read it:
// every read and the final state must be exactly one writer's whole object.
func testConcurrentWriters(t *testing.T, s blob.Store) {
	ctx := context.Background()
	const writers, rounds, size = 4, 5, 256 << 10
	put(t, s, "race", bytes.Repeat([]byte{'0'}, size))
	var wg sync.WaitGroup
	errc := make(chan error, writers*rounds*2)
	for w := range writers {
		wg.Go(func() {
			data := bytes.Repeat([]byte{byte('a' + w)}, size+w*1000)
			for range rounds {
				if _, err := s.Put(ctx, "race", bytes.NewReader(data)); err != nil {
					errc <- err
				}
			}
		})
		wg.Go(func() {
			for range rounds {
				rc, err := s.Get(ctx, "race")
				if err != nil {
					errc <- err
					continue
				}
				b, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					errc <- err
				} else if !uniform(b) || (b[0] != '0' && len(b) != size+int(b[0]-'a')*1000) {
					errc <- fmt.Errorf("torn read: %d bytes starting %q", len(b), b[:1])
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	b := get(t, s, "race")
	if !uniform(b) || b[0] == '0' || len(b) != size+int(b[0]-'a')*1000 {
		t.Fatalf("final object torn: %d bytes", len(b))
	}
	if l, _ := s.List(ctx, ""); !slices.Equal(l, []string{"race"}) {
		t.Fatalf("List after race = %v (temporary files leaked?)", l)
	}
}

type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("source failed")
	}
	k := min(len(p), f.n)
	for i := range k {
		p[i] = 'z'
	}
	f.n -= k
	return k, nil
}

func testFailedPut(t *testing.T, s blob.Store) {
	ctx := context.Background()
	put(t, s, "keep", []byte("old"))
	if _, err := s.Put(ctx, "keep", &failingReader{n: 1 << 16}); err == nil {
		t.Fatal("Put with failing reader succeeded")
	}
	if got := get(t, s, "keep"); string(got) != "old" {
		t.Fatalf("failed Put changed object to %d bytes", len(got))
	}
	if _, err := s.Put(ctx, "new", &failingReader{n: 10}); err == nil {
		t.Fatal("Put with failing reader succeeded")
	}
	if _, err := s.Stat(ctx, "new"); !errors.Is(err, rampart.ErrNotFound) {
		t.Fatalf("failed Put created an object: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Put(cctx, "cancelled", bytes.NewReader([]byte("x"))); err == nil {
		t.Fatal("Put with cancelled context succeeded")
	}
	if l, _ := s.List(ctx, ""); !slices.Equal(l, []string{"keep"}) {
		t.Fatalf("List after failed puts = %v", l)
	}
}

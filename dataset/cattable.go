package dataset

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"math/bits"
	"math/rand/v2"
)

var (
	catSeed      = maphash.MakeSeed()
	catK0, catK1 = rand.Uint64() | 1, rand.Uint64() | 1
)

// keyWords packs a key of up to 16 bytes into two words; with the length
// they determine the key (overlapping loads cover every byte).
func keyWords(b []byte) (w0, w1 uint64) {
	n := len(b)
	switch {
	case n >= 8:
		w0 = binary.LittleEndian.Uint64(b)
		w1 = binary.LittleEndian.Uint64(b[n-8:])
	case n >= 4:
		w0 = uint64(binary.LittleEndian.Uint32(b)) | uint64(binary.LittleEndian.Uint32(b[n-4:]))<<32
	case n > 0:
		w0 = uint64(b[0]) | uint64(b[n/2])<<8 | uint64(b[n-1])<<16
	}
	return w0, w1
}

// hashBytes is a seeded hash: a multiply-fold of the packed words for
// short keys (most categories), maphash for longer ones.
func hashBytes(b []byte) uint64 {
	h, _, _ := hashKey(b)
	return h
}

// hashKey returns the hash and, for keys of up to 16 bytes, the words.
func hashKey(b []byte) (h, w0, w1 uint64) {
	if len(b) > 16 {
		return maphash.Bytes(catSeed, b), 0, 0
	}
	w0, w1 = keyWords(b)
	hi, lo := bits.Mul64(w0^catK0, w1^catK1^uint64(len(b)))
	return hi ^ lo, w0, w1
}

// catTable counts byte-string keys: open addressing over a slot array of
// entry indexes, keys packed in one arena. It replaces map[string]… on the
// per-field hot path (no string header or map machinery per lookup).
type catTable struct {
	slots []int32 // entry index + 1; 0 is empty
	ents  []catEntry
	keys  []byte
	mask  uint64
	// lastMin is at most every count (counts only grow; insert lowers
	// it, removeMin raises it to the count it removed).
	lastMin int64
}

type catEntry struct {
	h         uint64
	w0, w1    uint64 // keyWords, for keys of up to 16 bytes
	n         int64
	off, klen uint32
	pii       uint8
}

func newCatTable(n int) *catTable {
	sz := 16
	for sz < 2*n {
		sz *= 2
	}
	return &catTable{slots: make([]int32, sz), mask: uint64(sz - 1)}
}

func (t *catTable) len() int { return len(t.ents) }

func (t *catTable) key(e *catEntry) []byte { return t.keys[e.off : e.off+e.klen] }

// find returns the entry for key (hash h), or nil.
func (t *catTable) find(h uint64, key []byte) *catEntry {
	if len(key) <= 16 {
		w0, w1 := keyWords(key)
		return t.findShort(h, w0, w1, len(key))
	}
	return t.findLong(h, key)
}

// findShort finds a key of up to 16 bytes by its words and length.
func (t *catTable) findShort(h, w0, w1 uint64, n int) *catEntry {
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		s := t.slots[i]
		if s == 0 {
			return nil
		}
		e := &t.ents[s-1]
		if e.h == h && e.w0 == w0 && e.w1 == w1 && int(e.klen) == n {
			return e
		}
	}
}

func (t *catTable) findLong(h uint64, key []byte) *catEntry {
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		s := t.slots[i]
		if s == 0 {
			return nil
		}
		e := &t.ents[s-1]
		if e.h == h && int(e.klen) == len(key) && bytes.Equal(t.keys[e.off:e.off+e.klen], key) {
			return e
		}
	}
}

// insert adds an absent key.
func (t *catTable) insert(h uint64, key []byte, n int64, pii uint8) {
	if 2*(len(t.ents)+1) > len(t.slots) {
		t.slots = make([]int32, 2*len(t.slots))
		t.mask = uint64(len(t.slots) - 1)
		t.reslot()
	}
	w0, w1 := keyWords(key)
	if len(key) > 16 {
		w0, w1 = 0, 0
	}
	t.lastMin = min(t.lastMin, n)
	t.ents = append(t.ents, catEntry{h: h, w0: w0, w1: w1, n: n, off: uint32(len(t.keys)), klen: uint32(len(key)), pii: pii})
	t.keys = append(t.keys, key...)
	t.place(h, int32(len(t.ents)))
}

func (t *catTable) place(h uint64, idx int32) {
	i := h & t.mask
	for t.slots[i] != 0 {
		i = (i + 1) & t.mask
	}
	t.slots[i] = idx
}

func (t *catTable) reslot() {
	clear(t.slots)
	for i := range t.ents {
		t.place(t.ents[i].h, int32(i+1))
	}
}

// removeMin deletes the entry with the smallest count (the first such) and
// returns its count.
func (t *catTable) removeMin() int64 {
	// No count is below lastMin: the first entry at lastMin is the
	// first minimal one and ends the scan.
	m := 0
	for i := range t.ents {
		if t.ents[i].n < t.ents[m].n {
			m = i
		}
		if t.ents[m].n <= t.lastMin {
			break
		}
	}
	t.lastMin = t.ents[m].n
	n := t.ents[m].n
	t.unslot(m)
	last := len(t.ents) - 1
	if m != last {
		// Move the last entry into m and repoint its slot.
		t.ents[m] = t.ents[last]
		for i := t.ents[m].h & t.mask; ; i = (i + 1) & t.mask {
			if t.slots[i] == int32(last+1) {
				t.slots[i] = int32(m + 1)
				break
			}
		}
	}
	t.ents = t.ents[:last]
	// Compact the key arena when it is mostly garbage.
	if len(t.keys) > 4096 && len(t.keys) > 8*len(t.ents)*maxCatKey/4 {
		keys := make([]byte, 0, len(t.keys)/2)
		for i := range t.ents {
			e := &t.ents[i]
			k := t.key(e)
			e.off = uint32(len(keys))
			keys = append(keys, k...)
		}
		t.keys = keys
	}
	return n
}

// unslot removes entry m's slot, shifting later entries of its probe run
// back (deletion without tombstones for linear probing).
func (t *catTable) unslot(m int) {
	i := t.ents[m].h & t.mask
	for t.slots[i] != int32(m+1) {
		i = (i + 1) & t.mask
	}
	t.slots[i] = 0
	for j := (i + 1) & t.mask; t.slots[j] != 0; j = (j + 1) & t.mask {
		h := t.ents[t.slots[j]-1].h & t.mask
		// The entry at j may move to the hole i unless its home slot h
		// lies cyclically in (i, j].
		if (j > i && (h <= i || h > j)) || (j < i && h <= i && h > j) {
			t.slots[i], t.slots[j] = t.slots[j], 0
			i = j
		}
	}
}

// each calls fn for every entry (insertion order, modulo removals).
func (t *catTable) each(fn func(key []byte, n int64, pii uint8)) {
	for i := range t.ents {
		e := &t.ents[i]
		fn(t.key(e), e.n, e.pii)
	}
}

// kthKey returns the k-th smallest (0-based) of keys, reordering keys
// (quickselect, expected linear time; k < len(keys)).
func kthKey(keys []uint64, k int) uint64 {
	lo, hi := 0, len(keys)-1
	for lo < hi {
		p := keys[lo+(hi-lo)/2]
		i, j := lo, hi
		for i <= j {
			for keys[i] < p {
				i++
			}
			for keys[j] > p {
				j--
			}
			if i <= j {
				keys[i], keys[j] = keys[j], keys[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return keys[k]
		}
	}
	return keys[k]
}
